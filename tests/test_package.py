"""The package around the kernels: loading, fallback, info, command line."""

import json
import os
import subprocess
import sys

import torch

import rltorch
from tests.conftest import requires_ext

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "RLTORCH_STRICT": "0", **env}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=300)


BLOCK_EXTENSION = "import sys; sys.modules['rltorch._C'] = None\n"  # makes `from rltorch import _C` fail


def test_missing_extension_warns_once_and_falls_back():
    proc = run_python(
        BLOCK_EXTENSION
        + "import warnings, torch\n"
        + "with warnings.catch_warnings(record=True) as caught:\n"
        + "    warnings.simplefilter('always')\n"
        + "    import rltorch\n"
        + "msgs = [str(w.message) for w in caught if 'rltorch' in str(w.message)]\n"
        + "print(len(msgs)); print(msgs[0])\n"
        + "y = rltorch.ops.td_target(torch.ones(2), torch.tensor([False, True]),"
        + " torch.tensor([[1., 3.], [5., 7.]]), 0.5)\n"
        + "print(y.tolist()); print(rltorch.info()['ops']['td_target']['cpu'])\n"
    )
    assert proc.returncode == 0, proc.stderr
    count, message, values, impl = proc.stdout.strip().splitlines()
    assert count == "1"
    assert "rltorch._C is not loaded" in message and "pip install --no-build-isolation -e ." in message
    assert values == "[2.5, 1.0]"
    assert impl == "reference"


def test_strict_mode_turns_the_warning_into_an_error():
    proc = run_python(BLOCK_EXTENSION + "import rltorch", RLTORCH_STRICT="1")
    assert proc.returncode != 0
    assert "RLTORCH_STRICT=1" in proc.stderr and "ImportError" in proc.stderr


def test_fallback_matches_extension_numbers():
    # The same inputs through the reference (extension disabled) and the kernels.
    proc = run_python(
        "import torch, rltorch\n"
        "g = torch.Generator().manual_seed(5)\n"
        "r = torch.randn(30, 7, generator=g, dtype=torch.float64); t = torch.rand(30, 7, generator=g) < 0.1\n"
        "adv, ret = rltorch.ops.gae(r, r.roll(1, 0), r.roll(2, 0), t, t, 0.97, 0.9)\n"
        "print(rltorch.info()['extension_loaded'], repr(adv.sum().item()))\n",
        RLTORCH_DISABLE_EXT="1",
    )
    assert proc.returncode == 0, proc.stderr
    loaded, total = proc.stdout.split()
    assert loaded == "False"
    g = torch.Generator().manual_seed(5)
    r = torch.randn(30, 7, generator=g, dtype=torch.float64)
    t = torch.rand(30, 7, generator=g) < 0.1
    adv, _ = rltorch.ops.gae(r, r.roll(1, 0), r.roll(2, 0), t, t, 0.97, 0.9)
    assert abs(adv.sum().item() - float(total)) < 1e-9


@requires_ext
def test_info_reports_the_build():
    report = rltorch.info()
    assert report["version"] == rltorch.__version__
    assert report["torch"] == torch.__version__
    assert report["extension_loaded"] is True
    assert report["cuda_available"] == torch.cuda.is_available()
    if torch.version.cuda is not None and os.environ.get("RLTORCH_CUDA") != "0":
        # CI builds with a CUDA torch and the toolkit: the kernels must have been compiled.
        assert report["cuda_compiled"] is True
    assert report["ops"]["td_target"]["cpu"] == "extension"


def test_cli_info_json():
    proc = subprocess.run([sys.executable, "-m", "rltorch", "info", "--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in ("version", "torch", "extension_loaded", "cuda_compiled", "cuda_available"):
        assert key in report
    human = subprocess.run([sys.executable, "-m", "rltorch", "info"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert "extension loaded" in human.stdout and "td_target" in human.stdout


def test_cli_without_command_prints_help():
    proc = subprocess.run([sys.executable, "-m", "rltorch"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "usage: rltorch" in proc.stdout
