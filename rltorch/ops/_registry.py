"""Every op family's kernel table, for ``rltorch.info()``."""

from __future__ import annotations


def all_kernels() -> dict:
    from rltorch.ops import returns, sumtree

    tables = {}
    tables.update(returns.KERNELS)
    tables.update(sumtree.KERNELS)
    return tables
