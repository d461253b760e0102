"""ROS parameter declarations derived from the pipeline's parameter source (no rclpy import here).

The node declares one ROS parameter per leaf of `rt_reid.config.schema()` (the bundled schema,
checked against the stages' params dataclasses, whose defaults it carries), named by its dotted
path (a ROS params file nests them: ``identities: {names: [...]}`` is the parameter
``identities.names``), with the schema's description, type, range and default. The values it
reads back are nested again and validated by `rt_reid.config.ReidConfig.from_dict`, exactly like
``load_config`` does for the non-ROS commands. Keys that are free-form maps in the schema are
declared per configured identity and site (`layout_specs`, `clock_offset_specs`).
Site-dependent values have no default in the schema and are declared without a value, so a
missing one is reported, never defaulted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rt_reid.config import schema
from rt_reid.errors import ConfigError

Kind = Literal[
    "string", "integer", "double", "bool", "string_array", "integer_array", "double_array"
]
SCALAR_KINDS: dict[str, Kind] = {
    "string": "string",
    "integer": "integer",
    "number": "double",
    "boolean": "bool",
}
ARRAY_KINDS: dict[str, Kind] = {
    "string": "string_array",
    "integer": "integer_array",
    "number": "double_array",
}
LAYOUTS_MAP = "identities.layouts"  # identity -> layout name
CLOCK_OFFSETS_MAP = "imu.clock_offsets_s"  # identity -> site -> seconds
MAPS = (LAYOUTS_MAP, CLOCK_OFFSETS_MAP)


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: dotted name, type, description, schema default and range."""

    name: str
    kind: Kind
    description: str
    default: Any | None  # None: no default (site-dependent, or an optional map entry)
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def constraints(self) -> str:
        """Human-readable constraints for ParameterDescriptor.additional_constraints."""
        parts = []
        if self.choices:
            parts.append("one of: " + ", ".join(self.choices))
        if self.minimum is not None or self.maximum is not None:
            parts.append(f"range [{self.minimum}, {self.maximum}]")
        parts.append("validated by rt_reid.config (reid.schema.json)")
        return "; ".join(parts)


def _bound(node: dict[str, Any], inclusive: str, exclusive: str) -> float | None:
    """A numeric bound (ROS ranges are inclusive; exclusiveness is checked by the schema)."""
    value = node.get(inclusive, node.get(exclusive))
    return None if value is None else float(value)


def _leaf(name: str, node: dict[str, Any]) -> ParamSpec:
    """Spec of a scalar or array leaf."""
    kind_name = node.get("type")
    if kind_name == "array":
        items = node.get("items", {})
        kind = ARRAY_KINDS.get(str(items.get("type")))
        choices = tuple(items.get("enum", ()))
        bounds = items
    else:
        kind = SCALAR_KINDS.get(str(kind_name))
        choices = tuple(node.get("enum", ()))
        bounds = node
    if kind is None:
        raise ConfigError(f"schema key {name!r} has a type ROS parameters cannot carry: {node}")
    return ParamSpec(
        name=name,
        kind=kind,
        description=str(node.get("description", "")),
        default=node.get("default"),
        minimum=_bound(bounds, "minimum", "exclusiveMinimum"),
        maximum=_bound(bounds, "maximum", "exclusiveMaximum"),
        choices=tuple(str(c) for c in choices),
    )


def parameter_specs() -> list[ParamSpec]:
    """Every fixed schema leaf as a ROS parameter (maps: `layout_specs`, `clock_offset_specs`)."""
    specs: list[ParamSpec] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            for key, child in node["properties"].items():
                walk(child, f"{prefix}.{key}" if prefix else key)
        elif node.get("type") == "object":
            if prefix not in MAPS:
                raise ConfigError(f"schema map {prefix!r} has no ROS parameter mapping")
        else:
            specs.append(_leaf(prefix, node))

    walk(schema(), "")
    return specs


def layout_specs(names: list[str]) -> list[ParamSpec]:
    """Optional per-identity layout overrides ``identities.layouts.<identity>``."""
    return [
        ParamSpec(
            name=f"{LAYOUTS_MAP}.{name}",
            kind="string",
            description=f"wearable layout of {name} (overrides identities.layout)",
            default=None,
        )
        for name in names
    ]


def clock_offset_specs(sites: dict[str, tuple[str, ...]]) -> list[ParamSpec]:
    """Optional known device clock offsets ``imu.clock_offsets_s.<identity>.<site>``."""
    return [
        ParamSpec(
            name=f"{CLOCK_OFFSETS_MAP}.{name}.{site}",
            kind="double",
            description=f"known clock offset of {name}/{site}: device minus LiDAR clock (s)",
            default=None,
            minimum=-1.0,
            maximum=1.0,
        )
        for name, name_sites in sites.items()
        for site in name_sites
    ]


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``; ROS array values become plain lists."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        node = nested
        *parents, leaf = name.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"parameter {name!r} nests under the value of {part!r}")
            node = child
        node[leaf] = value if isinstance(value, str | bool | int | float) else list(value)
    return nested


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Inverse of `nest`: what ROS makes of a nested params file."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat
