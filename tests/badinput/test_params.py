"""Every numeric parameter of the schema at NaN, +inf, -inf and just outside its range.

The keys come from the bundled schema (`rt_reid.config.schema()`, perception section included), so
a parameter added later is covered without touching this file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from rt_reid.config import ReidConfig, load_config, schema
from rt_reid.errors import ConfigError
from tests.badinput.conftest import CONFIG, params_file, replay


def numeric_keys() -> list[tuple[str, dict[str, Any]]]:
    """(dotted key, its schema node) of every number/integer parameter."""
    keys: list[tuple[str, dict[str, Any]]] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        kind = node.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if "object" in kinds:
            for key, sub in node.get("properties", {}).items():
                walk(sub, f"{prefix}{key}.")
        elif "number" in kinds or "integer" in kinds:
            keys.append((prefix.rstrip("."), node))

    walk(schema(), "")
    return keys


def shipped() -> dict[str, Any]:
    """The shipped parameters, validated, with defaults filled in."""
    return load_config(CONFIG).to_dict()


def with_value(key: str, value: float) -> dict[str, Any]:
    data = shipped()
    node = data
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return data


def out_of_range(node: dict[str, Any]) -> list[float]:
    """Values just outside the node's bounds."""
    step = 1 if node.get("type") == "integer" else 1e-6
    values = []
    if "minimum" in node:
        values.append(node["minimum"] - step)
    if "exclusiveMinimum" in node:
        values.append(node["exclusiveMinimum"])
    if "maximum" in node:
        values.append(node["maximum"] + step)
    if "exclusiveMaximum" in node:
        values.append(node["exclusiveMaximum"])
    return values


KEYS = numeric_keys()
NON_FINITE = [(k, v) for k, _ in KEYS for v in (math.nan, math.inf, -math.inf)]
OUTSIDE = [(k, v) for k, node in KEYS for v in out_of_range(node)]


def test_the_corpus_covers_the_schema() -> None:
    assert len(KEYS) >= 40
    assert "imu.buffer_s" in dict(KEYS)
    assert len(OUTSIDE) >= 15


@pytest.mark.parametrize(("key", "value"), NON_FINITE, ids=[f"{k}={v}" for k, v in NON_FINITE])
def test_non_finite_value_is_refused_naming_the_key(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ReidConfig.from_dict(with_value(key, value))


@pytest.mark.parametrize(("key", "value"), OUTSIDE, ids=[f"{k}={v}" for k, v in OUTSIDE])
def test_value_outside_the_range_is_refused_naming_the_key(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ReidConfig.from_dict(with_value(key, value))


@pytest.mark.slow
@pytest.mark.parametrize(
    "key",
    ["imu.buffer_s", "imu.max_rate_hz", "windows.min_observed_fraction", "identity.half_life_s"],
)
def test_nan_in_a_parameter_file_exits_2(cli, sim_bag: Path, tmp_path: Path, key: str) -> None:
    section, leaf = key.split(".")
    params = params_file(tmp_path, lambda p: p.setdefault(section, {}).__setitem__(leaf, math.nan))
    assert ".nan" in params.read_text()
    result = replay(cli, sim_bag, tmp_path / "out", "--config", params)
    assert result.code == 2
    assert f"{key}: must be a finite number" in result.err
    assert not (tmp_path / "out").exists()
