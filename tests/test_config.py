"""rltorch/config.py and rltorch/_checks.py: bounds declared on config fields (Annotated Range/Length), checked
after the type and before the cross-field rules, phrased once, and the shared number and device checks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import pytest
import torch

from rltorch._checks import Range, integer, is_device_name, same_device
from rltorch.config import Config, HiddenSizes, Positive, PositiveInt, Unit, describe, field_bounds, field_hints


@dataclass(kw_only=True)
class Example(Config):
    """Every kind of bound."""

    probability: Unit = 0.5
    count: PositiveInt = 3
    clip: Positive | None = None
    sizes: HiddenSizes = (8,)
    threads: Annotated[int, Range(1, 64)] | Literal["auto"] = "auto"
    temperature: Annotated[float, Range(0, 10, low_open=True, high_open=True)] = 1.0

    def check(self, values):
        super().check(values)
        self.requirement(values["count"] <= 100 or values["clip"] is not None, "clip", "is needed above 100 counts")


@pytest.mark.parametrize("field, value, message", [
    ("probability", 1.5, "`probability` must lie in [0, 1], got 1.5"),
    ("probability", math.nan, "`probability` must be a finite number"),
    ("count", 0, "`count` must be >= 1, got 0"),
    ("count", 2.5, "`count` must be an integer"),
    ("clip", 0.0, "`clip` must be > 0, got 0.0"),
    ("sizes", (), "`sizes` must hold at least 1 value(s), got []"),
    ("sizes", (8, 0), "`sizes` values must be >= 1, got [8, 0]"),
    ("threads", 65, "`threads` must be integer (must lie in [1, 64]) or auto, got 65"),
    ("threads", "many", "`threads` must be integer"),
    ("temperature", 10.0, "`temperature` must lie in (0, 10), got 10.0"),
])
def test_bounds_are_checked_naming_the_field(field, value, message):
    with pytest.raises(ValueError) as info:
        Example(**{field: value})
    assert message in str(info.value) and str(info.value).startswith("Example: ")


def test_bounds_then_rules_between_fields_and_what_the_cli_reads():
    assert Example(clip=None, count=5, threads=64, sizes=[4, 4]).sizes == (4, 4)
    with pytest.raises(ValueError, match="`clip` is needed above 100 counts"):
        Example(count=101)
    hints = field_hints(Example)
    assert hints["probability"] is float and hints["sizes"] == tuple[int, ...]  # bounds stripped for the parser
    assert field_bounds(Example) == {"probability": "must lie in [0, 1]", "count": "must be >= 1",
                                     "clip": "must be > 0", "sizes": "values must be >= 1; at least 1 value(s)",
                                     "threads": "must lie in [1, 64]", "temperature": "must lie in (0, 10)"}
    assert describe(Annotated[float, Range(0, 1)] | None) == "number (must lie in [0, 1]) or none"


def test_range_and_integer():
    assert Range(0, 1).describe() == "lie in [0, 1]" and Range(1, None).describe() == "be >= 1"
    assert Range(None, 0, high_open=True).describe() == "be < 0" and Range(0, 2**63 - 1).describe() == \
        "lie in [0, 2**63 - 1]"
    assert Range(0, math.inf, low_open=True, high_open=True).describe() == "lie in (0, inf)"
    assert integer("f", "x", 3, minimum=1) == 3
    with pytest.raises(ValueError, match="f: `x` must be >= 1, got 0"):
        integer("f", "x", 0, minimum=1)
    with pytest.raises(ValueError, match="f: `x` must lie in \\[0, 2\\*\\*62\\], got -1"):
        integer("f", "x", -1, 0, 2**62)


def test_device_checks():
    assert is_device_name("auto") and is_device_name("cuda:3") and not is_device_name("foo")
    same_device("op", torch.zeros(1), "a", b=torch.zeros(1), c=None)
    with pytest.raises(RuntimeError, match="rltorch.op: `b` is on meta but `a` is on cpu"):
        same_device("op", torch.zeros(1), "a", b=torch.zeros(1, device="meta"))
