"""Every op family's kernel table, for ``rltorch.info()``."""

from __future__ import annotations


def all_kernels() -> dict:
    from rltorch.ops import cartpole, classic_control, returns, sumtree

    tables = {}
    tables.update(returns.KERNELS)
    tables.update(cartpole.KERNELS)
    tables.update(classic_control.KERNELS)
    tables.update(sumtree.KERNELS)
    return tables
