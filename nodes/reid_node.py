"""`reid_node`: the ROS 2 (Jazzy/Kilted) shell around `rt_reid.runtime.pipeline.ReidPipeline`.

Subscribes ``lidar/points`` (sensor-data QoS) and ``imu/<identity>/<site>`` for the configured
identities; publishes ``reid/identities``, ``reid/markers``, ``reid/latency`` and ``/diagnostics``.
Threading: one executor thread; IMU callbacks only buffer samples; the LiDAR callback hands the
cloud to `rt_reid.runtime.live.ReidEngine`, whose single worker thread runs the pipeline on the
newest frame and drops (and counts) frames it could not start before the next arrived. Every
decision (parameter validation, conversion, reset on a clock jump) lives in `rt_reid`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from functools import partial
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.clock import JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rt_reid_nodes.messages import lookup
from rt_reid_nodes.parameters import (
    LAYOUTS_MAP,
    ParamSpec,
    clock_offset_specs,
    layout_specs,
    nest,
    parameter_specs,
)
from rt_reid_nodes.spin import run_node
from sensor_msgs.msg import Imu, PointCloud2
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from rt_reid.config import ReidConfig
from rt_reid.errors import ConfigError, MessageError
from rt_reid.io.pointcloud import pointcloud2_to_xyz
from rt_reid.io.ros_msgs import (
    MessageTypes,
    detections_msg,
    diagnostics_msg,
    imu_sample,
    latency_msg,
    markers_msg,
)
from rt_reid.layouts import get_layout
from rt_reid.names import stamp_ns
from rt_reid.runtime.live import Frame, Latency, ReidEngine
from rt_reid.runtime.pipeline import FrameResult, ReidPipeline

NODE_NAME = "reid_node"
PARAMETER_TYPES = {
    "string": Parameter.Type.STRING,
    "integer": Parameter.Type.INTEGER,
    "double": Parameter.Type.DOUBLE,
    "bool": Parameter.Type.BOOL,
    "string_array": Parameter.Type.STRING_ARRAY,
    "integer_array": Parameter.Type.INTEGER_ARRAY,
    "double_array": Parameter.Type.DOUBLE_ARRAY,
}
INT64_MAX = 2**63 - 1
DOUBLE_MAX = sys.float_info.max
IMU_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.BEST_EFFORT
)
OUTPUT_QOS = 10
DIAGNOSTICS_PERIOD_S = 1.0
CLOCK_JUMP_BACK_S = 0.5  # ROS time going back further than this resets the pipeline
QOS_OVERRIDES = "qos_overrides."  # parameters rclpy declares itself for QoS overrides
ROS_PARAMETERS = {"use_sim_time", "start_type_description_service"}  # declared by rclpy


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """Read-only descriptor with description, constraints and the schema's numeric range."""
    descriptor = ParameterDescriptor(
        name=spec.name,
        type=PARAMETER_TYPES[spec.kind].value,
        description=spec.description,
        additional_constraints=spec.constraints,
        read_only=True,
    )
    if spec.kind == "integer" and (spec.minimum is not None or spec.maximum is not None):
        low = -INT64_MAX if spec.minimum is None else int(spec.minimum)
        high = INT64_MAX if spec.maximum is None else int(spec.maximum)
        descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=0)]
    if spec.kind == "double" and (spec.minimum is not None or spec.maximum is not None):
        low_f = -DOUBLE_MAX if spec.minimum is None else spec.minimum
        high_f = DOUBLE_MAX if spec.maximum is None else spec.maximum
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=low_f, to_value=high_f, step=0.0)
        ]
    return descriptor


def _default(spec: ParamSpec) -> Any:
    """The schema default in the parameter's ROS type, or the bare type when there is none."""
    value = spec.default
    if value is None or value == [] or isinstance(value, dict):
        return PARAMETER_TYPES[spec.kind]
    if spec.kind == "double":
        return float(value)
    if spec.kind == "double_array":
        return [float(v) for v in value]
    return value


