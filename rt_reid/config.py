"""Pipeline parameters: YAML (ROS 2 params file) -> dict -> JSON schema -> frozen dataclasses.

The same `ReidConfig.from_dict` is used by `load_config` (a params file) and by the ROS node (a
dict built from its declared parameters), so both validate identically. The schema
(`rt_reid/schema/reid.schema.json`, with the `perception` section from `perception.schema.json`)
holds every key, its meaning and the defaults of tuning values; site-dependent values (model
directory, identities, perception geometry) have no defaults and must be given.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from rt_reid.errors import ConfigError, ReidError
from rt_reid.layouts import WearableLayout, get_layout
from rt_reid.paths import find_data
from rt_reid.runtime.identity import Calibration, EvidenceParams
from rt_reid.runtime.imu_buffer import ImuStoreParams
from rt_reid.runtime.inference import Backend
from rt_reid.runtime.perception import PerceptionParams
from rt_reid.runtime.physics import PhysicsParams

SCHEMA_DIR = Path(__file__).parent / "schema"
SCHEMA_NAME = "reid.schema.json"
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
        imu = filled["imu"]
        perception = PerceptionParams.from_dict(filled["perception"])
        filled["perception"] = perception.to_dict()
        return cls(
            frame_id=filled["frame_id"],
            model_dir=filled["model_dir"],
            identities=tuple(ident["names"]),
            layouts=layouts,
            inference=InferenceParams(**filled["inference"]),
            windows=WindowParams(**filled["windows"]),
            imu=ImuParams(
                store=ImuStoreParams(
                    buffer_s=float(imu["buffer_s"]),
                    max_rate_hz=float(imu["max_rate_hz"]),
                    max_gap_s=float(imu["max_gap_s"]),
                    clock_jump_s=float(imu["clock_jump_s"]),
                    silence_s=float(imu["silence_s"]),
                ),
                clock_offsets_s=offsets,
            ),
            identity=EvidenceParams(
                llr_slope=float(idp["llr_slope"]),
                llr_threshold=float(idp["llr_threshold"]),
                llr_clip=float(idp["llr_clip"]),
                half_life_s=float(idp["half_life_s"]),
                max_evidence=float(idp["max_evidence"]),
                assign_evidence=float(idp["assign_evidence"]),
                keep_evidence=float(idp["keep_evidence"]),
                calibration=Calibration(
                    float(idp["calibration_slope"]), float(idp["calibration_intercept"])
                ),
                learned_weight=float(idp["learned_weight"]),
                physics_weight=float(idp["physics_weight"]),
            ),
            continuity=ContinuityParams(
                max_gap_s=float(idp["continuity_gap_s"]),
                speed_mps=float(idp["continuity_speed_mps"]),
            ),
            physics=_physics_params(filled["physics"]),
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


def _physics_params(section: dict[str, Any]) -> PhysicsParams:
    """The validated `physics` section as `PhysicsParams` (bands odd, one weight per feature)."""
    try:
        return PhysicsParams(
            smoothing_frames=tuple(int(k) for k in section["smoothing_frames"]),
            half_life_s=float(section["half_life_s"]),
            min_points=int(section["min_points"]),
            weights=tuple(float(w) for w in section["weights"]),
            bias=float(section["bias"]),
            max_llr=float(section["max_llr"]),
        )
    except ReidError as err:
        raise ConfigError(str(err)) from err


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


@cache
def schema() -> dict[str, Any]:
    """The pipeline schema (its `perception` section is a $ref to perception.schema.json)."""
    return cast(dict[str, Any], json.loads((SCHEMA_DIR / SCHEMA_NAME).read_text("utf-8")))


@cache
def _perception_schema() -> dict[str, Any]:
    """The PERCEPTION section's schema, shipped next to ours."""
    path = SCHEMA_DIR / "perception.schema.json"
    try:
        return cast(dict[str, Any], json.loads(path.read_text("utf-8")))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read the perception schema {path}: {err}") from err


@cache
def _validator() -> jsonschema.protocols.Validator:
    """Draft 2020-12 validator with perception.schema.json resolvable as a relative $ref."""
    root = schema()
    uri = root["$id"].rsplit("/", 1)[0] + "/perception.schema.json"
    resource = Resource.from_contents(_perception_schema(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    validator_cls = jsonschema.validators.validator_for(root)
    validator_cls.check_schema(root)
    return validator_cls(root, registry=registry)


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
