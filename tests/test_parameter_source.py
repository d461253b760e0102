"""One parameter source: params dataclasses vs schema, ROS declarations, shipped YAML, READMEs."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from rt_reid_nodes.parameters import MAPS, parameter_specs

from rt_reid import params_doc
from rt_reid.config import (
    BINDINGS,
    DIRECT_KEYS,
    PERCEPTION_SCHEMA_NAME,
    SCHEMA_DIR,
    SCHEMA_NAME,
    Binding,
    schema,
    schema_node,
)
from rt_reid.runtime.perception.params import SITE_KEYS

REPO = Path(__file__).resolve().parents[1]
SCHEMA_TYPES = {float: "number", int: "integer", bool: "boolean", str: "string"}


def leaves(node: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Dotted key -> schema node of every parameter (maps without properties are leaves)."""
    if node.get("type") == "object" and "properties" in node:
        return {
            key: leaf
            for name, child in node["properties"].items()
            for key, leaf in leaves(child, f"{prefix}{name}.").items()
        }
    return {prefix.rstrip("."): node}


def bound_keys(bindings: tuple[Binding, ...]) -> dict[str, tuple[Binding, Any, Any]]:
    """Dotted key -> (binding, annotation, dataclass default) of every dataclass field."""
    keys: dict[str, tuple[Binding, Any, Any]] = {}
    for binding in bindings:
        for key, (hint, default) in binding.keys().items():
            dotted = f"{binding.section}.{key}"
            assert dotted not in keys, f"{dotted} is filled by two dataclasses"
            keys[dotted] = (binding, hint, default)
    return keys


def key_mismatches(root: dict[str, Any], bindings: tuple[Binding, ...]) -> list[str]:
    """Keys in the schema but in no dataclass, and fields of a dataclass missing in the schema."""
    in_schema = set(leaves(root)) - set(DIRECT_KEYS)
    in_classes = set(bound_keys(bindings))
    return [f"{key}: schema only" for key in sorted(in_schema - in_classes)] + [
        f"{key}: dataclass only" for key in sorted(in_classes - in_schema)
    ]


def schema_file_node(section: str) -> dict[str, Any]:
    """The node of a section as written in its schema file (no defaults filled in)."""
    if section.startswith("perception."):
        root = json.loads((SCHEMA_DIR / PERCEPTION_SCHEMA_NAME).read_text("utf-8"))
        return schema_node(root, section.removeprefix("perception."))
    return schema_node(json.loads((SCHEMA_DIR / SCHEMA_NAME).read_text("utf-8")), section)


def expected_type(hint: Any) -> dict[str, Any]:
    """The schema type (and enum) an annotation stands for."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        return {"type": "array", "items": expected_type(args[0])}
    if typing.get_origin(hint) is typing.Literal:
        return {"type": "string", "enum": list(args)}
    return {"type": SCHEMA_TYPES[hint]}


def test_every_schema_key_has_a_dataclass_field_and_vice_versa() -> None:
    assert key_mismatches(schema(), BINDINGS) == []
    assert set(DIRECT_KEYS) <= set(leaves(schema()))


def test_a_key_on_one_side_only_is_reported() -> None:
    @dataclasses.dataclass(frozen=True)
    class Widened:
        buffer_s: float
        max_rate_hz: float
        max_gap_s: float
        clock_jump_s: float
        silence_s: float
        new_knob: float

    widened = tuple(Binding("imu", Widened) if b.section == "imu" else b for b in BINDINGS)
    assert key_mismatches(schema(), widened) == ["imu.new_knob: dataclass only"]
    narrowed = tuple(b for b in BINDINGS if b.section != "windows")
    assert "windows.min_points: schema only" in key_mismatches(schema(), narrowed)


@pytest.mark.parametrize("key", sorted(bound_keys(BINDINGS)))
def test_schema_type_matches_the_annotation(key: str) -> None:
    _, hint, _ = bound_keys(BINDINGS)[key]
    node = leaves(schema())[key]
    expected = expected_type(hint)
    assert node["type"] == expected["type"], key
    if "enum" in expected:
        assert node["enum"] == expected["enum"], key
    if "items" in expected:
        assert node["items"]["type"] == expected["items"]["type"], key


def written_twice(binding: Binding) -> list[str]:
    """Keys whose default is in the dataclass and again in the schema file."""
    node = schema_file_node(binding.section)["properties"]
    return [
        key
        for key, (_, default) in binding.keys().items()
        if default is not dataclasses.MISSING and "default" in node[key]
    ]


@pytest.mark.parametrize(
    "binding", BINDINGS, ids=[f"{b.section}:{b.cls.__name__}" for b in BINDINGS]
)
def test_a_default_is_written_once(binding: Binding) -> None:
    """The dataclass default, else the schema's: never both (the bundled schema copies it)."""
    assert written_twice(binding) == []
    bundled = schema_node(schema(), binding.section)
    for key, (_, default) in binding.keys().items():
        if default is not dataclasses.MISSING and key not in bundled.get("required", ()):
            value = list(default) if isinstance(default, tuple) else default
            assert bundled["properties"][key]["default"] == value, key


def test_site_dependent_keys_are_required_and_have_no_default() -> None:
    for group, keys in SITE_KEYS.items():
        node = schema_node(schema(), f"perception.{group}")
        assert set(node["required"]) == keys, group
        assert not [k for k in keys if "default" in node["properties"][k]], group
    for key in ("model_dir", "identities.names", "identities.layout"):
        assert "default" not in leaves(schema())[key], key


def test_ros_declarations_are_the_schema_leaves_with_their_defaults() -> None:
    declared = {spec.name: spec.default for spec in parameter_specs()}
    expected = {key: node.get("default") for key, node in leaves(schema()).items()}
    assert declared == {key: value for key, value in expected.items() if key not in MAPS}
    assert declared["perception.tracker.max_coast_s"] == 3.0  # a dataclass-only default


def test_shipped_yaml_states_the_defaults() -> None:
    """config/reid.yaml writes tuning values out: each must equal the default it documents."""
    document = yaml.safe_load((REPO / "config" / "reid.yaml").read_text("utf-8"))
    shipped = leaves_of_values(document["reid_node"]["ros__parameters"])
    defaults = {key: node.get("default") for key, node in leaves(schema()).items()}
    differing = {
        key: (value, defaults[key])
        for key, value in shipped.items()
        if defaults[key] is not None and value != defaults[key]
    }
    assert differing == {}


def leaves_of_values(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of a nested parameter dict."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(leaves_of_values(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_readme_tables_equal_the_generated_ones() -> None:
    for name in params_doc.READMES:
        assert params_doc.BLOCK.search((REPO / name).read_text("utf-8")), f"{name}: no table"
    assert params_doc.stale() == []
    assert params_doc.main(["--check"]) == 0


def test_a_stale_table_is_reported(tmp_path: Path) -> None:
    for name in params_doc.READMES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((REPO / name).read_text("utf-8"), encoding="utf-8")
    readme = tmp_path / "rt_reid/README.md"
    text = readme.read_text("utf-8")
    readme.write_text(text.replace("| `identity.half_life_s` | number | `15.0` |", "| x |"))
    assert params_doc.stale(tmp_path) == ["rt_reid/README.md"]
    readme.write_text(params_doc.render(readme.read_text("utf-8")))
    assert params_doc.stale(tmp_path) == []
