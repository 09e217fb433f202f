"""What a classifier reads: arrays, tensors, Datasets and DataLoaders, as one kind of batch source.

Every method of a classifier (``fit``, ``predict*``, ``evaluate``, ``score``) turns its data into a
source with :func:`source` and reads it through ``source.batches(...)``:

- :class:`InMemory`: tensors, NumPy arrays, array-likes and ``TensorDataset``\\ s. They are checked
  and moved to the device once; batches are cut by index (one ``randperm`` per epoch when shuffled),
  so no ``DataLoader`` runs and the epoch is spent in forward and backward.
- :class:`Streamed`: any other ``Dataset`` or ``DataLoader``, read batch by batch; every batch is
  checked as it arrives.

Both apply the same ``check(X, y)`` (the classifier's, naming the argument) and, once the classes
are known, the same ``encode(y)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

__all__ = ["PREDICT_BATCH", "held_out_count", "InMemory", "Streamed", "source", "as_features", "as_labels", "is_sparse"]

#: Samples per forward pass when predicting or evaluating (bounds the memory of one pass).
PREDICT_BATCH = 65536

Check = Callable[[Any, Any], "tuple[Tensor, Tensor | np.ndarray | None]"]


def held_out_count(num_samples: int, fraction: float) -> int:
    """Samples a split of ``fraction`` holds out of ``num_samples`` (``train_test_split``'s test set,
    ``validation_split``'s validation set): rounded to the nearest count."""
    return int(round(num_samples * fraction))


def is_sparse(data: Any) -> bool:
    """A SciPy sparse matrix or array, recognised without importing SciPy."""
    return type(data).__module__.startswith("scipy.sparse")


def _array(data: Any, name: str) -> np.ndarray:
    if is_sparse(data):
        raise TypeError(f"`{name}` is a sparse {type(data).__name__}: rltorch classifiers take dense data "
                        f"(pass {name}.toarray())")
    if isinstance(data, (Dataset, DataLoader)):
        raise TypeError(f"`{name}` must be a tensor or an array here, got a {type(data).__name__}")
    try:
        return np.asarray(data)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"`{name}` must be a tensor or an array-like, got {type(data).__name__}: {exc}") from None


def _tensor(array: np.ndarray) -> Tensor:
    if not array.flags.writeable:  # torch warns about (and would alias) read-only memory such as memmaps
        array = array.copy()
    return torch.from_numpy(np.ascontiguousarray(array))


def as_features(data: Any, name: str = "X") -> Tensor:
    """``data`` as a real-valued tensor (not yet float32 or on the device); TypeError/ValueError naming ``name``."""
    if isinstance(data, Tensor):
        tensor = data
    else:
        array = _array(data, name)
        if array.dtype == object:
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"`{name}` must be numeric: {exc}") from None
        if array.dtype.kind in "USVMm":
            raise TypeError(f"`{name}` must be numeric, got an array of dtype {array.dtype}")
        if array.dtype.kind == "c":
            raise ValueError(f"`{name}`: Complex data not supported (got {array.dtype}); pass real values")
        tensor = _tensor(array)
    if tensor.dtype.is_complex:
        raise ValueError(f"`{name}`: Complex data not supported (got {tensor.dtype}); pass real values")
    return tensor


def as_labels(data: Any, name: str = "y") -> Tensor | np.ndarray:
    """``data`` as a tensor (numbers and bools) or a NumPy array (strings and other objects)."""
    if isinstance(data, Tensor):
        labels = data
    else:
        array = _array(data, name)
        if array.dtype.kind in "OUS":
            return array
        if array.dtype.kind == "c":
            raise ValueError(f"`{name}`: Complex data not supported (got {array.dtype})")
        if array.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must hold class labels (numbers, bools or strings), got dtype {array.dtype}")
        labels = _tensor(array)
    if labels.dtype.is_complex:
        raise ValueError(f"`{name}`: Complex data not supported (got {labels.dtype})")
    return labels


def take(labels: Tensor | np.ndarray | None, index: Tensor | slice) -> Tensor | np.ndarray | None:
    if labels is None or isinstance(index, slice):
        return None if labels is None else labels[index]
    if isinstance(labels, Tensor):
        return labels.index_select(0, index.to(labels.device))
    return labels[index.cpu().numpy()]


