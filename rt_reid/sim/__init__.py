"""Synthetic multi-person LiDAR + IMU world: bodies, motions, ray-cast LiDAR, IMUs, bags."""

from rt_reid.sim.bagio import BagSummary, write_bag
from rt_reid.sim.config import SceneConfig
from rt_reid.sim.imu import ImuStream
from rt_reid.sim.lidar import SimulationError
from rt_reid.sim.motion import ACTIVITIES
from rt_reid.sim.scene import SimPerson, SimScene, simulate_scene

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
