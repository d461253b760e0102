"""Message classes of the nodes, imported directly from their ROS packages (no rosidl_runtime_py).

`lookup` resolves a full type name (``"std_msgs/msg/Header"``) to its class, the signature that
`rt_reid.io.ros_msgs.MessageTypes.from_lookup` and `rt_reid.wearables.ros_imu.ImuTypes.from_lookup`
take; a name that is not listed here is a programming error and raises KeyError.
"""

from __future__ import annotations

from typing import Any

from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseWithCovariance, Quaternion, Vector3
from sensor_msgs.msg import CompressedImage, Imu, PointCloud2
from std_msgs.msg import ColorRGBA, Header
from vision_msgs.msg import (
    BoundingBox3D,
    Detection3D,
    Detection3DArray,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
)
from visualization_msgs.msg import Marker, MarkerArray, MeshFile

CLASSES: dict[str, Any] = {
    f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}": cls
    for cls in (
        Time,
        Duration,
        Header,
        ColorRGBA,
        Point,
        Quaternion,
        Vector3,
        Pose,
        PoseWithCovariance,
        CompressedImage,
        Imu,
        PointCloud2,
        ObjectHypothesis,
        ObjectHypothesisWithPose,
        BoundingBox3D,
        Detection3D,
        Detection3DArray,
        MeshFile,
        Marker,
        MarkerArray,
        KeyValue,
        DiagnosticStatus,
        DiagnosticArray,
    )
}


def lookup(name: str) -> Any:
    """The class of a full message type name, e.g. ``lookup("sensor_msgs/msg/Imu")``."""
    return CLASSES[name]
