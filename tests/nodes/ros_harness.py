"""ROS 2 side of the node process tests; runs only inside the tests' network namespace.

    ros_harness.py play BAG OUT [--seconds S] [--loops N] [--clock] [--rate R]
        plays the bag's LiDAR and IMU topics like a driver (the bag's CDR bytes, best effort)
        once the node subscribes to them, and records the node's outputs into OUT (JSON)
    ros_harness.py record OUT --topics T... --seconds S [--idle Q]
        records sensor_msgs/Imu topics (count, frame ids, stamps) for S seconds at most, or
        until Q seconds pass without a message once messages have arrived
    ros_harness.py inspect OUT
        the QoS of reid_node's topics and the descriptors of some of its parameters

Never start this in the host network namespace (see conftest.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import DescribeParameters
from rclpy.client import Client
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, PointCloud2
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

LIDAR = "/lidar/points"
IMU_PREFIX = "/imu/"
BEST_EFFORT = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.BEST_EFFORT
)
RELIABLE = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.RELIABLE
)
DISCOVERY_TIMEOUT_S = 30.0


def _stamp(header: Any) -> int:
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


class Recorder:
    """Collects the node's outputs as plain JSON-able records."""

    def __init__(self, node: Node) -> None:
        self.lock = threading.Lock()
        self.identities: list[dict[str, Any]] = []
        self.markers: list[dict[str, Any]] = []
        self.latency: list[dict[str, Any]] = []
        self.diagnostics: list[dict[str, Any]] = []
        self.subscriptions = [
            node.create_subscription(Detection3DArray, "/reid/identities", self.on_ids, 100),
            node.create_subscription(MarkerArray, "/reid/markers", self.on_markers, 100),
            node.create_subscription(DiagnosticArray, "/reid/latency", self.on_latency, 100),
            node.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, 100),
        ]

    def matched(self) -> bool:
        return all(s.get_publisher_count() > 0 for s in self.subscriptions)

    def on_ids(self, msg: Detection3DArray) -> None:
        detections = [
            {
                "id": d.id,
                "class_id": d.results[0].hypothesis.class_id if d.results else None,
                "score": d.results[0].hypothesis.score if d.results else None,
                "x": d.bbox.center.position.x,
                "y": d.bbox.center.position.y,
                "frame_id": d.header.frame_id,
            }
            for d in msg.detections
        ]
        record = {"stamp_ns": _stamp(msg.header), "frame_id": msg.header.frame_id}
        with self.lock:
            self.identities.append({**record, "detections": detections})

    def on_markers(self, msg: MarkerArray) -> None:
        with self.lock:
            self.markers.append(
                {
                    "count": len(msg.markers),
                    "texts": [m.text for m in msg.markers if m.text],
                    "frame_ids": sorted({m.header.frame_id for m in msg.markers}),
                }
            )

    def on_latency(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.latency.append(
                {"stamp_ns": _stamp(msg.header), "values": _values(msg.status[0].values)}
            )

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        statuses = [
            {
                "name": s.name,
                "level": s.level[0] if isinstance(s.level, bytes) else int(s.level),
                "message": s.message,
                "values": _values(s.values),
            }
            for s in msg.status
        ]
        with self.lock:
            self.diagnostics.append({"statuses": statuses})

    def result(self) -> dict[str, Any]:
        with self.lock:
            return {
                "identities": self.identities,
                "markers": self.markers,
                "latency": self.latency,
                "diagnostics": self.diagnostics,
            }


def _values(values: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in values}


def _spin(node: Node) -> tuple[MultiThreadedExecutor, threading.Thread]:
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    return executor, thread


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"harness: timed out waiting for {what}")
        time.sleep(0.05)


def play(args: argparse.Namespace) -> dict[str, Any]:
    """Play LiDAR + IMU like a driver, /clock with --clock; record the node's outputs."""
    node = Node("rt_reid_test_player")
    recorder = Recorder(node)
    with Reader(args.bag) as reader:
        connections = [
            c for c in reader.connections if c.topic == LIDAR or c.topic.startswith(IMU_PREFIX)
        ]
        messages = [(t, c.topic, bytes(raw)) for c, t, raw in reader.messages(connections)]
    messages.sort(key=lambda m: m[0])
    start = messages[0][0]
    end = start + int(args.seconds * 1e9) if args.seconds else messages[-1][0]
    messages = [m for m in messages if m[0] <= end]
    publishers = {
        topic: node.create_publisher(PointCloud2 if topic == LIDAR else Imu, topic, BEST_EFFORT)
        for topic in sorted({m[1] for m in messages})
    }
    clock = node.create_publisher(Clock, "/clock", 10) if args.clock else None
    executor, thread = _spin(node)
    _wait(
        lambda: (
            all(p.get_subscription_count() > 0 for p in publishers.values()) and recorder.matched()
        ),
        "the node's subscriptions and publishers",
    )
    time.sleep(0.5)
    sent = 0
    for _ in range(args.loops):
        wall0 = time.monotonic()
        for stamp, topic, raw in messages:
            delay = wall0 + (stamp - start) * 1e-9 / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if clock is not None:
                clock.publish(Clock(clock=Time(nanoseconds=stamp).to_msg()))
            publishers[topic].publish(raw)
            sent += 1
    time.sleep(args.settle)
    result = recorder.result()
    result["sent"] = sent
    result["lidar_sent"] = args.loops * sum(m[1] == LIDAR for m in messages)
    executor.shutdown()
    thread.join(5.0)
    node.destroy_node()
    return result


