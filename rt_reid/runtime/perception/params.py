"""Parameters of the LiDAR front end and tracker, grouped as in the `perception` config section.

Every group is a frozen keyword-only dataclass; `PerceptionParams.from_dict` builds them from the
parsed YAML section (unknown keys and wrong types raise ConfigError naming the key) and
`to_dict` writes them back. The field defaults here are the only copy of the perception defaults:
`rt_reid/schema/perception.schema.json` gives the same keys their meanings and types,
`rt_reid.config.schema()` fills these defaults in, and tests/test_parameter_source.py checks
that the two name the same keys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_type_hints

from rt_reid.errors import ConfigError

# Keys that depend on the installation (room, mounting): no default in the parameter file.
SITE_KEYS: dict[str, set[str]] = {
    "roi": {"x_min", "x_max", "y_min", "y_max", "z_min", "z_max"},
    "ground": {"mode", "plane"},
}


@dataclass(frozen=True, kw_only=True)
class RoiParams:
    """Region of interest: an axis-aligned box in the LiDAR frame plus a minimum range."""

    x_min: float = -12.0
    x_max: float = 12.0
    y_min: float = -12.0
    y_max: float = 12.0
    z_min: float = -3.0
    z_max: float = 3.0
    min_range: float = 0.3  # metres; drops returns from the sensor's own mount


@dataclass(frozen=True, kw_only=True)
class GroundParams:
    """Ground removal: a fixed plane, a per-cell floor height learned at start-up, or none.

    With ``none`` nothing is removed; the plane still gives heights for the person gates.
    """

    mode: Literal["plane", "cells", "none"] = "cells"
    plane: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 2.0)  # a,b,c,d of a*x+b*y+c*z+d=0
    cell_size: float = 0.5  # metres, "cells" mode
    margin: float = 0.12  # points closer than this above the ground are ground


@dataclass(frozen=True, kw_only=True)
class BackgroundParams:
    """Background model: per-beam range image, or voxel occupancy where beams cannot be found.

    `mode` auto uses the range image when the first frame shows beam structure (elevations
    clustered on beams, azimuths on columns), else the voxel grid.
    """

    mode: Literal["auto", "range_image", "voxel"] = "auto"
    voxel_size: float = 0.15
    warmup_s: float = 1.0  # learn the static scene; no detections during this time
    warmup_min_fraction: float = 0.3  # share of warm-up frames a voxel must be hit in
    absorb_s: float = 20.0  # a newly static object (moved chair) becomes background after this
    forget_s: float = 120.0  # a background voxel never hit again is freed after this
    free_s: float = 1.0  # ... or after this much evidence that rays pass through it
    reveal_s: float = 1.0  # absorb time of surfaces farthest in their direction (were occluded)
    reveal_tolerance: float = 0.1  # metres short of that farthest range still counted
    reveal_bin_deg: float = 0.5  # direction bins for the farthest range
    ray_bin_deg: float = 1.5  # direction bins for the free-space evidence
    threshold: float = 0.5  # hit rate above which a voxel is background
    range_tolerance: float = 0.08  # metres along the ray checked for background (range noise)
    protect_min_travel: float = 0.5  # tracks that moved this far are never absorbed
    protect_min_top: float = 1.2  # ... nor tracks this tall (people; chairs and boxes are lower)
    protect_radius: float = 0.6  # foreground within this of a protected track is never learned
    find_static_people: bool = True  # at the end of warm-up, person-shaped background -> tracks


@dataclass(frozen=True, kw_only=True)
class ClusterParams:
    """Ground-plane grid clustering of foreground points and person-size gates."""

    cell_size: float = 0.1  # metres; 8-connected occupied cells form one cluster
    min_points: int = 30  # at close range; fewer far away (see min_point_share)
    min_point_share: float = 0.15  # share of a person's expected returns at its range and beams
    min_points_floor: int = 4  # never fewer points than this
    min_top: float = 0.9  # cluster top height above ground (sitting people are ~1.3 m)
    max_top: float = 2.4
    min_height: float = 0.5  # vertical extent of the cluster's points
    min_thickness: float = 0.015  # std across the ground-plane main axis; walls are thinner
    max_footprint: float = 1.2  # larger xy extent: split (by track predictions or k-means)
    head_prominence: float = 0.15  # head above shoulders, to split untracked oversized clusters
    pair_span: float = 0.9  # a cluster with a wider ground diagonal is searched for two heads
    split_margin: float = 0.25  # predicted centres this far outside a cluster's box still split it
    split_min_separation: float = 0.3  # closer predicted centres count as one


@dataclass(frozen=True, kw_only=True)
class TrackerParams:
    """Constant-velocity Kalman filter in the ground plane, gated Hungarian, lifecycle."""

    process_accel: float = 2.0  # m/s^2, white-acceleration noise density
    measurement_std: float = 0.08  # metres, centroid noise
    gate_m: float = 1.0  # max distance prediction -> detection
    gate_sigma: float = 4.0  # Mahalanobis gate (standard deviations)
    confirm_hits: int = 3  # hits to confirm a tentative track
    tentative_max_missed: int = 2  # a tentative track dies after this many misses in a row
    max_coast_s: float = 3.0  # a lost confirmed track coasts this long before it is dropped
    max_hidden_s: float = 60.0  # ... or this long while its place is hidden behind others
    coast_damping_s: float = 1.0  # time constant of the velocity decay while coasting
    max_speed: float = 3.0  # m/s, velocity clamp for coasting predictions
    merge_distance: float = 0.2  # confirmed tracks closer than this are one person: merged
    top_weight: float = 1.0  # association cost per metre of height difference (shape cue)


@dataclass(frozen=True, kw_only=True)
class PerceptionParams:
    """All perception parameters (the `perception` section of the parameter file)."""

    roi: RoiParams = field(default_factory=RoiParams)
    ground: GroundParams = field(default_factory=GroundParams)
    background: BackgroundParams = field(default_factory=BackgroundParams)
    cluster: ClusterParams = field(default_factory=ClusterParams)
    tracker: TrackerParams = field(default_factory=TrackerParams)

    def __post_init__(self) -> None:
        """Reject values that would make the stages meaningless, naming the key."""
        roi = self.roi
        for axis in "xyz":
            if getattr(roi, f"{axis}_min") >= getattr(roi, f"{axis}_max"):
                raise ConfigError(f"perception.roi.{axis}_min must be < {axis}_max")
        positive = {
            "background.voxel_size": self.background.voxel_size,
            "background.absorb_s": self.background.absorb_s,
            "background.forget_s": self.background.forget_s,
            "background.free_s": self.background.free_s,
            "background.reveal_s": self.background.reveal_s,
            "background.reveal_bin_deg": self.background.reveal_bin_deg,
            "background.ray_bin_deg": self.background.ray_bin_deg,
            "cluster.cell_size": self.cluster.cell_size,
            "ground.cell_size": self.ground.cell_size,
            "tracker.measurement_std": self.tracker.measurement_std,
            "tracker.gate_m": self.tracker.gate_m,
            "tracker.merge_distance": self.tracker.merge_distance,
            "tracker.coast_damping_s": self.tracker.coast_damping_s,
        }
        for key, value in positive.items():
            if not value > 0:
                raise ConfigError(f"perception.{key} must be > 0, got {value}")
        if not 0 < self.background.threshold < 1:
            raise ConfigError("perception.background.threshold must be in (0, 1)")
        if not math.hypot(*self.ground.plane[:3]) > 0:
            raise ConfigError("perception.ground.plane normal (a, b, c) must be non-zero")
        if self.tracker.confirm_hits < 1:
            raise ConfigError("perception.tracker.confirm_hits must be >= 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerceptionParams:
        """Build from a parsed config section; site-dependent keys are required, others default."""
        if not isinstance(data, dict):
            raise ConfigError(f"perception: expected a mapping, got {type(data).__name__}")
        groups = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(groups))
        if unknown:
            raise ConfigError(f"perception: unknown key(s) {unknown} (known: {sorted(groups)})")
        for name, keys in SITE_KEYS.items():
            given = data.get(name)
            missing = sorted(keys - set(given if isinstance(given, dict) else ()))
            if name not in data or missing:
                raise ConfigError(
                    f"perception.{name}: site-dependent key(s) {missing or sorted(keys)} "
                    "must be set"
                )
        hints = get_type_hints(cls)
        built = {
            name: _build_group(f"perception.{name}", hints[name], data[name])
            for name in groups
            if name in data
        }
        return cls(**built)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists) that `from_dict` and the schema accept."""
        return {
            f.name: {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(getattr(self, f.name)).items()
            }
            for f in dataclasses.fields(self)
        }


def _build_group(path: str, group_cls: Any, data: Any) -> Any:
    """One parameter group from a mapping, type-checking every value."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(group_cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown} (known: {sorted(hints)})")
    return group_cls(
        **{key: _check_value(f"{path}.{key}", hints[key], v) for key, v in data.items()}
    )


def _check_value(path: str, hint: Any, value: Any) -> Any:
    """Coerce and validate one scalar/tuple value against its annotation."""
    args = get_args(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if args and all(isinstance(a, str) for a in args):  # Literal[...]
        if value not in args:
            raise ConfigError(f"{path}: expected one of {list(args)}, got {value!r}")
        return value
    if args and all(a is float for a in args):  # fixed-length tuple of floats
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(_check_value(f"{path}[{i}]", float, v) for i, v in enumerate(value))
    raise ConfigError(f"{path}: unsupported parameter type {hint}")  # pragma: no cover
