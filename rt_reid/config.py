"""Pipeline parameters: YAML (ROS 2 params file) -> dict -> JSON schema -> frozen dataclasses.

The same `ReidConfig.from_dict` is used by `load_config` (a params file) and by the ROS node (a
dict built from its declared parameters), so both validate identically. One parameter source:
each stage's frozen params dataclass is the truth for its keys (and for a default where its
field has one); `BINDINGS` says which schema section each dataclass fills, and `from_dict` builds
every one of them from its section generically. The schema (`rt_reid/schema/reid.schema.json`,
its `perception` section in `perception.schema.json`) adds each key's meaning, range and the
defaults that no dataclass carries; `schema()` bundles the two files and fills in the dataclass
defaults, and tests/test_parameter_source.py checks schema, dataclasses, ROS declarations, the
shipped YAML and the README tables (`rt_reid.params_doc`) against each other. Site-dependent
values (model directory, identities, perception geometry) have no defaults and must be given.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast, get_args, get_origin, get_type_hints

import jsonschema
import yaml

from rt_reid.errors import ConfigError, ReidError
from rt_reid.layouts import WearableLayout, get_layout
from rt_reid.paths import find_data
from rt_reid.runtime.identity import EvidenceParams
from rt_reid.runtime.imu_buffer import ImuStoreParams
from rt_reid.runtime.inference import Backend
from rt_reid.runtime.perception import PerceptionParams
from rt_reid.runtime.perception.params import (
    BackgroundParams,
    ClusterParams,
    GroundParams,
    RoiParams,
    TrackerParams,
)
from rt_reid.runtime.physics import PhysicsParams

SCHEMA_DIR = Path(__file__).parent / "schema"
SCHEMA_NAME = "reid.schema.json"
PERCEPTION_SCHEMA_NAME = "perception.schema.json"
ROS_PARAMETERS = "ros__parameters"
DEFAULT_NODE = "reid_node"


@dataclass(frozen=True)
class InferenceParams:
    """Backend choice and encoding cadence."""

    backend: Backend
    encoding_stride: int
    max_windows_per_frame: int
    intra_op_threads: int


@dataclass(frozen=True)
class WindowParams:
    """Track window readiness."""

    lag_frames: int
    min_observed_fraction: float
    min_points: int


@dataclass(frozen=True)
class ImuParams:
    """IMU buffering plus known per-device clock offsets ((identity, site) -> seconds)."""

    store: ImuStoreParams
    clock_offsets_s: dict[tuple[str, str], float]


@dataclass(frozen=True)
class ContinuityParams:
    """When a new track continues one that ended (identity survives a track break)."""

    max_gap_s: float
    speed_mps: float


@dataclass(frozen=True)
class Binding:
    """The schema section that one params dataclass fills, and how its fields are named there.

    A field's key is its name, unless `renames` (field -> key) says otherwise; a field that is
    itself a dataclass is flattened with its name as prefix (`EvidenceParams.calibration.slope`
    is `identity.calibration_slope`).
    """

    section: str  # dotted path of the schema object, e.g. "identity" or "perception.roi"
    cls: type[Any]
    renames: Mapping[str, str] = field(default_factory=dict)

    def keys(self) -> dict[str, tuple[Any, Any]]:
        """Schema key -> (the field's type annotation, its default or dataclasses.MISSING)."""
        return _field_keys(self.cls, self.renames, "")

    def build(self, section: Mapping[str, Any]) -> Any:
        """The dataclass from its validated section (numbers coerced to the annotated types)."""
        try:
            return _build(self.cls, section, self.renames, "")
        except ReidError as err:
            raise ConfigError(str(err)) from err


# Every params dataclass and the section it fills. The schema must describe exactly their keys
# plus DIRECT_KEYS (tests/test_parameter_source.py), so a key added on one side only fails a test.
BINDINGS: tuple[Binding, ...] = (
    Binding("inference", InferenceParams),
    Binding("windows", WindowParams),
    Binding("imu", ImuStoreParams),
    Binding("identity", EvidenceParams),
    Binding(
        "identity",
        ContinuityParams,
        renames={"max_gap_s": "continuity_gap_s", "speed_mps": "continuity_speed_mps"},
    ),
    Binding("physics", PhysicsParams),
    Binding("perception.roi", RoiParams),
    Binding("perception.ground", GroundParams),
    Binding("perception.background", BackgroundParams),
    Binding("perception.cluster", ClusterParams),
    Binding("perception.tracker", TrackerParams),
)
# Keys that `ReidConfig.from_dict` reads itself: they are cross-checked against each other
# (layouts of configured identities, clock offsets of their sites), not one stage's parameters.
DIRECT_KEYS = (
    "frame_id",
    "model_dir",
    "identities.names",
    "identities.layout",
    "identities.layouts",
    "imu.clock_offsets_s",
)


@dataclass(frozen=True)
class ReidConfig:
    """Every pipeline parameter, validated (see the schema for meanings and units)."""

    frame_id: str
    model_dir: str
    identities: tuple[str, ...]
    layouts: dict[str, WearableLayout]  # identity -> its wearable layout
    inference: InferenceParams
    windows: WindowParams
    imu: ImuParams
    identity: EvidenceParams
    continuity: ContinuityParams
    physics: PhysicsParams
    perception: PerceptionParams
    raw: dict[str, Any]  # the validated dict with defaults filled in (to_dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReidConfig:
        """Validate a parameter dict (the contents of ros__parameters) and build the config."""
        if not isinstance(data, dict):
            raise ConfigError(f"parameters must be a mapping, got {type(data).__name__}")
        filled = _with_defaults(copy.deepcopy(data), schema())
        errors = sorted(_validator().iter_errors(filled), key=lambda e: list(e.absolute_path))
        if errors:
            raise ConfigError("; ".join(_describe(error) for error in errors))
        non_finite = non_finite_keys(filled)
        if non_finite:
            raise ConfigError(
                f"{', '.join(non_finite)}: must be a finite number (NaN and infinity are refused)"
            )
        ident = filled["identities"]
        unknown = sorted(set(ident["layouts"]) - set(ident["names"]))
        if unknown:
            raise ConfigError(f"identities.layouts: {unknown} are not in identities.names")
        offsets = {
            (name, site): float(value)
            for name, sites in filled["imu"]["clock_offsets_s"].items()
            for site, value in sites.items()
        }
        layouts = {n: get_layout(ident["layouts"].get(n, ident["layout"])) for n in ident["names"]}
        for name, site in offsets:
            if name not in layouts or site not in layouts[name].sites:
                raise ConfigError(
                    f"imu.clock_offsets_s.{name}.{site}: no such identity/site among the "
                    "configured identities and their layouts"
                )
        idp = filled["identity"]
        if idp["keep_evidence"] > idp["assign_evidence"]:
            raise ConfigError(
                f"identity.keep_evidence ({idp['keep_evidence']}) must be <= "
                f"identity.assign_evidence ({idp['assign_evidence']})"
            )
        # The perception groups are built (and type-checked) by PerceptionParams itself, which
        # other callers use without a parameter file; every other stage generically here.
        built = {
            b.cls: b.build(filled[b.section])
            for b in BINDINGS
            if not b.section.startswith("perception.")
        }
        perception = PerceptionParams.from_dict(filled["perception"])
        filled["perception"] = perception.to_dict()
        return cls(
            frame_id=filled["frame_id"],
            model_dir=filled["model_dir"],
            identities=tuple(ident["names"]),
            layouts=layouts,
            inference=built[InferenceParams],
            windows=built[WindowParams],
            imu=ImuParams(store=built[ImuStoreParams], clock_offsets_s=offsets),
            identity=built[EvidenceParams],
            continuity=built[ContinuityParams],
            physics=built[PhysicsParams],
            perception=perception,
            raw=filled,
        )

    def to_dict(self) -> dict[str, Any]:
        """The full parameter dict (defaults filled in); `from_dict(to_dict())` round-trips."""
        return copy.deepcopy(self.raw)

    def model_path(self) -> Path:
        """`model_dir` resolved: absolute, else relative to the working directory, else shipped."""
        path = Path(self.model_dir).expanduser()
        if path.is_absolute() or path.exists():
            return path
        return find_data(self.model_dir)

    def identity_sites(self) -> dict[str, tuple[str, ...]]:
        """identity -> its IMU sites in the encoder's block order."""
        return {name: self.layouts[name].sites for name in self.identities}


def load_config(path: Path | str, *, node_name: str | None = None) -> ReidConfig:
    """Read a ROS 2 params file (``<node>: ros__parameters: {...}``) and validate it.

    With one node section (or ``/**``) it is used; with several, `node_name` picks one.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"parameter file {path} does not exist") from err
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read parameter file {path}: {err}") from err
    if not isinstance(document, dict) or not document:
        raise ConfigError(f"{path}: expected `<node_name>: {{{ROS_PARAMETERS}: ...}}` at top level")
    if node_name is None:
        if len(document) != 1:
            raise ConfigError(
                f"{path}: several node sections {sorted(document)}; choose one with node_name"
            )
        node_name = next(iter(document))
    section = document.get(node_name)
    if not isinstance(section, dict) or ROS_PARAMETERS not in section:
        raise ConfigError(f"{path}: no `{node_name}: {ROS_PARAMETERS}:` section")
    try:
        return ReidConfig.from_dict(section[ROS_PARAMETERS])
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def _field_keys(
    cls: type[Any], renames: Mapping[str, str], prefix: str
) -> dict[str, tuple[Any, Any]]:
    """`Binding.keys` for `cls`, its keys prefixed (nested dataclass fields flattened)."""
    keys: dict[str, tuple[Any, Any]] = {}
    hints = get_type_hints(cls)
    for item in dataclasses.fields(cls):
        hint = hints[item.name]
        if dataclasses.is_dataclass(hint):
            keys.update(_field_keys(cast(type[Any], hint), {}, f"{item.name}_"))
            continue
        default = item.default
        if item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        keys[prefix + renames.get(item.name, item.name)] = (hint, default)
    return keys


def _build(
    cls: type[Any], section: Mapping[str, Any], renames: Mapping[str, str], prefix: str
) -> Any:
    """`Binding.build` for `cls`: every field whose key the section holds, others defaulted."""
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        hint = hints[item.name]
        if dataclasses.is_dataclass(hint):
            values[item.name] = _build(cast(type[Any], hint), section, {}, f"{item.name}_")
            continue
        key = prefix + renames.get(item.name, item.name)
        if key in section:
            values[item.name] = _coerce(hint, section[key])
    return cls(**values)


def _coerce(hint: Any, value: Any) -> Any:
    """A schema-validated value as its annotation's type (YAML `2` for a float, lists as tuples)."""
    if hint is float:
        return float(value)
    if hint is int:
        return int(value)
    if get_origin(hint) is tuple:
        item_type = get_args(hint)[0]
        return tuple(_coerce(item_type, v) for v in value)
    return value


@cache
def schema() -> dict[str, Any]:
    """The pipeline schema, bundled: the `perception` section from perception.schema.json, and
    the dataclass defaults filled in where a key has no `default` of its own and is not required.
    """
    root = _read_schema(SCHEMA_NAME)
    perception = _read_schema(PERCEPTION_SCHEMA_NAME)
    root["properties"]["perception"] = {k: v for k, v in perception.items() if k[0] != "$"}
    for binding in BINDINGS:
        node = schema_node(root, binding.section)
        for key, (_, default) in binding.keys().items():
            prop = node["properties"].get(key)
            if (
                prop is not None
                and default is not dataclasses.MISSING
                and "default" not in prop
                and key not in node.get("required", ())
            ):
                prop["default"] = list(default) if isinstance(default, tuple) else default
    return root


def schema_node(root: dict[str, Any], section: str) -> dict[str, Any]:
    """The schema object of a dotted section path ("perception.roi")."""
    node = root
    for part in section.split("."):
        node = node["properties"][part]
    return node


def _read_schema(name: str) -> dict[str, Any]:
    """One schema file shipped in rt_reid/schema."""
    path = SCHEMA_DIR / name
    try:
        return cast(dict[str, Any], json.loads(path.read_text("utf-8")))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read the parameter schema {path}: {err}") from err


@cache
def _validator() -> jsonschema.protocols.Validator:
    """Draft 2020-12 validator of the bundled schema."""
    root = schema()
    validator_cls = jsonschema.validators.validator_for(root)
    validator_cls.check_schema(root)
    return validator_cls(root)


def non_finite_keys(data: Any, prefix: str = "") -> list[str]:
    """Dotted keys of every NaN or infinite number in a parameter dict (the schema lets them by)."""
    if isinstance(data, dict):
        return [k for key, v in data.items() for k in non_finite_keys(v, f"{prefix}{key}.")]
    if isinstance(data, list | tuple):
        return [k for i, v in enumerate(data) for k in non_finite_keys(v, f"{prefix}{i}.")]
    if isinstance(data, float) and not math.isfinite(data):
        return [prefix.rstrip(".")]
    return []


def _with_defaults(data: Any, node: dict[str, Any]) -> Any:
    """Fill the schema's `default` values into missing object properties (recursively)."""
    if not isinstance(data, dict) or node.get("type") != "object":
        return data
    for key, sub in node.get("properties", {}).items():
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if key in data:
            data[key] = _with_defaults(data[key], sub)
    return data


def _describe(error: jsonschema.ValidationError) -> str:
    """`dotted.key: problem` for one schema violation."""
    where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    if error.validator == "not":
        return f"{where}: {error.instance!r} is a reserved value"
    return f"{where}: {error.message}"
