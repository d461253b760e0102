"""Encoder input preprocessing shared by training (`despite`) and the runtime.

Both sides call these functions, so a model sees at run time exactly what it saw in training:
IMU samples are resampled onto LiDAR frame stamps and made independent of each device's unknown
heading; point-cloud frames are sampled to a fixed size and centred as the model manifest declares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from rt_reid.arrays import F64Array, FloatArray
from rt_reid.errors import ReidError

GRAVITY = 9.80665  # m/s^2, standard gravity used to remove gravity and to scale accelerations
IMU_FEATURES = "heading_normalised_rotation_world_acceleration_v1"
Centring = Literal["frame", "window"]
CENTRINGS: tuple[Centring, ...] = ("frame", "window")


class PreprocessError(ReidError):
    """Inputs to the shared preprocessing are empty, unsorted or of the wrong shape."""


@dataclass(frozen=True)
class ResampledImu:
    """One IMU stream on frame stamps: orientation (T, 4) xyzw and world acceleration (T, 3)."""

    orientation_xyzw: F64Array
    world_acceleration: F64Array


def world_linear_acceleration(orientation_xyzw: F64Array, specific_force: F64Array) -> F64Array:
    """Rotate REP-145 specific force (sensor frame) into the device's world frame, minus gravity."""
    rotated: F64Array = Rotation.from_quat(orientation_xyzw).apply(specific_force)
    rotated[:, 2] -= GRAVITY
    return rotated


def _box_average(stamps: F64Array, values: F64Array, centres: F64Array, half: float) -> F64Array:
    """Mean of the piecewise-linear signal (stamps, values) over [c - half, c + half] per centre."""
    widths = np.diff(stamps)
    segment_area = 0.5 * (values[1:] + values[:-1]) * widths[:, None]
    cumulative = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(segment_area, axis=0)])

    def integral(t: F64Array) -> F64Array:
        t = np.clip(t, stamps[0], stamps[-1])
        i = np.clip(np.searchsorted(stamps, t, side="right") - 1, 0, len(stamps) - 2)
        dt = (t - stamps[i])[:, None]
        slope = (values[i + 1] - values[i]) / widths[i][:, None]
        result: F64Array = cumulative[i] + values[i] * dt + 0.5 * slope * dt**2
        return result

    lo, hi = centres - half, centres + half
    span = (np.clip(hi, stamps[0], stamps[-1]) - np.clip(lo, stamps[0], stamps[-1]))[:, None]
    mean = (integral(hi) - integral(lo)) / np.maximum(span, 1e-9)
    point = np.stack([np.interp(centres, stamps, values[:, k]) for k in range(values.shape[1])], 1)
    averaged: F64Array = np.where(span > 1e-9, mean, point)
    return averaged


def resample_imu(
    sample_stamps: F64Array,
    orientation_xyzw: F64Array,
    specific_force: F64Array,
    frame_stamps: F64Array,
    *,
    frame_period: float,
) -> ResampledImu:
    """Resample one IMU stream (seconds, xyzw, m/s^2) onto LiDAR frame stamps.

    Orientation is slerped at each frame stamp. Acceleration is rotated into the device world
    frame, gravity removed, then averaged over one frame period around the stamp (anti-aliasing
    100-200 Hz down to 10 Hz). Stamps must be strictly increasing and cover the frame stamps.
    """
    stamps = np.asarray(sample_stamps, dtype=np.float64)
    if stamps.ndim != 1 or len(stamps) < 2:
        raise PreprocessError(f"need at least 2 IMU samples to resample, got {stamps.shape}")
    if np.any(np.diff(stamps) <= 0):
        raise PreprocessError("IMU sample stamps must be strictly increasing")
    frames = np.asarray(frame_stamps, dtype=np.float64)
    if frames.min() < stamps[0] or frames.max() > stamps[-1]:
        raise PreprocessError(
            f"frame stamps [{frames.min():.3f}, {frames.max():.3f}] s are not covered by IMU "
            f"samples [{stamps[0]:.3f}, {stamps[-1]:.3f}] s"
        )
    quats = np.asarray(orientation_xyzw, dtype=np.float64)
    acc_world = world_linear_acceleration(quats, np.asarray(specific_force, dtype=np.float64))
    orientation = Slerp(stamps, Rotation.from_quat(quats))(frames).as_quat()
    acceleration = _box_average(stamps, acc_world, frames, frame_period / 2.0)
    return ResampledImu(orientation, acceleration)


