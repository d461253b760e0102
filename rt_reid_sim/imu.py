"""Wearable IMUs: rigid mounts on body segments and REP-145 readings from the analytic motion.

Specific force is the second derivative of the mounted site's position (central differences with a
1 ms step on the analytic motion) minus gravity, in the sensor frame; angular velocity is the sensor
frame rate from the relative rotation over +-1 ms. Orientation is reported relative to a per-device
gravity-aligned frame whose heading is random and drifts slowly. Stamps carry a per-device clock
offset and jitter; lost packets are missing samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from rt_reid.arrays import F64Array
from rt_reid.runtime.features import GRAVITY
from rt_reid_sim.body import BodyShape, J
from rt_reid_sim.config import SceneConfig
from rt_reid_sim.motion import PersonMotion

DIFF_STEP_S = 1e-3
LEAD_S = 0.6  # IMU streams start this long before the first frame and end after the last

# site -> (segment joint, child joint, fraction along the bone, outward surface normal, radius)
SITES: dict[str, tuple[str, str, float, tuple[float, float, float], float]] = {
    "left_forearm": ("left_elbow", "left_wrist", 0.55, (0.0, 1.0, 0.0), 0.04),
    "right_forearm": ("right_elbow", "right_wrist", 0.55, (0.0, -1.0, 0.0), 0.04),
    "left_lower_leg": ("left_knee", "left_ankle", 0.4, (1.0, 0.0, 0.0), 0.055),
    "right_lower_leg": ("right_knee", "right_ankle", 0.4, (1.0, 0.0, 0.0), 0.055),
    "left_wrist": ("left_elbow", "left_wrist", 0.92, (0.0, 1.0, 0.0), 0.035),
}


@dataclass(frozen=True)
class ImuStream:
    """One device's samples as it reports them (stamps in the LiDAR clock, seconds)."""

    stamps: F64Array  # (M,)
    orientation_xyzw: F64Array  # (M, 4) sensor frame relative to the device's gravity-aligned frame
    specific_force: F64Array  # (M, 3) m/s^2, sensor frame, +g up at rest
    angular_velocity: F64Array  # (M, 3) rad/s, sensor frame
    true_offset_s: float  # the device clock offset added to every stamp


@dataclass(frozen=True)
class Mount:
    """Rigid sensor mount: position (3,) and rotation (3, 3) of the sensor in its joint's frame."""

    site: str
    joint: int
    position: F64Array
    rotation: F64Array


def make_mount(
    site: str, shape: BodyShape, rng: np.random.Generator, error_deg: float = 4.0
) -> Mount:
    """Sensor on the segment surface: x along the bone (distal), z out of the skin, small errors
    (1 cm position, `error_deg` 1-sigma rotation per axis)."""
    joint, child, fraction, outward, radius = SITES[site]
    bone = shape.offsets[J[child]]
    scale = shape.girth * shape.height / 1.75
    out = np.asarray(outward)
    position = fraction * bone + out * radius * scale + rng.normal(0.0, 0.01, 3)
    x_axis = bone / np.linalg.norm(bone)
    y_axis = np.cross(out, x_axis)
    base = np.stack([x_axis, y_axis, out], axis=1)  # columns: sensor axes in the joint frame
    error = Rotation.from_rotvec(rng.normal(0.0, np.deg2rad(error_deg), 3)).as_matrix()
    return Mount(site, J[joint], position, base @ error)


@dataclass(frozen=True)
class IdealImu:
    """Noise-free readings at true times: orientation (N, 3, 3) sensor->room, f and omega (N, 3)."""

    rotation: F64Array
    specific_force: F64Array
    angular_velocity: F64Array


