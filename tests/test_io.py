"""rltorch/_io.py: atomic checksummed saves, safe loads that catch a flipped byte, exports."""

import os
import zipfile

import pytest
import torch
from torch import nn

from rltorch import _io


def _payload():
    gen = torch.Generator().manual_seed(0)
    return {"format": 3, "weights": torch.randn(64, 8, generator=gen), "mask": torch.rand(10, generator=gen) < 0.5,
            "half": torch.randn(5, generator=gen).bfloat16(), "nested": {"steps": 12, "name": "dqn", "lr": 1e-3,
                                                                          "sizes": [64, 64], "none": None}}


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    return a == b


def test_round_trip_is_exact_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "state.pt"
    _io.save_checked(_payload(), path, "checkpoint")
    assert os.listdir(tmp_path) == ["state.pt"]
    assert _equal(_io.load_checked(path, "checkpoint"), _payload())


def _flip_byte_in_tensor_data(path, record_suffix):
    """Flips one byte inside a tensor's storage record of torch's zip file, leaving the archive readable."""
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(record_suffix))
        offset = info.header_offset
    with open(path, "r+b") as f:
        f.seek(offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        data_start = offset + 30 + name_len + extra_len
        f.seek(data_start + 17)
        byte = f.read(1)
        f.seek(data_start + 17)
        f.write(bytes([byte[0] ^ 0x10]))


def test_a_flipped_byte_inside_tensor_data_is_caught(tmp_path):
    path = tmp_path / "state.pt"
    _io.save_checked(_payload(), path, "checkpoint")
    _flip_byte_in_tensor_data(path, "data/0")
    torch.load(path, weights_only=True)  # torch itself does not notice
    with pytest.raises(ValueError, match="is damaged"):
        _io.load_checked(path, "checkpoint")


def test_files_without_a_checksum_still_load(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(_payload(), path)
    assert _equal(_io.load_checked(path, "checkpoint"), _payload())


def test_the_checksum_covers_plain_values_and_structure():
    a = _payload()
    for change in (lambda p: p["nested"].update(steps=13), lambda p: p["nested"].update(lr=1e-3 + 1e-18),
                   lambda p: p["nested"]["sizes"].append(1), lambda p: p.update(extra=None),
                   lambda p: p.update(weights=p["weights"].double()), lambda p: p.update(weights=p["weights"].T)):
        b = _payload()
        change(b)
        assert _io.checksum(a) != _io.checksum(b)
    assert _io.checksum(_payload()) == _io.checksum(_payload())


@pytest.mark.parametrize("content,match", [(b"", "not a readable"), (b"hello", "not a readable"),
                                           (None, "holds a list")])
def test_unreadable_files_give_one_line_errors_naming_the_file(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save([1, 2], path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        _io.load_checked(path, "checkpoint")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": _Evil()}, path)
    with pytest.raises(ValueError, match="never runs code"):
        _io.load_checked(path, "checkpoint")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_missing_files_and_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        _io.load_checked(tmp_path / "nothing.pt", "checkpoint")
    with pytest.raises(ValueError, match="is not a file"):
        _io.load_checked(tmp_path, "checkpoint")


def test_unwritable_targets_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="not in an existing directory"):
        _io.save_checked(_payload(), tmp_path / "missing" / "x.pt", "checkpoint")
    with pytest.raises(ValueError, match="is a directory"):
        _io.save_checked(_payload(), tmp_path, "checkpoint")
    with pytest.raises(ValueError, match="/proc"):
        _io.save_checked(_payload(), "/proc/x.pt", "checkpoint")
    with pytest.raises(ValueError, match="may not use the key"):
        _io.save_checked({"checksum": 1}, tmp_path / "x.pt", "checkpoint")
    assert os.listdir(tmp_path) == []


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "state.pt"
    _io.save_checked(_payload(), path, "checkpoint")
    with pytest.raises(TypeError):
        _io.save_checked({"obj": object()}, path, "checkpoint")
    assert _equal(_io.load_checked(path, "checkpoint"), _payload())
    assert os.listdir(tmp_path) == ["state.pt"]


@pytest.mark.parametrize("fmt", _io.EXPORT_FORMATS)
def test_export_loads_without_rltorch_with_a_dynamic_batch(tmp_path, fmt):
    module = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).eval()
    path = _io.export_module(module, torch.zeros(2, 4), tmp_path / "policy.pt", fmt, "export")
    loaded = torch.jit.load(path) if fmt == "torchscript" else torch.export.load(path).module()
    x = torch.randn(7, 4)
    torch.testing.assert_close(loaded(x), module(x))
    with pytest.raises(ValueError, match="`format`"):
        _io.export_module(module, torch.zeros(2, 4), tmp_path / "p2.pt", "onnx", "export")
