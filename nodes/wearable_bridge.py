"""`wearable_bridge`: authenticated ZeroMQ wearable packets -> ``sensor_msgs/Imu`` topics.

Runs the same `rt_reid.wearables.WearableIngest` as ``rt-reid run`` (CurveZMQ allow-list,
identity binding, replay checks) and publishes every accepted sample on
``imu/<identity>/<site>``, frame ``<identity>/<site>``, stamped with the device stamp. One
publisher per registered (identity, site) is created at start-up from the key registry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rt_reid_nodes.messages import lookup
from rt_reid_nodes.spin import run_node
from sensor_msgs.msg import Imu

from rt_reid.errors import ConfigError
from rt_reid.wearables.ingest import DOC, IngestTiming, WearableIngest
from rt_reid.wearables.keys import KeyStore
from rt_reid.wearables.packet import ImuPacket
from rt_reid.wearables.ros_imu import ImuTypes, imu_messages

NODE_NAME = "wearable_bridge"
IMU_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.RELIABLE
)
DIAGNOSTICS_PERIOD_S = 1.0


class WearableBridge(Node):
    """ZeroMQ ingest thread -> Imu publishers; diagnostics with the accept/reject counters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        endpoint = self._declare_string(
            "endpoint", "ZeroMQ endpoint the wearables connect to, e.g. tcp://0.0.0.0:5555"
        )
        keys_dir = self._declare_string(
            "keys_dir",
            "key directory from `rt-reid keys create` (server key, allow-list, registry)",
        )
        defaults = IngestTiming()
        timing = IngestTiming(
            **{
                item.name: self._declare_seconds(
                    item.name, getattr(defaults, item.name), item.metadata[DOC]
                )
                for item in dataclasses.fields(IngestTiming)
            }
        )
        keys = KeyStore(keys_dir)
        self._types = ImuTypes.from_lookup(lookup)
        # Not `_publishers`: rclpy's Node (Iron and newer, so Jazzy) keeps its own list under that
        # name and appends to it in every create_publisher() and empties it in destroy_node().
        self._imu_publishers = {
            (reg.identity, site): self.create_publisher(Imu, f"imu/{reg.identity}/{site}", IMU_QOS)
            for reg in keys.allowed().values()
            for site in reg.sites
        }
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._ingest = WearableIngest(
            endpoint=endpoint,
            keys=keys,
            sink=self._publish,
            max_delay_s=timing.max_delay_s,
            stream_timeout_s=timing.stream_timeout_s,
        )
        self._ingest.start()
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        streams = len(self._imu_publishers)
        self.get_logger().info(
            f"listening on {self._ingest.bound_endpoint} for {streams} IMU streams"
        )

    def _declare_string(self, name: str, description: str) -> str:
        """A required string parameter (site-dependent: no default)."""
        descriptor = ParameterDescriptor(description=description, read_only=True)
        self.declare_parameter(name, Parameter.Type.STRING, descriptor)
        try:
            value = self.get_parameter(name).value
        except ParameterUninitializedException as err:
            raise ConfigError(f"parameter {name} is required: {description}") from err
        if not value:
            raise ConfigError(f"parameter {name} must not be empty: {description}")
        return str(value)

    def _declare_seconds(self, name: str, default: float, description: str) -> float:
        """A positive duration parameter with a range."""
        descriptor = ParameterDescriptor(
            description=description,
            read_only=True,
            floating_point_range=[FloatingPointRange(from_value=0.01, to_value=60.0, step=0.0)],
        )
        return float(self.declare_parameter(name, default, descriptor).value)

    def _publish(self, packet: ImuPacket) -> None:
        """Ingest thread: one Imu message per sample of an accepted packet."""
        publisher = self._imu_publishers[(packet.identity, packet.site)]
        for message in imu_messages(packet, self._types):
            publisher.publish(message)

    def _publish_diagnostics(self) -> None:
        """Accepted and rejected packet counts (rejections by reason) as a DiagnosticArray."""
        stats = self._ingest.stats()
        values = {
            "accepted_packets": stats.accepted_packets,
            "accepted_samples": stats.accepted_samples,
            "sink_errors": stats.sink_errors,
            **{f"rejected.{reason}": count for reason, count in sorted(stats.rejected.items())},
        }
        rejected = stats.rejected_total
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if rejected else DiagnosticStatus.OK,
            name="rt_reid: wearable bridge",
            message=f"{rejected} packets rejected" if rejected else "ok",
            hardware_id=self._ingest.bound_endpoint,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        message = DiagnosticArray(status=[status])
        message.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(message)

    def destroy_node(self) -> None:
        """Stop the ingest thread before the publishers go away."""
        self._ingest.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run rt_reid wearable_bridge``."""
    run_node(NODE_NAME, WearableBridge, SingleThreadedExecutor, args)


if __name__ == "__main__":
    main()