class InMemory:
    """Checked samples held as tensors on the device (labels may be a NumPy array until encoded)."""

    def __init__(self, X: Tensor, y: Tensor | np.ndarray | None):
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    def batches(self, batch_size: int, generator: torch.Generator | None = None, min_batch: int = 1
                ) -> Iterator[tuple[Tensor, Any]]:
        """Batches of ``batch_size`` in order, or shuffled by ``generator``. With ``min_batch=2`` a trailing
        single sample is left out (BatchNorm cannot train on one); it comes back in the next shuffle."""
        n = len(self.X)
        order = None if generator is None else torch.randperm(n, generator=generator, device=generator.device)
        stop = n - 1 if min_batch > 1 and n % batch_size == 1 and n > 1 else n
        for start in range(0, stop, batch_size):
            end = min(start + batch_size, stop)
            if order is None:
                yield self.X[start:end], take(self.y, slice(start, end))
            else:
                index = order[start:end].to(self.X.device)
                yield self.X.index_select(0, index), take(self.y, index)

    def split(self, count: int, generator: torch.Generator) -> tuple[InMemory, InMemory]:
        """(the rest, ``count`` random samples held out)."""
        order = torch.randperm(len(self.X), generator=generator, device=generator.device).to(self.X.device)
        held, rest = order[:count], order[count:]
        return (InMemory(self.X.index_select(0, rest), take(self.y, rest)),
                InMemory(self.X.index_select(0, held), take(self.y, held)))

    def encoded(self, encode: Callable[[Any], Tensor]) -> InMemory:
        return InMemory(self.X, encode(self.y))


class Streamed:
    """A ``Dataset``/``DataLoader`` read batch by batch, each batch checked (and encoded) on arrival."""

    def __init__(self, data: Dataset | DataLoader, check: Check, labelled: bool, name: str,
                 encode: Callable[[Any], Tensor] | None = None):
        self.data, self.check, self.labelled, self.name, self.encode = data, check, labelled, name, encode

    def batches(self, batch_size: int, generator: torch.Generator | None = None, min_batch: int = 1
                ) -> Iterator[tuple[Tensor, Any]]:
        """A given ``DataLoader`` is read as it is (its own batch size and order); a ``Dataset`` is read in
        batches of ``batch_size``, shuffled by a seed drawn from ``generator`` when given."""
        if isinstance(self.data, DataLoader):
            loader = self.data
        else:
            shuffle = None
            if generator is not None:
                seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
                shuffle = torch.Generator().manual_seed(seed)
            loader = DataLoader(self.data, batch_size=batch_size, shuffle=shuffle is not None, generator=shuffle)
        for batch in loader:
            if isinstance(batch, (tuple, list)) and len(batch) == 2:
                x, y = batch
            elif self.labelled:
                raise ValueError(f"`{self.name}`: a Dataset/DataLoader must yield (x, y) pairs, got "
                                 f"{type(batch).__name__}")
            else:
                x, y = (batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 1 else batch), None
            x, y = self.check(x, y if self.labelled else None)
            if len(x) < min_batch:
                continue
            yield x, (self.encode(y) if self.encode is not None and y is not None else y)

    def encoded(self, encode: Callable[[Any], Tensor]) -> Streamed:
        return Streamed(self.data, self.check, self.labelled, self.name, encode)


def source(X: Any, y: Any, check: Check, *, labelled: bool, x_name: str = "X", y_name: str = "y"
           ) -> InMemory | Streamed:
    """``(X, y)`` as a batch source. ``labelled``: labels are required (``fit``, ``evaluate``, ``score``);
    otherwise (``predict``) a Dataset may yield bare samples and ``y`` must be None."""
    if isinstance(X, TensorDataset):
        if y is not None:
            raise TypeError(f"`{y_name}` must be None when `{x_name}` is a Dataset (it holds the targets)")
        if len(X.tensors) != 2 and (labelled or len(X.tensors) != 1):
            raise ValueError(f"`{x_name}`: a TensorDataset must hold (X, y), got {len(X.tensors)} tensors")
        X, y = X.tensors[0], (X.tensors[1] if labelled else None)
    elif isinstance(X, (Dataset, DataLoader)):
        if y is not None:
            raise TypeError(f"`{y_name}` must be None when `{x_name}` is a Dataset or DataLoader (it holds the "
                            "targets)")
        return Streamed(X, check, labelled, x_name)
    elif labelled and y is None:
        raise ValueError(f"`{y_name}` is required when `{x_name}` is a tensor or an array: the classifier "
                         "requires y to be passed, but the target y is None")
    return InMemory(*check(X, y if labelled else None))