def _heading(rotation: F64Array) -> F64Array:
    """Heading (rad) of rotation matrices (..., 3, 3): their x axis projected on the ground.

    Falls back to the y axis (minus 90 degrees) where x points nearly straight up or down; both
    choices shift by exactly h under a heading change h, so the result is heading-equivariant.
    """
    x_axis = rotation[..., :2, 0]
    y_axis = rotation[..., :2, 1]
    use_x = np.linalg.norm(x_axis, axis=-1) >= 0.5
    heading_x = np.arctan2(x_axis[..., 1], x_axis[..., 0])
    heading_y = np.arctan2(y_axis[..., 1], y_axis[..., 0]) - np.pi / 2
    result: F64Array = np.where(use_x, heading_x, heading_y)
    return result


def imu_features(
    orientation_xyzw: F64Array, world_acceleration: F64Array, *, acc_unit: float = GRAVITY
) -> FloatArray:
    """Encoder input (..., T, 12*S) from per-site orientation (..., T, S, 4) and acceleration.

    Each site's heading is normalised to its first frame: R' = Rz(-psi0) R, a' = Rz(-psi0) a, so
    the unknown per-device world heading (REP-145) cancels exactly. Channels follow the official
    DeSPITE order: all S rotation matrices (row-major), then all S accelerations / `acc_unit`.
    """
    quats = np.asarray(orientation_xyzw, dtype=np.float64)
    acc = np.asarray(world_acceleration, dtype=np.float64)
    if quats.shape[-1] != 4 or acc.shape[-1] != 3 or quats.shape[:-1] != acc.shape[:-1]:
        raise PreprocessError(
            f"orientation {quats.shape} and acceleration {acc.shape} must be (..., T, S, 4/3)"
        )
    rotation = Rotation.from_quat(quats.reshape(-1, 4)).as_matrix().reshape(*quats.shape[:-1], 3, 3)
    psi0 = _heading(rotation[..., 0, :, :, :])  # (..., S)
    cos, sin = np.cos(-psi0), np.sin(-psi0)
    zeros, ones = np.zeros_like(cos), np.ones_like(cos)
    undo_heading = np.stack(
        [cos, -sin, zeros, sin, cos, zeros, zeros, zeros, ones], axis=-1
    ).reshape(*psi0.shape, 3, 3)[..., None, :, :, :]  # broadcast over T
    rotation_n = undo_heading @ rotation
    acc_n = (undo_heading @ acc[..., None])[..., 0] / acc_unit
    lead = quats.shape[:-2]
    return np.concatenate(
        [rotation_n.reshape(*lead, -1), acc_n.reshape(*lead, -1)], axis=-1
    ).astype(np.float32)


def sample_frame(points: F64Array | FloatArray, n_points: int) -> tuple[FloatArray, F64Array]:
    """Fixed-size sample of one person's frame and the raw centroid used for centring.

    As the official preprocessing: at least `n_points` points -> farthest point sampling
    (deterministic start at index 0, selection order); fewer -> tiled in original order.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise PreprocessError(f"a frame needs shape (N>=1, 3), got {pts.shape}")
    centroid = pts.mean(axis=0)
    if len(pts) < n_points:
        reps, rest = divmod(n_points, len(pts))
        sampled = np.concatenate([np.tile(pts, (reps, 1)), pts[:rest]])
    else:
        # open3d costs ~1.4 s to import; only the learned channel samples frames.
        import open3d as o3d

        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
        sampled = np.asarray(cloud.farthest_point_down_sample(n_points, 0).points)
    return sampled.astype(np.float32), centroid


def fill_missing_frames(frames: Sequence[FloatArray | None]) -> list[FloatArray]:
    """Replace frames without points by the nearest earlier frame (later one for a leading gap)."""
    present = [i for i, frame in enumerate(frames) if frame is not None]
    if not present:
        raise PreprocessError("every frame of the window is empty")
    filled: list[FloatArray] = []
    last: FloatArray | None = None
    first = frames[present[0]]
    assert first is not None
    for frame in frames:
        last = frame if frame is not None else (last if last is not None else first)
        filled.append(last)
    return filled


def assemble_window(sampled: FloatArray, centroids: F64Array, centring: Centring) -> FloatArray:
    """Centre a window of sampled frames (T, n, 3) with their raw centroids (T, 3).

    "frame": each frame minus its own centroid (official DeSPITE, trajectory removed).
    "window": every frame minus the window's mean centroid (keeps the trajectory).
    """
    if centring == "frame":
        offset = centroids[:, None, :]
    elif centring == "window":
        offset = centroids.mean(axis=0)[None, None, :]
    else:
        raise PreprocessError(f"unknown centring {centring!r}; expected one of {CENTRINGS}")
    window: FloatArray = (sampled - offset).astype(np.float32)
    return window
