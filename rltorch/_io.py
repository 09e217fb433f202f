"""Files rltorch writes and reads: atomic, checksummed saves; safe loads; policy exports.

Every checkpoint (agents, classifiers, replay buffers) goes through :func:`save_checked`
and :func:`load_checked`:

- written to a temporary file beside the target, flushed to disk, then renamed over it, so a
  crash mid-write never leaves a truncated file where a good one was;
- carries a checksum of its contents (BLAKE2b over every tensor's bytes and every plain value,
  in a fixed order) under :data:`CHECKSUM_KEY`. torch does not check its zip archive's CRCs,
  so a flipped byte inside tensor data would otherwise load silently;
- read back with ``torch.load(weights_only=True)``: tensors and plain values only, so a file can
  never run code. Files written before checksums existed (no :data:`CHECKSUM_KEY`) still load.

Every failure is a one-line ``ValueError`` (``FileNotFoundError`` for a missing file) naming the
file, never a traceback from deep inside torch.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import tempfile
import warnings
from typing import Any, BinaryIO, Callable

import torch
from torch import Tensor, nn

CHECKSUM_KEY = "checksum"
CHECKSUM_ALGORITHM = "blake2b-128"
EXPORT_FORMATS = ("torchscript", "export")


def first_line(exc: BaseException) -> str:
    """An exception's first line of text (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------ checksums


def checksum(payload: Any) -> str:
    """Hex digest of ``payload``'s tensors (dtype, shape, bytes) and plain values, dict keys in sorted order."""
    digest = hashlib.blake2b(digest_size=16)
    _feed(digest, payload)
    return digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, Tensor):
        tensor = value.detach()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        if tensor.numel():
            flat = tensor.reshape(-1).contiguous().cpu()
            digest.update(flat.view(torch.uint8).numpy().data if flat.dtype != torch.bool
                          else flat.to(torch.uint8).numpy().data)
    elif isinstance(value, dict):
        digest.update(b"D%d" % len(value))
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update((b"L" if isinstance(value, list) else b"U") + b"%d" % len(value))
        for item in value:
            _feed(digest, item)
    elif isinstance(value, bool) or value is None:
        digest.update(repr(value).encode())
    elif isinstance(value, int):
        digest.update(b"I" + str(value).encode())
    elif isinstance(value, float):
        digest.update(b"F" + struct.pack("<d", value))
    elif isinstance(value, str):
        digest.update(b"S%d:" % len(value) + value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, (bytes, bytearray)):
        digest.update(b"B%d:" % len(value) + bytes(value))
    elif isinstance(value, torch.dtype):
        digest.update(f"dtype{value}".encode())
    elif isinstance(value, torch.device):
        digest.update(f"device{value}".encode())
    else:
        raise TypeError(f"rltorch checkpoints hold tensors and plain values only, got {type(value).__name__}")


# ------------------------------------------------------------------ saving


def check_writable(path: str | os.PathLike, what: str, probe: bool = False) -> str:
    """``path`` as a string when it names a file that can be created or replaced; ValueError naming it otherwise.
    ``probe`` creates and removes a file beside it, which catches what permission bits do not show (root, a
    read-only or virtual file system such as /proc): for checks made long before the write."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{what}: {path!r} is a directory; give a file name")
    if not os.path.isdir(parent):
        raise ValueError(f"{what}: {path!r} is not in an existing directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: cannot write to {path!r}: its directory is not writable")
    if probe:
        try:
            fd, name = tempfile.mkstemp(dir=parent, prefix=".rltorch-probe-")
        except OSError as exc:
            raise ValueError(f"{what}: cannot write to {path!r}: {exc.strerror or first_line(exc)}") from None
        os.close(fd)
        os.remove(name)
    return path


def atomic_write(path: str | os.PathLike, what: str, write: Callable[[BinaryIO], None]) -> str:
    """Calls ``write(file)`` on a temporary file beside ``path``, flushes it to disk and renames it over
    ``path``. The temporary file is removed on any failure; an OS error becomes a ValueError naming ``path``."""
    path = check_writable(path, what)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ValueError(f"{what}: cannot write {path!r}: {exc.strerror or first_line(exc)}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_checked(payload: dict, path: str | os.PathLike, what: str) -> str:
    """Writes ``payload`` (a dict of tensors and plain values) atomically with its checksum. Returns the path."""
    if CHECKSUM_KEY in payload:
        raise ValueError(f"{what}: the payload may not use the key {CHECKSUM_KEY!r}")
    stamped = {**payload, CHECKSUM_KEY: {"algorithm": CHECKSUM_ALGORITHM, "digest": checksum(payload)}}
    return atomic_write(path, what, lambda f: torch.save(stamped, f))


# ------------------------------------------------------------------ loading


def load_checked(path: str | os.PathLike, what: str) -> dict:
    """The dict saved by :func:`save_checked` (or an older file without a checksum), loaded on the CPU with
    ``weights_only=True`` and verified. One-line ValueError naming the file for anything else."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {what} at {path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"{what} path {path!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch words every refusal with "weights_only"; a pickled callable or class is an unsupported GLOBAL,
        # anything else (text, a truncated pickle) an unsupported opcode.
        if "global" in str(exc).lower():
            raise ValueError(
                f"{path!r} is not an rltorch {what}: it holds Python objects other than tensors and "
                "plain values, and rltorch never runs code from a file"
            ) from None
        raise ValueError(f"{path!r} is not a readable rltorch {what}: not a torch file, or damaged") from None
    except Exception as exc:  # truncated, a zip of something else, a text file, ...
        raise ValueError(
            f"{path!r} is not a readable rltorch {what}: {type(exc).__name__}: {first_line(exc)}"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} is not an rltorch {what}: it holds a {type(state).__name__}, not a dict")
    stamp = state.pop(CHECKSUM_KEY, None)
    if stamp is not None:
        if not isinstance(stamp, dict) or stamp.get("algorithm") != CHECKSUM_ALGORITHM:
            raise ValueError(f"{path!r} carries a checksum rltorch cannot read ({stamp!r})"[:300])
        try:
            actual = checksum(state)
        except TypeError as exc:
            raise ValueError(f"{path!r} is not an rltorch {what}: {first_line(exc)}") from None
        if actual != stamp.get("digest"):
            raise ValueError(f"{path!r} is damaged: its contents do not match the checksum written with it "
                             "(the file changed after rltorch saved it)")
    return state


# ------------------------------------------------------------------ export


def export_module(module: nn.Module, example: Tensor, path: str | os.PathLike, format: str, what: str) -> str:
    """Saves ``module`` (a CPU module in eval mode taking one float32 batch) so it loads without rltorch:
    ``"torchscript"`` (``torch.jit.load``, traced on ``example``) or ``"export"`` (``torch.export.load``),
    with a dynamic batch dimension, written atomically. Returns the path."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"{what}: `format` must be 'torchscript' or 'export', got {format!r}")

    def write(f: BinaryIO) -> None:
        if format == "torchscript":
            with warnings.catch_warnings():  # torch >= 2.10 flags TorchScript as deprecated; users still ask for it
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.save(torch.jit.trace(module, example[:1]), f)
        else:
            batch = torch.export.Dim("batch", min=1)
            program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(program, f)

    return atomic_write(path, what, write)
