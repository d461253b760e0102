"""Spinning multi-beam LiDAR: beam tables, ray directions, and occlusion by ray casting (open3d).

The room is static, so it is ray-cast once per scene; each frame only the rays whose direction
falls inside a person's angular bounding box are cast again against that frame's body meshes (one
`RaycastingScene` per frame) and win where they are nearer than the room. This is exact (the room
does not move) and keeps the per-frame cost proportional to the people's angular size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
from numpy.typing import NDArray

from rt_reid.arrays import F64Array, FloatArray, I64Array
from rt_reid.errors import ReidError


class SimulationError(ReidError):
    """The simulator cannot build or run a scene (bad geometry, ray casting failure)."""


@dataclass(frozen=True)
class LidarPreset:
    """Beam table of one sensor model; rows ordered top beam first, `rings` per row."""

    name: str
    elevations_deg: F64Array
    rings: NDArray[np.int64]
    min_range: float
    max_range: float

    @property
    def beams(self) -> int:
        """Number of beams (rows of the organized cloud)."""
        return len(self.elevations_deg)


def _ouster(beams: int) -> LidarPreset:
    """Ouster OS1 uniform beam configuration: 45 deg vertical field of view, ring 0 at the top."""
    return LidarPreset(
        f"os1-{beams}", np.linspace(22.5, -22.5, beams), np.arange(beams), 0.5, 120.0
    )


# VLP-16 laser ids 0..15 fire at these elevations; its `ring` counts from the lowest beam.
VLP16_LASER_ELEVATIONS = (-15, 1, -13, 3, -11, 5, -9, 7, -7, 9, -5, 11, -3, 13, -1, 15)
PRESETS: dict[str, LidarPreset] = {
    "vlp-16": LidarPreset(
        "vlp-16",
        np.sort(np.asarray(VLP16_LASER_ELEVATIONS, dtype=np.float64))[::-1].copy(),
        np.arange(15, -1, -1),
        0.5,
        100.0,
    ),
    "os1-32": _ouster(32),
    "os1-64": _ouster(64),
    "os1-128": _ouster(128),
}


def rotation_rpy(roll: float, pitch: float, yaw: float) -> F64Array:
    """Rotation matrix Rz(yaw) @ Ry(pitch) @ Rx(roll) (radians)."""
    cr, sr, cp, sp, cy, sy = (
        np.cos(roll),
        np.sin(roll),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(yaw),
        np.sin(yaw),
    )
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    result: F64Array = rz @ ry @ rx
    return result


@dataclass
class Scan:
    """One frame as a range image: ranges (B*C,) with inf = no return, labels and intensity."""

    ranges: FloatArray
    labels: NDArray[np.int16]  # person index per ray, -1 = room or nothing
    intensity: FloatArray


class Lidar:
    """A static spinning LiDAR at `pose` (lidar -> room) with `columns` azimuth steps."""

    def __init__(self, preset: LidarPreset, columns: int, pose: F64Array) -> None:
        self.preset = preset
        self.columns = columns
        self.pose = pose
        elevation = np.deg2rad(preset.elevations_deg)
        # Columns sweep clockwise seen from above, starting behind the sensor (as Ouster does).
        self.azimuths = np.pi - 2 * np.pi * np.arange(columns) / columns
        el, az = np.meshgrid(elevation, self.azimuths, indexing="ij")
        directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
        self.directions = directions.reshape(-1, 3)  # lidar frame, row-major (beam, column)
        rotation, origin = pose[:3, :3], pose[:3, 3]
        world = self.directions @ rotation.T
        self._rays = np.concatenate([np.broadcast_to(origin, world.shape), world], axis=1).astype(
            np.float32
        )
        self._static_range = np.full(len(world), np.inf, dtype=np.float32)
        self._static_intensity = np.zeros(len(world), dtype=np.float32)

    def set_room(self, vertices: F64Array, triangles: I64Array, reflectivity: F64Array) -> None:
        """Ray-cast the static room once; later frames reuse these ranges."""
        scene = o3d.t.geometry.RaycastingScene()
        try:
            scene.add_triangles(
                o3d.core.Tensor.from_numpy(vertices.astype(np.float32)),
                o3d.core.Tensor.from_numpy(triangles.astype(np.uint32)),
            )
            hit = scene.cast_rays(o3d.core.Tensor.from_numpy(self._rays))
        except RuntimeError as err:
            raise SimulationError(f"ray casting the room failed: {err}") from err
        ranges = hit["t_hit"].numpy()
        prim = hit["primitive_ids"].numpy().astype(np.int64)
        valid = np.isfinite(ranges)
        cos = np.abs(np.einsum("ij,ij->i", hit["primitive_normals"].numpy(), self._rays[:, 3:]))
        refl = np.where(valid, reflectivity[np.where(valid, prim, 0)], 0.0)
        self._static_range = np.where(valid, ranges, np.inf).astype(np.float32)
        self._static_intensity = _intensity(refl, cos, self._static_range)

    @property
    def static_ranges(self) -> FloatArray:
        """Range per ray (B*C,) of the room alone (inf = no return); read-only view."""
        view = self._static_range.view()
        view.flags.writeable = False
        return view

    def sweep_offset(self, points: F64Array, frame_rate_hz: float) -> F64Array:
        """Seconds after the frame stamp at which the sweep reaches points (N, 3) in lidar frame."""
        azimuth = np.arctan2(points[:, 1], points[:, 0])
        column = np.mod((np.pi - azimuth) / (2 * np.pi), 1.0)
        offset: F64Array = column / frame_rate_hz
        return offset

    def static_scan(self) -> Scan:
        """A fresh copy of the room-only scan."""
        return Scan(
            self._static_range.copy(),
            np.full(len(self._static_range), -1, dtype=np.int16),
            self._static_intensity.copy(),
        )

    def _candidate_rays(self, vertices_lidar: F64Array) -> I64Array:
        """Indices of rays whose direction falls inside this body's angular bounding box."""
        xy = np.hypot(vertices_lidar[:, 0], vertices_lidar[:, 1])
        elevation = np.arctan2(vertices_lidar[:, 2], xy)
        azimuth = np.arctan2(vertices_lidar[:, 1], vertices_lidar[:, 0])
        centre = np.arctan2(vertices_lidar[:, 1].mean(), vertices_lidar[:, 0].mean())
        rel = (azimuth - centre + np.pi) % (2 * np.pi) - np.pi
        step = 2 * np.pi / self.columns
        if xy.min() < 0.05 or rel.max() - rel.min() > np.pi:
            columns = np.arange(self.columns)
        else:
            # column c looks at azimuth pi - c * step
            c_lo = np.floor((np.pi - (centre + rel.max())) / step) - 1
            c_hi = np.ceil((np.pi - (centre + rel.min())) / step) + 1
            columns = np.mod(np.arange(c_lo, c_hi + 1), self.columns).astype(np.int64)
        pad = np.deg2rad(0.5)
        el = np.deg2rad(self.preset.elevations_deg)
        beams = np.nonzero((el >= elevation.min() - pad) & (el <= elevation.max() + pad))[0]
        rays: I64Array = (beams[:, None] * self.columns + columns[None, :]).ravel()
        return rays

    def scan(self, bodies: list[tuple[F64Array, I64Array, float]]) -> Scan:
        """Noise-free scan with `bodies` = [(vertices in room frame, triangles, reflectivity)]."""
        scan = self.static_scan()
        ranges, labels, intensity = scan.ranges, scan.labels, scan.intensity
        if not bodies:
            return scan
        rotation, origin = self.pose[:3, :3], self.pose[:3, 3]
        scene = o3d.t.geometry.RaycastingScene()
        wanted = np.zeros(len(ranges), dtype=bool)
        reflectivity = np.zeros(len(bodies))
        for k, (vertices, triangles, refl) in enumerate(bodies):
            wanted[self._candidate_rays((vertices - origin) @ rotation)] = True
            # A ray from outside a closed surface enters it through a front face first, so the
            # faces turned away from the sensor can never be the nearest hit: drop them.
            corners = vertices[triangles]
            normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            facing = np.einsum("ij,ij->i", normals, corners[:, 0] - origin) < 0
            try:
                scene.add_triangles(
                    o3d.core.Tensor.from_numpy(vertices.astype(np.float32)),
                    o3d.core.Tensor.from_numpy(triangles[facing].astype(np.uint32)),
                )
            except RuntimeError as err:
                raise SimulationError(
                    f"cannot add body {k} to the ray casting scene: {err}"
                ) from err
            reflectivity[k] = refl
        rays = np.flatnonzero(wanted)
        try:
            hit = scene.cast_rays(o3d.core.Tensor.from_numpy(self._rays[rays]))
        except RuntimeError as err:
            raise SimulationError(f"ray casting {len(rays)} rays failed: {err}") from err
        t_hit = hit["t_hit"].numpy()
        nearer = np.isfinite(t_hit) & (t_hit < ranges[rays])
        rays, t_hit = rays[nearer], t_hit[nearer]
        geometry = hit["geometry_ids"].numpy()[nearer].astype(np.int64)
        normals = hit["primitive_normals"].numpy()[nearer]
        cos = np.abs(np.einsum("ij,ij->i", normals, self._rays[rays, 3:]))
        ranges[rays] = t_hit
        labels[rays] = geometry
        intensity[rays] = _intensity(reflectivity[geometry], cos, t_hit)
        return scan


