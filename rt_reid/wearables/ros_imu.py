"""Accepted wearable packets -> sensor_msgs/Imu messages (rosbags or rclpy classes; no rclpy).

Used by the ROS wearable bridge; tested with `rosbags` classes, which carry rclpy's field names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rt_reid.names import imu_topic
from rt_reid.wearables.packet import ImuPacket

UNKNOWN_COVARIANCE = np.zeros(9, dtype=np.float64)  # REP-145: all zeros = covariance unknown
NO_ORIENTATION_COVARIANCE = np.array([-1.0] + [0.0] * 8)  # element 0 = -1: no orientation


@dataclass(frozen=True)
class ImuTypes:
    """Message classes an Imu needs."""

    Imu: Any
    Header: Any
    Time: Any
    Quaternion: Any
    Vector3: Any

    @classmethod
    def from_lookup(cls, lookup: Callable[[str], Any]) -> ImuTypes:
        """Resolve the classes by full type name (``rt_reid.io.bag.msg_class`` or rosidl's)."""
        return cls(
            Imu=lookup("sensor_msgs/msg/Imu"),
            Header=lookup("std_msgs/msg/Header"),
            Time=lookup("builtin_interfaces/msg/Time"),
            Quaternion=lookup("geometry_msgs/msg/Quaternion"),
            Vector3=lookup("geometry_msgs/msg/Vector3"),
        )


def imu_frame_id(identity: str, site: str) -> str:
    """Frame of a wearable IMU, as in simulated bags: ``<identity>/<site>``."""
    return f"{identity}/{site}"


def packet_topic(packet: ImuPacket) -> str:
    """``/imu/<identity>/<site>`` of the packet's IMU."""
    return imu_topic(packet.identity, packet.site)


def imu_messages(packet: ImuPacket, types: ImuTypes) -> list[Any]:
    """One sensor_msgs/Imu per sample, stamped with the device stamp (REP-145 conventions)."""
    frame_id = imu_frame_id(packet.identity, packet.site)
    messages = []
    for i, stamp in enumerate(packet.stamps_ns.tolist()):
        force = packet.specific_force[i].tolist()
        gyro = packet.angular_velocity[i].tolist()
        if packet.orientation_xyzw is None:
            quat = (0.0, 0.0, 0.0, 0.0)
            orientation_covariance = NO_ORIENTATION_COVARIANCE.copy()
        else:
            quat = tuple(packet.orientation_xyzw[i].tolist())
            orientation_covariance = UNKNOWN_COVARIANCE.copy()
        messages.append(
            types.Imu(
                header=types.Header(
                    stamp=types.Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000),
                    frame_id=frame_id,
                ),
                orientation=types.Quaternion(x=quat[0], y=quat[1], z=quat[2], w=quat[3]),
                orientation_covariance=orientation_covariance,
                angular_velocity=types.Vector3(x=gyro[0], y=gyro[1], z=gyro[2]),
                angular_velocity_covariance=UNKNOWN_COVARIANCE.copy(),
                linear_acceleration=types.Vector3(x=force[0], y=force[1], z=force[2]),
                linear_acceleration_covariance=UNKNOWN_COVARIANCE.copy(),
            )
        )
    return messages
