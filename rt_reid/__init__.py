"""rt_reid: real-time LiDAR-IMU person re-identification (ROS-free runtime library)."""

from rt_reid.errors import ReidError

__all__ = ["ReidError"]
__version__ = "0.1.0"
