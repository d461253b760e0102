"""A small stand-in with the simulator's scene interface (ARCHITECTURE.md) for fast unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from rt_reid.layouts import get_layout

ACTIVITIES = ("stand", "walk", "wave")


@dataclass
class FakeImu:
    stamps: np.ndarray
    orientation_xyzw: np.ndarray
    specific_force: np.ndarray
    angular_velocity: np.ndarray
    true_offset_s: float = 0.0


@dataclass
class FakePerson:
    person_id: int
    identity: str | None
    present: np.ndarray
    points: list[np.ndarray]
    skeleton: np.ndarray
    activity: np.ndarray
    imu: dict[str, FakeImu] = field(default_factory=dict)


@dataclass
class FakeScene:
    frame_stamps: np.ndarray
    people: list[FakePerson]


def fake_scene(
    *,
    people: int = 3,
    frames: int = 40,
    layout: str = "lipd4",
    seed: int = 0,
    bystander: bool = True,
) -> FakeScene:
    """People walking on circles with points, joints, activities and IMU streams (100 Hz)."""
    rng = np.random.default_rng(seed)
    stamps = 100.0 + np.arange(frames) * 0.1
    out = []
    for k in range(people + int(bystander)):
        phase = rng.uniform(0, 2 * np.pi)
        centre = np.stack(
            [
                np.cos(phase + 0.05 * np.arange(frames)) * (1 + k),
                np.sin(phase + 0.05 * np.arange(frames)) * (1 + k),
                np.full(frames, 0.9),
            ],
            axis=1,
        )
        points = []
        for t in range(frames):
            n = 0 if t in (5, 6) else int(rng.integers(20, 400))
            points.append((centre[t] + rng.normal(0, [0.15, 0.15, 0.4], (n, 3))).astype(np.float32))
        skeleton = (centre[:, None, :] + rng.normal(0, 0.2, (frames, 24, 3))).astype(np.float32)
        activity = rng.integers(0, len(ACTIVITIES), frames)
        present = np.ones(frames, dtype=bool)
        imu: dict[str, FakeImu] = {}
        identity = None if (bystander and k == people) else f"p{k}"
        if identity is not None:
            t_imu = np.arange(stamps[0] - 0.5, stamps[-1] + 0.5, 0.01)
            for s, site in enumerate(get_layout(layout).sites):
                yaw = rng.uniform(-np.pi, np.pi)  # unknown per-device heading
                angles = np.stack(
                    [
                        0.3 * np.sin(3 * t_imu + s),
                        0.2 * np.cos(2 * t_imu + k),
                        yaw + 0.5 * np.sin(t_imu),
                    ],
                    axis=1,
                )
                quat = Rotation.from_euler("xyz", angles).as_quat()
                force = np.stack(
                    [np.sin(5 * t_imu + k), np.cos(4 * t_imu), 9.81 + 0.5 * np.sin(t_imu)], axis=1
                )
                imu[site] = FakeImu(
                    t_imu + rng.normal(0, 1e-4, len(t_imu)), quat, force, np.zeros_like(force)
                )
        out.append(FakePerson(k, identity, present, points, skeleton, activity, imu))
    return FakeScene(stamps, out)
