"""Checks shared by several test files: exact state comparison (a rejected call changed
nothing) and running an exported policy where rltorch cannot be imported."""

from __future__ import annotations

import subprocess
import sys

import torch


def assert_same_state(a, b, path: str = "state") -> None:
    """``a`` and ``b`` are equal bit for bit: tensors by dtype, shape and value (NaN equal to NaN),
    everything else by ``==``, recursively through dicts, lists and tuples."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device, path
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=f"{path} differs")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_state(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{path}: {a!r} != {b!r}"


def run_without_rltorch(tmp_path, torchscript_path, export_path, obs):
    """Actions of the TorchScript and the torch.export files for ``obs``, computed in a
    subprocess where rltorch's Python code cannot be imported."""
    torch.save(obs, tmp_path / "obs.pt")
    code = (
        "import sys; sys.modules['rltorch'] = None\n"
        "import torch\n"
        f"obs = torch.load({str(tmp_path / 'obs.pt')!r})\n"
        f"a = torch.jit.load({str(torchscript_path)!r})(obs)\n"
        f"b = torch.export.load({str(export_path)!r}).module()(obs)\n"
        f"torch.save((a, b), {str(tmp_path / 'out.pt')!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return torch.load(tmp_path / "out.pt")


def legacy_layout(state: dict, format: int) -> dict:
    """An agent checkpoint in sections rewritten as rltorch wrote formats 1 and 2: one flat dict of the frame's
    and the algorithm's entries, with the process-wide RNG state (format 1: untagged, DQN's)."""
    name = state["algorithm"]
    section = dict(state[name])
    if "schedule" in section:  # DQN and Ape-X kept only their update debt
        section["update_debt"] = section.pop("schedule")["debt"]
    if name == "apex":
        section["apex"] = {k: section.pop(k) for k in ("actor_batches", "actor_restarts", "weights_version")}
    if name == "bc":  # a classifier checkpoint of format 1 beside its optimizer's state
        classifier = dict(section.pop("extra"))
        section["optimizer"] = classifier.pop("optimizer")
        for key in ("classes", "classes_dtype", "optimizer_settings"):
            del classifier[key]
        old_params = ("hidden_sizes", "activation", "dropout", "batch_norm", "backbone", "channels", "kernel_size",
                      "standardize", "seed", "num_classes", "label_smoothing", "class_weights")
        classifier["params"] = {k: v for k, v in classifier["params"].items() if k in old_params}
        section["classifier"] = {**classifier, "format_version": 1}
        data = section.pop("data", None)
        if data is not None:
            section["data_obs"], section["data_actions"] = data["obs"], data["actions"]
    flat = {"format": format, "config": state["config"], "torch_rng": torch.get_rng_state(), **state["frame"],
            **section}
    if name == "bc":
        del flat["generator"]  # BC had none
    if format >= 2:
        flat["algorithm"] = name
    return flat


def config_dicts(fields: dict):
    """A hypothesis strategy of (values, invalid names): a few config fields, each drawn from its valid
    strategy or from its list of invalid values (``fields``: name -> (strategy, invalid values))."""
    from hypothesis import strategies as st

    @st.composite
    def draw_case(draw):
        names = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=6))
        values, invalid = {}, []
        for name in names:
            valid_values, invalid_values = fields[name]
            if draw(st.booleans()):
                values[name] = draw(valid_values)
            else:
                values[name] = draw(st.sampled_from(invalid_values))
                invalid.append(name)
        return values, invalid

    return draw_case()


def check_config_case(config_class, case) -> None:
    """Invalid values raise a ValueError (nothing else) naming one of them; valid ones make a config that
    round-trips through JSON."""
    import json

    import pytest

    values, invalid = case
    if invalid:
        with pytest.raises(ValueError) as info:
            config_class.from_dict(values)
        assert any(f"`{name}" in str(info.value) for name in invalid), (values, str(info.value))
    else:
        config = config_class.from_dict(values)
        data = config.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert config_class.from_dict(data) == config