def ideal_imus(motion: PersonMotion, mounts: list[Mount], times: F64Array) -> list[IdealImu]:
    """Exact-physics readings of every mount at `times` (scene seconds)."""
    h = DIFF_STEP_S
    rotations, positions = motion.evaluate(
        np.concatenate([times - h, times, times + h]), joints={m.joint for m in mounts}
    )
    n = len(times)
    gravity_up = np.array([0.0, 0.0, GRAVITY])
    out = []
    for mount in mounts:
        r_joint = rotations[:, mount.joint]
        r_sensor = r_joint @ mount.rotation
        site = positions[:, mount.joint] + r_joint @ mount.position
        before, now, after = site[:n], site[n : 2 * n], site[2 * n :]
        acceleration = (after - 2.0 * now + before) / h**2
        force_world = acceleration + gravity_up
        rot_now = r_sensor[n : 2 * n]
        force = np.einsum("nji,nj->ni", rot_now, force_world)
        relative = np.einsum("nji,njk->nik", r_sensor[:n], r_sensor[2 * n :])
        omega = Rotation.from_matrix(relative).as_rotvec() / (2.0 * h)
        out.append(IdealImu(rot_now, force, omega))
    return out


def sample_times(cfg: SceneConfig, rng: np.random.Generator) -> F64Array:
    """True sample times of one device: its own 100 Hz grid with a random phase."""
    period = 1.0 / cfg.imu_rate_hz
    start = -LEAD_S - rng.uniform(0.0, period)
    end = cfg.frames / cfg.frame_rate_hz + LEAD_S
    times: F64Array = start + period * np.arange(
        int(np.ceil((end - start) / period)) + 1, dtype=float
    )
    return times


def lost_samples(count: int, rate: float, rng: np.random.Generator) -> NDArray[np.bool_]:
    """Packet loss mask: half of `rate` as single drops, half as bursts of 5-30 samples."""
    lost = rng.random(count) < rate / 2
    bursts = rng.poisson(rate / 2 * count / 17.5) if rate > 0 else 0
    for _ in range(int(bursts)):
        start, length = int(rng.integers(count)), int(rng.integers(5, 31))
        lost[start : start + length] = True
    lost[0] = lost[-1] = False  # keep the stream's span
    return lost


def device_stream(
    ideal: IdealImu, times: F64Array, cfg: SceneConfig, rng: np.random.Generator
) -> ImuStream:
    """What one device reports: noisy readings, drifting heading, offset and jittered stamps."""
    n, s = len(times), cfg.imu_noise_scale
    offset = float(rng.uniform(-cfg.clock_offset_max_s, cfg.clock_offset_max_s))
    jitter = np.clip(rng.normal(0.0, 1.0, n), -3.0, 3.0) * cfg.clock_jitter_s
    stamps = cfg.start_time_s + times + offset + jitter
    force = ideal.specific_force + rng.normal(0.0, 0.05 * s, 3) + rng.normal(0.0, 0.04 * s, (n, 3))
    omega = (
        ideal.angular_velocity + rng.normal(0.0, 0.003 * s, 3) + rng.normal(0.0, 0.006 * s, (n, 3))
    )
    heading0 = float(rng.uniform(-np.pi, np.pi))  # the unknown device heading (not noise)
    drift_rate = rng.normal(0.0, np.deg2rad(1.0) / 60.0 * s)
    wander = np.cumsum(rng.normal(0.0, np.deg2rad(0.02) * s, n)) if s > 0 else np.zeros(n)
    heading = heading0 + drift_rate * times + wander
    cos, sin = np.cos(-heading), np.sin(-heading)
    frame = np.zeros((n, 3, 3))
    frame[:, 0, 0], frame[:, 0, 1], frame[:, 1, 0], frame[:, 1, 1] = cos, -sin, sin, cos
    frame[:, 2, 2] = 1.0
    orientation = frame @ ideal.rotation
    if s > 0:
        orientation = (
            orientation
            @ Rotation.from_rotvec(rng.normal(0.0, np.deg2rad(0.2) * s, (n, 3))).as_matrix()
        )
    quats = Rotation.from_matrix(orientation).as_quat()
    quats *= np.where(quats[:, 3:] < 0, -1.0, 1.0)  # w >= 0, as most devices report
    keep = ~lost_samples(n, cfg.packet_loss, rng)
    if rng.random() < cfg.device_outages:  # the device goes silent once (battery, radio)
        length = rng.uniform(5.0, 15.0)
        start = rng.uniform(times[0], max(times[0], times[-1] - length))
        keep &= ~((times >= start) & (times < start + length))
        keep[0] = keep[-1] = True  # still spans the scene
    return ImuStream(stamps[keep], quats[keep], force[keep], omega[keep], offset)
