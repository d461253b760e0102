"""Domain randomisation: scene configurations drawn from wide, documented ranges for training.

An encoder trained on one world configuration learns that world (one LiDAR, one mount, one IMU
noise level, one body and gait distribution). `randomized_config(seed)` draws every knob of
`SceneConfig` that describes the world rather than the experiment from `RANGES`, so training
data covers sensors, mounts, rooms, bodies and ways of moving that the defaults do not. Each
draw is a deterministic function of the seed; the ranges are documented in the package README.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rt_reid_sim.config import BEHAVIOURS, SceneConfig

RANDOMIZE_STREAM = 0xD0A1  # second seed word: independent of the scene's own generators


@dataclass(frozen=True)
class Ranges:
    """Closed ranges (lo, hi) drawn uniformly, and choices drawn with the given weights."""

    people: tuple[int, int] = (3, 12)
    lidar: tuple[tuple[str, float], ...] = (
        ("vlp-16", 0.3), ("os1-32", 0.25), ("os1-64", 0.3), ("os1-128", 0.15),
    )  # fmt: skip
    columns: tuple[tuple[int, float], ...] = ((512, 0.35), (900, 0.15), (1024, 0.35), (2048, 0.15))
    organized_share: float = 0.5  # probability of an organized (Ouster-like) cloud
    room_x_m: tuple[float, float] = (7.0, 16.0)
    room_y_m: tuple[float, float] = (6.0, 12.0)
    room_height_m: tuple[float, float] = (2.5, 4.0)
    mount_height_m: tuple[float, float] = (0.6, 2.6)  # LiDAR above the floor (below the ceiling)
    mount_offset_share: tuple[float, float] = (-0.4, 0.4)  # LiDAR x, y as a share of half the room
    roll_deg: tuple[float, float] = (-3.0, 3.0)
    pitch_deg: tuple[float, float] = (-10.0, 10.0)  # tilt: + looks down on one side
    yaw_deg: tuple[float, float] = (-180.0, 180.0)
    range_noise_m: tuple[float, float] = (0.0, 0.04)
    dropout: tuple[float, float] = (0.0, 0.15)
    mixed_pixels: tuple[float, float] = (0.0, 0.5)
    imu_rate_hz: tuple[tuple[float, float], ...] = ((50.0, 0.2), (100.0, 0.6), (200.0, 0.2))
    imu_noise_scale: tuple[float, float] = (0.3, 3.0)  # white noise, bias, heading drift
    imu_mount_error_deg: tuple[float, float] = (2.0, 15.0)
    clock_offset_max_s: tuple[float, float] = (0.0, 0.1)
    clock_jitter_share: tuple[float, float] = (0.0, 1.0)  # share of the largest allowed jitter
    packet_loss: tuple[float, float] = (0.0, 0.08)
    device_outages: tuple[float, float] = (0.0, 0.1)
    body_spread: tuple[float, float] = (1.0, 1.5)
    motion_spread: tuple[float, float] = (1.0, 1.6)
    standing_share: float = 0.25  # share of scenes with behaviour="standing"
    bystander_share: tuple[float, float] = (0.0, 0.4)


RANGES = Ranges()


def _choice(rng: np.random.Generator, options: tuple[tuple[Any, float], ...]) -> Any:
    """One option, drawn with its weight."""
    weights = np.array([w for _, w in options], dtype=np.float64)
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][0]


def randomized_config(seed: int, *, ranges: Ranges = RANGES, **fixed: Any) -> SceneConfig:
    """A `SceneConfig` for scene `seed` with every world knob drawn from `ranges`.

    Keyword arguments (e.g. `layout`, `duration_s`, `people`) are used as given instead of drawn.
    """
    rng = np.random.default_rng([seed, RANDOMIZE_STREAM])
    u = rng.uniform
    room = (round(float(u(*ranges.room_x_m)), 2), round(float(u(*ranges.room_y_m)), 2))
    height = round(float(u(*ranges.room_height_m)), 2)
    mount_z = float(min(u(*ranges.mount_height_m), height - 0.3))
    offsets = u(*ranges.mount_offset_share, size=2)
    people = int(rng.integers(ranges.people[0], ranges.people[1] + 1))
    imu_rate = float(_choice(rng, ranges.imu_rate_hz))
    lidar = str(_choice(rng, ranges.lidar))
    drawn: dict[str, Any] = {
        "people": people,
        "lidar": lidar,
        "columns": int(_choice(rng, ranges.columns)),
        "cloud_layout": "organized" if rng.random() < ranges.organized_share else "unorganized",
        "room_size": room,
        "room_height": height,
        "lidar_position": (
            round(float(offsets[0] * (room[0] / 2 - 1.0)), 3),
            round(float(offsets[1] * (room[1] / 2 - 1.0)), 3),
            round(mount_z, 3),
        ),
        "lidar_rpy_deg": (
            round(float(u(*ranges.roll_deg)), 2),
            round(float(u(*ranges.pitch_deg)), 2),
            round(float(u(*ranges.yaw_deg)), 2),
        ),
        "range_noise_m": float(u(*ranges.range_noise_m)),
        "dropout": float(u(*ranges.dropout)),
        "mixed_pixels": float(u(*ranges.mixed_pixels)),
        "imu_rate_hz": imu_rate,
        "imu_noise_scale": float(u(*ranges.imu_noise_scale)),
        "imu_mount_error_deg": float(u(*ranges.imu_mount_error_deg)),
        "clock_offset_max_s": float(u(*ranges.clock_offset_max_s)),
        "clock_jitter_s": float(u(*ranges.clock_jitter_share)) * 0.15 / imu_rate,
        "packet_loss": float(u(*ranges.packet_loss)),
        "device_outages": float(u(*ranges.device_outages)),
        "body_spread": float(u(*ranges.body_spread)),
        "motion_spread": float(u(*ranges.motion_spread)),
        "behaviour": BEHAVIOURS[1] if rng.random() < ranges.standing_share else BEHAVIOURS[0],
        "bystanders": round(float(u(*ranges.bystander_share)) * people),
        "seed": seed,
    }
    if "people" in fixed:
        drawn["bystanders"] = min(drawn["bystanders"], int(fixed["people"]))
    return SceneConfig(**{**drawn, **fixed})
