"""Names shared by every stage and tool: topics, message types, modalities, the unknown label.

Other tools read our bags and topics by these names (the topic contract in ARCHITECTURE.md), so
each is written once, here.
"""

from __future__ import annotations

from typing import Any, Final

from rt_reid.errors import ConfigError

UNKNOWN: Final = "unknown"  # class_id of a track without an identity on /reid/identities


class Topic:
    """Absolute topic names of the recorded and published streams."""

    LIDAR: Final = "/lidar/points"
    IMU_PREFIX: Final = "/imu/"  # /imu/<identity>/<site>
    GROUND_TRUTH: Final = "/sim/ground_truth"
    IDENTITIES: Final = "/reid/identities"
    MARKERS: Final = "/reid/markers"
    LATENCY: Final = "/reid/latency"
    DIAGNOSTICS: Final = "/diagnostics"


class MsgType:
    """ROS 2 message type names of those streams."""

    POINTCLOUD2: Final = "sensor_msgs/msg/PointCloud2"
    IMU: Final = "sensor_msgs/msg/Imu"
    DETECTIONS: Final = "vision_msgs/msg/Detection3DArray"
    MARKERS: Final = "visualization_msgs/msg/MarkerArray"
    DIAGNOSTICS: Final = "diagnostic_msgs/msg/DiagnosticArray"


class ModalityType:
    """Encoder modalities (as ImageBind's ``ModalityType``): manifest keys and ONNX file stems."""

    POINTCLOUD: Final = "pointcloud"
    IMU: Final = "imu"
    SKELETON: Final = "skeleton"
    TEXT: Final = "text"


SENSOR_MODALITIES: Final = (ModalityType.POINTCLOUD, ModalityType.IMU, ModalityType.SKELETON)
MODALITIES: Final = (*SENSOR_MODALITIES, ModalityType.TEXT)
RUNTIME_MODALITIES: Final = (ModalityType.POINTCLOUD, ModalityType.IMU)  # what the runtime encodes


def imu_topic(identity: str, site: str) -> str:
    """Topic on which `identity` publishes the IMU worn at `site`: ``/imu/<identity>/<site>``."""
    return f"{Topic.IMU_PREFIX}{identity}/{site}"


def parse_imu_topic(topic: str) -> tuple[str, str]:
    """Split ``/imu/<identity>/<site>`` into (identity, site); raise ConfigError otherwise."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "" or parts[1] != "imu" or not parts[2] or not parts[3]:
        raise ConfigError(f"{topic!r} is not an IMU topic of the form /imu/<identity>/<site>")
    return parts[2], parts[3]


def stamp_ns(time_msg: Any) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time (the join key between bags)."""
    return int(time_msg.sec) * 1_000_000_000 + int(time_msg.nanosec)
