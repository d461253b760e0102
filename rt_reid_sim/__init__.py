"""Synthetic multi-person LiDAR + IMU world: bodies, motions, ray-cast LiDAR, IMUs, bags.

Names are imported on first use (PEP 562), so `rt-reid simulate --help` and modules that only
need `SceneConfig` do not load open3d and the ray caster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rt_reid_sim.bagio import BagSummary, write_bag
    from rt_reid_sim.config import SceneConfig
    from rt_reid_sim.imu import ImuStream
    from rt_reid_sim.lidar import SimulationError
    from rt_reid_sim.motion import ACTIVITIES
    from rt_reid_sim.scene import SimPerson, SimScene, simulate_scene

_SOURCES = {
    "ACTIVITIES": "rt_reid_sim.motion",
    "BagSummary": "rt_reid_sim.bagio",
    "ImuStream": "rt_reid_sim.imu",
    "SceneConfig": "rt_reid_sim.config",
    "SimPerson": "rt_reid_sim.scene",
    "SimScene": "rt_reid_sim.scene",
    "SimulationError": "rt_reid_sim.lidar",
    "simulate_scene": "rt_reid_sim.scene",
    "write_bag": "rt_reid_sim.bagio",
}

__all__ = [
    "ACTIVITIES",
    "BagSummary",
    "ImuStream",
    "SceneConfig",
    "SimPerson",
    "SimScene",
    "SimulationError",
    "simulate_scene",
    "write_bag",
]


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use."""
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'rt_reid_sim' has no attribute {name!r}")
    return getattr(importlib.import_module(source), name)