def mix_edges(scan: Scan, columns: int, share: float, rng: np.random.Generator) -> None:
    """Blend a share of body returns at silhouette edges with the background behind (in place).

    A beam footprint that straddles a depth edge returns a range in between (a "mixed pixel"):
    the return floats behind the person. It keeps the person's label while within 0.3 m of the
    body, beyond that it belongs to nobody.
    """
    rays = np.flatnonzero(scan.labels >= 0)
    if share <= 0 or len(rays) == 0:
        return
    column = rays % columns
    left = rays - column + (column - 1) % columns
    right = rays - column + (column + 1) % columns
    behind = np.maximum(scan.ranges[left], scan.ranges[right])
    behind = np.where(np.isfinite(behind), behind, scan.ranges[rays] + 2.0)
    edge = behind > scan.ranges[rays] + 0.5
    chosen = edge & (rng.random(len(rays)) < share)
    rays, far = rays[chosen], behind[chosen]
    near = scan.ranges[rays]
    mixed = near + rng.random(len(rays)).astype(np.float32) * (far - near)
    scan.ranges[rays] = mixed
    scan.labels[rays] = np.where(mixed - near < 0.3, scan.labels[rays], -1)


def _intensity(reflectivity: F64Array, cos: F64Array, ranges: FloatArray) -> FloatArray:
    """Return strength: Lambertian reflectivity, mild range fall-off, scaled to 0..255."""
    value = (
        255.0 * reflectivity * (0.25 + 0.75 * cos) / (1.0 + (np.minimum(ranges, 1e3) / 40.0) ** 2)
    )
    result: FloatArray = np.clip(value, 0.0, 255.0).astype(np.float32)
    return result