class ReidNode(Node):
    """LiDAR + IMU topics in, identity tracks out; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        # Every parameter of the params file is declared at construction, so that keys the
        # schema does not know are found through the public API (`list_parameters`).
        super().__init__(NODE_NAME, automatically_declare_parameters_from_overrides=True, **kwargs)
        config = self._load_config()
        self._types = MessageTypes.from_lookup(lookup)
        self._pipeline = ReidPipeline(config=config)
        self._frame_id = config.frame_id
        self.get_logger().info(
            f"model {config.model_path()}, backend {self._pipeline.backend_name}, "
            f"identities {list(config.identities)}"
        )
        self._identities_pub = self.create_publisher(
            Detection3DArray, "reid/identities", OUTPUT_QOS
        )
        self._markers_pub = self.create_publisher(MarkerArray, "reid/markers", OUTPUT_QOS)
        self._latency_pub = self.create_publisher(DiagnosticArray, "reid/latency", OUTPUT_QOS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_QOS)
        self._engine = ReidEngine(
            pipeline=self._pipeline, to_xyz=pointcloud2_to_xyz, publish=self._publish
        )
        self._engine.start()

        for identity, sites in config.identity_sites().items():
            for site in sites:
                self.create_subscription(
                    Imu,
                    f"imu/{identity}/{site}",
                    partial(self._on_imu, identity, site),
                    IMU_QOS,
                )
        self.create_subscription(
            PointCloud2,
            "lidar/points",
            self._on_cloud,
            qos_profile_sensor_data,
        )
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self._jump_handle = self.get_clock().create_jump_callback(
            JumpThreshold(
                min_forward=None,
                min_backward=Duration(nanoseconds=-int(CLOCK_JUMP_BACK_S * 1e9)),
                on_clock_change=False,
            ),
            post_callback=self._on_time_jump,
        )

    def _declare(self, spec: ParamSpec) -> Any:
        """(Re)declare one parameter with its descriptor; return its value, None when unset.

        A parameter given in the params file was declared without a descriptor at construction;
        it is undeclared first, and declaring it again applies the file's value to the typed,
        read-only declaration.
        """
        if self.has_parameter(spec.name):
            self.undeclare_parameter(spec.name)
        try:
            self.declare_parameter(spec.name, _default(spec), _descriptor(spec))
            return self.get_parameter(spec.name).value
        except ParameterUninitializedException:
            return None
        except InvalidParameterTypeException as err:
            raise ConfigError(
                f"parameter {spec.name} must be of type {spec.kind} (write 1.0, not 1, for "
                f"doubles): {err}"
            ) from err
        except InvalidParameterValueException as err:
            raise ConfigError(f"parameter {spec.name}: {err} ({spec.constraints})") from err

    def _load_config(self) -> ReidConfig:
        """Declare every schema parameter, then validate them all with rt_reid.config.

        Parameters given in the params file that the schema does not know (typos, stale keys)
        are an error, as ``additionalProperties: false`` makes them for ``load_config``.
        """
        given = set(self.list_parameters([], 0).names)
        flat = {spec.name: self._declare(spec) for spec in parameter_specs()}
        names = list(flat.get("identities.names") or [])
        flat.update({spec.name: self._declare(spec) for spec in layout_specs(names)})
        sites = {}
        for name in names:
            layout = flat.get(f"{LAYOUTS_MAP}.{name}") or flat.get("identities.layout")
            if isinstance(layout, str):
                sites[name] = get_layout(layout).sites
        flat.update({spec.name: self._declare(spec) for spec in clock_offset_specs(sites)})
        unknown = sorted(
            name
            for name in given - set(flat) - ROS_PARAMETERS
            if not name.startswith(QOS_OVERRIDES)
        )
        if unknown:
            raise ConfigError(f"unknown parameters {unknown} (not in reid.schema.json)")
        return ReidConfig.from_dict(nest({k: v for k, v in flat.items() if v is not None}))

    def _on_imu(self, identity: str, site: str, msg: Any) -> None:
        """Buffer one IMU sample (cheap; never waits for inference)."""
        try:
            sample = imu_sample(msg, identity=identity, site=site)
        except MessageError as err:
            self.get_logger().warning(
                f"invalid Imu on imu/{identity}/{site}: {err}", throttle_duration_sec=5.0
            )
            return
        self._pipeline.add_imu(sample)

    def _on_cloud(self, msg: Any) -> None:
        """Hand the cloud to the worker; a frame still waiting is dropped (and counted)."""
        frame = Frame(stamp_ns=stamp_ns(msg.header.stamp), cloud=msg, receipt_s=time.monotonic())
        if not self._engine.submit(frame):
            self.get_logger().debug("dropped a LiDAR frame: the worker was still busy")

    def _on_time_jump(self, jump: TimeJump) -> None:
        """ROS time went back (bag loop with use_sim_time): reset before the next frame."""
        seconds = -jump.delta.nanoseconds * 1e-9
        self.get_logger().warning(f"ROS time jumped back by {seconds:.3f} s; resetting pipeline")
        self._engine.request_reset(f"ROS time jumped back by {seconds:.3f} s (bag loop?)")

    def _publish(self, result: FrameResult, frame: Frame, _latency: Latency) -> None:
        """Worker thread: publish identities, markers and receipt-to-publish latency."""
        stamp = frame.stamp_ns
        self._identities_pub.publish(
            detections_msg(result, self._types, frame_id=self._frame_id, stamp_ns=stamp)
        )
        self._markers_pub.publish(
            markers_msg(result, self._types, frame_id=self._frame_id, stamp_ns=stamp)
        )
        receipt_to_publish = time.monotonic() - frame.receipt_s
        self._latency_pub.publish(
            latency_msg(
                result, self._types, receipt_to_publish_s=receipt_to_publish, stamp_ns=stamp
            )
        )

    def _publish_diagnostics(self) -> None:
        """Pipeline and IMU health once per second; drops include frames the worker skipped."""
        diag = self._pipeline.diagnostics()
        engine = self._engine.stats()
        diag = dataclasses.replace(diag, dropped_frames=diag.dropped_frames + engine.worker.dropped)
        self._diagnostics_pub.publish(
            diagnostics_msg(diag, self._types, stamp_ns=self.get_clock().now().nanoseconds)
        )

    def destroy_node(self) -> None:
        """Stop the worker before the publishers go away."""
        self._engine.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run rt_reid reid_node``."""
    # One executor thread: the callbacks only buffer IMU samples or hand a cloud to the worker,
    # and a multi-threaded executor's Python overhead at ~1000 IMU messages a second starves the
    # worker of the GIL (dropped frames, lost samples).
    run_node(NODE_NAME, ReidNode, SingleThreadedExecutor, args)


if __name__ == "__main__":
    main()