def record(args: argparse.Namespace) -> dict[str, Any]:
    """Record Imu topics (reliable, like the bridge publishes them) for a while."""
    node = Node("rt_reid_test_recorder")
    seen: dict[str, list[dict[str, Any]]] = {topic: [] for topic in args.topics}
    lock = threading.Lock()

    last_message = [0.0]  # monotonic time of the newest message, 0 = none yet

    def on_imu(topic: str, msg: Imu) -> None:
        with lock:
            seen[topic].append({"frame_id": msg.header.frame_id, "stamp_ns": _stamp(msg.header)})
            last_message[0] = time.monotonic()

    subscriptions = [
        node.create_subscription(Imu, topic, lambda m, t=topic: on_imu(t, m), RELIABLE)
        for topic in args.topics
    ]
    executor, thread = _spin(node)
    _wait(lambda: all(s.get_publisher_count() > 0 for s in subscriptions), "the bridge")
    print("harness: ready", flush=True)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        with lock:
            newest = last_message[0]
        if args.idle and newest and time.monotonic() - newest > args.idle:
            break  # the stream has ended: nothing more is coming
    with lock:
        topics = sorted(name for name, _ in node.get_topic_names_and_types())
        result = {"topics": seen, "published_topics": topics}
    executor.shutdown()
    thread.join(5.0)
    node.destroy_node()
    return result


def inspect(args: argparse.Namespace) -> dict[str, Any]:
    """QoS of reid_node's endpoints and the descriptors of a few of its parameters."""
    node = Node("rt_reid_test_inspector")
    executor, thread = _spin(node)

    def endpoints(topic: str, subscriptions: bool) -> list[dict[str, Any]]:
        infos = (
            node.get_subscriptions_info_by_topic(topic)
            if subscriptions
            else node.get_publishers_info_by_topic(topic)
        )
        return [
            {"node": info.node_name, "reliability": info.qos_profile.reliability.name}
            for info in infos
            if info.node_name == "reid_node"
        ]

    _wait(lambda: endpoints(LIDAR, True) and endpoints("/reid/identities", False), "reid_node")
    client: Client[Any, Any] = node.create_client(
        DescribeParameters, "/reid_node/describe_parameters"
    )
    _wait(client.service_is_ready, "/reid_node/describe_parameters")
    future = client.call_async(DescribeParameters.Request(names=args.parameters))
    _wait(future.done, "the parameter descriptors")
    response = future.result()
    assert response is not None
    descriptors = {
        d.name: {
            "type": d.type,
            "read_only": d.read_only,
            "description": d.description,
            "integer_range": [[r.from_value, r.to_value] for r in d.integer_range],
            "floating_point_range": [[r.from_value, r.to_value] for r in d.floating_point_range],
        }
        for d in response.descriptors
    }
    topics = {
        "subscriptions": {t: endpoints(t, True) for t in args.subscribed},
        "publishers": {t: endpoints(t, False) for t in args.published},
    }
    executor.shutdown()
    thread.join(5.0)
    node.destroy_node()
    return {"descriptors": descriptors, **topics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("play")
    p.add_argument("bag", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--seconds", type=float, default=0.0, help="play only the first S seconds")
    p.add_argument("--loops", type=int, default=1)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--clock", action="store_true", help="also publish /clock from bag time")
    p.add_argument("--settle", type=float, default=2.0, help="keep recording after the end")
    r = commands.add_parser("record")
    r.add_argument("out", type=Path)
    r.add_argument("--topics", nargs="+", required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--idle", type=float, default=0.0, help="stop after this long without data")
    i = commands.add_parser("inspect")
    i.add_argument("out", type=Path)
    i.add_argument("--parameters", nargs="+", required=True)
    i.add_argument("--subscribed", nargs="+", default=[])
    i.add_argument("--published", nargs="+", default=[])
    args = parser.parse_args()
    rclpy.init()
    try:
        result = {"play": play, "record": record, "inspect": inspect}[args.command](args)
    finally:
        rclpy.try_shutdown()
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
