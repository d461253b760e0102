"""`write_bag`: stream a simulated scene into a rosbag2 (MCAP or sqlite3) as a robot would log it.

Topics: `/lidar/points` (PointCloud2, Velodyne-like unorganized or Ouster-like organized),
`/imu/<identity>/<site>` (Imu, device stamps, occasionally duplicated or written out of order),
`/sim/ground_truth` (Detection3DArray: id = person id, class_id = identity, centre = pelvis),
`/sim/activities` (Detection3DArray: class_id = activity name) and `/sim/skeletons` (MarkerArray:
one POINTS marker per person, id = person id, 24 points in SMPL joint order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from rt_reid.errors import BagError
from rt_reid.io.bag import BagWriter, Storage, header, msg_class
from rt_reid.names import Topic, imu_topic
from rt_reid_sim.body import J
from rt_reid_sim.config import SceneConfig
from rt_reid_sim.motion import ACTIVITIES
from rt_reid_sim.scene import FrameReturns, SimScene, simulate_scene

ACTIVITY_TOPIC = "/sim/activities"
SKELETON_TOPIC = "/sim/skeletons"
LIDAR_FRAME = "lidar"
FLOAT32, UINT16, UINT32 = 7, 4, 6
NS = 1_000_000_000

# (name, offset, ROS datatype, numpy type); `label` only when SceneConfig.point_labels is set.
VELODYNE_FIELDS = [
    ("x", 0, FLOAT32, "<f4"), ("y", 4, FLOAT32, "<f4"), ("z", 8, FLOAT32, "<f4"),
    ("intensity", 12, FLOAT32, "<f4"), ("ring", 16, UINT16, "<u2"), ("time", 18, FLOAT32, "<f4"),
]  # fmt: skip
OUSTER_FIELDS = [
    ("x", 0, FLOAT32, "<f4"), ("y", 4, FLOAT32, "<f4"), ("z", 8, FLOAT32, "<f4"),
    ("intensity", 12, FLOAT32, "<f4"), ("t", 16, UINT32, "<u4"),
    ("reflectivity", 20, UINT16, "<u2"), ("ring", 22, UINT16, "<u2"),
    ("ambient", 24, UINT16, "<u2"), ("range", 28, UINT32, "<u4"),
]  # fmt: skip
VELODYNE_STEP, OUSTER_STEP = 22, 32
LABEL_FIELD = {
    "unorganized": ("label", 22, UINT16, "<u2"),
    "organized": ("label", 26, UINT16, "<u2"),
}


@dataclass(frozen=True)
class BagSummary:
    """What `write_bag` wrote: counts per topic, LiDAR statistics and the bag size."""

    path: Path
    storage: str
    people: int
    wearers: int
    frames: int
    duration_s: float
    cloud_layout: str
    points_per_frame: float
    person_points_per_frame: float
    messages: dict[str, int]
    size_bytes: int

    def format(self) -> str:
        """One-screen human summary."""
        imu = sum(v for k, v in self.messages.items() if k.startswith("/imu/"))
        imu_topics = sum(1 for k in self.messages if k.startswith("/imu/"))
        lines = [
            f"bag            {self.path} ({self.storage}, {self.size_bytes / 1e6:.1f} MB)",
            f"people         {self.people} ({self.wearers} with wearables, "
            f"{self.people - self.wearers} bystanders)",
            f"frames         {self.frames} ({self.duration_s:.1f} s, {self.cloud_layout} clouds)",
            f"points/frame   {self.points_per_frame:.0f} "
            f"(on people: {self.person_points_per_frame:.0f})",
            f"messages       {sum(self.messages.values())} total",
            f"  {Topic.LIDAR:<22} {self.messages.get(Topic.LIDAR, 0)}",
            f"  {'/imu/*/*':<22} {imu} on {imu_topics} topics",
        ]
        for topic in (Topic.GROUND_TRUTH, ACTIVITY_TOPIC, SKELETON_TOPIC):
            lines.append(f"  {topic:<22} {self.messages.get(topic, 0)}")
        return "\n".join(lines)


def _fields(layout: str, labels: bool) -> tuple[list[tuple[str, int, int, str]], int]:
    """PointField list and point step of a cloud layout (optionally with `label`)."""
    fields = list(VELODYNE_FIELDS if layout == "unorganized" else OUSTER_FIELDS)
    step = VELODYNE_STEP if layout == "unorganized" else OUSTER_STEP
    if labels:
        fields.append(LABEL_FIELD[layout])
        step = max(step, LABEL_FIELD[layout][1] + 2)
    return fields, step


def pointcloud_message(scene: SimScene, frame: FrameReturns, stamp_ns: int) -> Any:
    """PointCloud2 of one frame in the configured layout (organized: rows = beams, NaN = none)."""
    cfg, lidar = scene.config, scene.lidar
    layout = cfg.resolved_cloud_layout
    fields, step = _fields(layout, cfg.point_labels)
    beams, columns = lidar.preset.beams, lidar.columns
    column_time = np.tile(np.arange(columns) / (columns * cfg.frame_rate_hz), beams)
    ring = np.repeat(lidar.preset.rings, columns)
    if layout == "unorganized":
        # Velodyne order: column by column, each column's beams from the lowest ring up.
        order = np.lexsort((ring, np.tile(np.arange(columns), beams)))
        order = order[np.isfinite(frame.xyz[order, 0])]
    else:
        order = np.arange(beams * columns)
    ranges = frame.ranges[order]
    values: dict[str, NDArray[Any]] = {
        "x": frame.xyz[order, 0], "y": frame.xyz[order, 1], "z": frame.xyz[order, 2],
        "intensity": frame.intensity[order], "ring": ring[order],
        "time": column_time[order], "t": np.round(column_time[order] * NS),
        "reflectivity": np.round(frame.intensity[order]),
        "ambient": np.zeros(len(order)),
        "range": np.where(np.isfinite(ranges), np.round(ranges * 1000), 0),
        "label": frame.labels[order].astype(np.int32) + 1,
    }  # fmt: skip
    dtype = np.dtype(
        {"names": [f[0] for f in fields], "formats": [f[3] for f in fields],
         "offsets": [f[1] for f in fields], "itemsize": step}
    )  # fmt: skip
    points = np.zeros(len(order), dtype=dtype)
    for name, *_ in fields:
        points[name] = values[name]
    height, width = (1, len(order)) if layout == "unorganized" else (beams, columns)
    field_cls = msg_class("sensor_msgs/msg/PointField")
    return msg_class("sensor_msgs/msg/PointCloud2")(
        header=header(stamp_ns, LIDAR_FRAME),
        height=height,
        width=width,
        fields=[field_cls(name=n, offset=o, datatype=d, count=1) for n, o, d, _ in fields],
        is_bigendian=False,
        point_step=step,
        row_step=step * width,
        data=points.view(np.uint8).reshape(-1),
        is_dense=layout == "unorganized",
    )


def _vector(cls: str, xyz: NDArray[np.float64] | tuple[float, ...]) -> Any:
    """geometry_msgs Point/Vector3 `cls` from three numbers."""
    return msg_class(cls)(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _detections(scene: SimScene, t: int, stamp_ns: int, *, activity: bool) -> Any:
    """Detection3DArray of frame t: ground truth (present people) or activities (everyone)."""
    pose_cls = msg_class("geometry_msgs/msg/Pose")
    quat_cls = msg_class("geometry_msgs/msg/Quaternion")
    covariance = msg_class("geometry_msgs/msg/PoseWithCovariance")
    detections = []
    for person in scene.people:
        if not activity and not person.present[t]:
            continue
        skeleton = person.skeleton[t].astype(np.float64)
        pelvis = skeleton[J["pelvis"]]
        size = np.ptp(skeleton, axis=0) + np.array([0.3, 0.3, 0.15])
        pose = pose_cls(
            position=_vector("geometry_msgs/msg/Point", pelvis),
            orientation=quat_cls(x=0.0, y=0.0, z=0.0, w=1.0),
        )
        class_id = ACTIVITIES[int(person.activity[t])] if activity else person.identity
        results = []
        if class_id is not None:
            hypothesis = msg_class("vision_msgs/msg/ObjectHypothesis")(class_id=class_id, score=1.0)
            results.append(
                msg_class("vision_msgs/msg/ObjectHypothesisWithPose")(
                    hypothesis=hypothesis, pose=covariance(pose=pose, covariance=np.zeros(36))
                )
            )
        detections.append(
            msg_class("vision_msgs/msg/Detection3D")(
                header=header(stamp_ns, LIDAR_FRAME),
                results=results,
                bbox=msg_class("vision_msgs/msg/BoundingBox3D")(
                    center=pose, size=_vector("geometry_msgs/msg/Vector3", size)
                ),
                id=str(person.person_id),
            )
        )
    return msg_class("vision_msgs/msg/Detection3DArray")(
        header=header(stamp_ns, LIDAR_FRAME), detections=detections
    )


def _skeletons(scene: SimScene, t: int, stamp_ns: int) -> Any:
    """MarkerArray with one POINTS marker (24 SMPL joints) per present person."""
    marker_cls = msg_class("visualization_msgs/msg/Marker")
    point_cls = msg_class("geometry_msgs/msg/Point")
    color_cls = msg_class("std_msgs/msg/ColorRGBA")
    period_ns = round(NS / scene.config.frame_rate_hz)
    markers = []
    for person in scene.people:
        if not person.present[t]:
            continue
        markers.append(
            marker_cls(
                header=header(stamp_ns, LIDAR_FRAME),
                ns="skeleton",
                id=person.person_id,
                type=marker_cls.POINTS,
                action=marker_cls.ADD,
                pose=msg_class("geometry_msgs/msg/Pose")(
                    position=point_cls(x=0.0, y=0.0, z=0.0),
                    orientation=msg_class("geometry_msgs/msg/Quaternion")(
                        x=0.0, y=0.0, z=0.0, w=1.0
                    ),
                ),
                scale=_vector("geometry_msgs/msg/Vector3", (0.05, 0.05, 0.05)),
                color=color_cls(r=1.0, g=0.5, b=0.0, a=1.0),
                lifetime=msg_class("builtin_interfaces/msg/Duration")(sec=0, nanosec=2 * period_ns),
                frame_locked=False,
                points=[
                    point_cls(x=float(p[0]), y=float(p[1]), z=float(p[2]))
                    for p in person.skeleton[t]
                ],
                colors=[],
                texture_resource="",
                texture=msg_class("sensor_msgs/msg/CompressedImage")(
                    header=header(0, ""), format="", data=np.zeros(0, dtype=np.uint8)
                ),
                uv_coordinates=[],
                text="",
                mesh_resource="",
                mesh_file=msg_class("visualization_msgs/msg/MeshFile")(
                    filename="", data=np.zeros(0, dtype=np.uint8)
                ),
                mesh_use_embedded_materials=False,
            )
        )
    return msg_class("visualization_msgs/msg/MarkerArray")(markers=markers)


@dataclass(frozen=True)
class _ImuQueue:
    """All IMU samples of the scene in write order: write slot, stamp (ns), device, sample."""

    slots_ns: NDArray[np.int64]  # when the message is written (non-decreasing)
    stamps_ns: NDArray[np.int64]  # the device stamp it carries
    device: NDArray[np.int64]
    sample: NDArray[np.int64]


def _imu_queue(scene: SimScene, devices: list[tuple[str, Any]]) -> _ImuQueue:
    """Per device, swap a few consecutive samples and repeat a few; merge all devices by slot."""
    cfg = scene.config
    rng = np.random.default_rng([cfg.seed, 0xBA6])
    slots, samples, device = [], [], []
    for k, (_, stream) in enumerate(devices):
        n = len(stream.stamps)
        order = np.arange(n)
        swap = np.flatnonzero(rng.random(n - 1) < cfg.imu_reorder)
        swap = swap[np.concatenate([[True], np.diff(swap) > 1])] if len(swap) else swap
        order[swap], order[swap + 1] = order[swap + 1], order[swap].copy()
        repeat = np.where(rng.random(n) < cfg.imu_duplicates, 2, 1)
        slots.append(np.repeat(np.round(stream.stamps * NS).astype(np.int64), repeat))
        samples.append(np.repeat(order, repeat))
        device.append(np.full(int(repeat.sum()), k))
    stamps = [
        np.round(stream.stamps[s] * NS).astype(np.int64)
        for (_, stream), s in zip(devices, samples, strict=True)
    ]
    merged = np.argsort(np.concatenate(slots), kind="stable")
    return _ImuQueue(
        np.concatenate(slots)[merged],
        np.concatenate(stamps)[merged],
        np.concatenate(device)[merged],
        np.concatenate(samples)[merged],
    )


def _imu_message(stream: Any, index: int, stamp_ns: int, frame_id: str) -> Any:
    """sensor_msgs/Imu for sample `index` of `stream` (zero covariances = unknown)."""
    quat = stream.orientation_xyzw[index]
    covariance = np.zeros(9)
    return msg_class("sensor_msgs/msg/Imu")(
        header=header(stamp_ns, frame_id),
        orientation=msg_class("geometry_msgs/msg/Quaternion")(
            x=float(quat[0]), y=float(quat[1]), z=float(quat[2]), w=float(quat[3])
        ),
        orientation_covariance=covariance,
        angular_velocity=_vector("geometry_msgs/msg/Vector3", stream.angular_velocity[index]),
        angular_velocity_covariance=covariance,
        linear_acceleration=_vector("geometry_msgs/msg/Vector3", stream.specific_force[index]),
        linear_acceleration_covariance=covariance,
    )


def write_bag(
    cfg: SceneConfig,
    out_path: Path | str,
    *,
    storage: Storage = "mcap",
    progress: bool = False,
    scene: SimScene | None = None,
) -> BagSummary:
    """Simulate `cfg` (or take an already simulated `scene` of it) and stream it into a new bag."""
    path = Path(out_path)
    if storage not in ("mcap", "sqlite3"):
        raise BagError(f"unknown bag storage {storage!r}; use 'mcap' or 'sqlite3'")
    if path.exists():
        raise BagError(f"output bag {path} already exists; choose a new path")
    if scene is None:
        scene = simulate_scene(cfg, progress=progress)
    elif scene.config != cfg:
        raise BagError("write_bag: the given scene was simulated from a different SceneConfig")
    devices = [
        (imu_topic(person.identity, site), stream)
        for person in scene.people
        if person.identity is not None
        for site, stream in person.imu.items()
    ]
    queue = _imu_queue(scene, devices)
    counts: dict[str, int] = {topic: 0 for topic, _ in devices}
    frame_stamps = np.round(scene.frame_stamps * NS).astype(np.int64)
    points_total = person_points = 0
    cursor = 0

    def flush_imu(writer: BagWriter, until_ns: int) -> None:
        """Write every queued IMU message stamped at or before `until_ns`."""
        nonlocal cursor
        while cursor < len(queue.slots_ns) and queue.slots_ns[cursor] <= until_ns:
            topic, stream = devices[queue.device[cursor]]
            stamp_ns = int(queue.stamps_ns[cursor])
            writer.write(topic, stamp_ns, _imu_message(stream, int(queue.sample[cursor]), stamp_ns,
                                                       topic[len("/imu/"):]))  # fmt: skip
            counts[topic] += 1
            cursor += 1

    try:
        with BagWriter(path, storage=storage) as writer:
            for topic, msgtype in (
                (Topic.LIDAR, "sensor_msgs/msg/PointCloud2"),
                (Topic.GROUND_TRUTH, "vision_msgs/msg/Detection3DArray"),
                (ACTIVITY_TOPIC, "vision_msgs/msg/Detection3DArray"),
                (SKELETON_TOPIC, "visualization_msgs/msg/MarkerArray"),
            ):
                writer.add_topic(topic, msgtype)
            for topic, _ in devices:
                writer.add_topic(topic, "sensor_msgs/msg/Imu")
            frames = range(len(frame_stamps))
            for t in tqdm(frames, desc="writing bag", unit="frame", disable=not progress):
                stamp_ns = int(frame_stamps[t])
                flush_imu(writer, stamp_ns)
                returns = scene.frame_returns(t)
                points_total += int(np.isfinite(returns.xyz[:, 0]).sum())
                person_points += int((returns.labels >= 0).sum())
                writer.write(Topic.LIDAR, stamp_ns, pointcloud_message(scene, returns, stamp_ns))
                writer.write(Topic.GROUND_TRUTH, stamp_ns,
                             _detections(scene, t, stamp_ns, activity=False))  # fmt: skip
                writer.write(
                    ACTIVITY_TOPIC, stamp_ns, _detections(scene, t, stamp_ns, activity=True)
                )
                writer.write(SKELETON_TOPIC, stamp_ns, _skeletons(scene, t, stamp_ns))
            flush_imu(writer, np.iinfo(np.int64).max)
    except OSError as err:
        raise BagError(f"cannot write bag {path}: {err}") from err
    frames_written = len(frame_stamps)
    for topic in (Topic.LIDAR, Topic.GROUND_TRUTH, ACTIVITY_TOPIC, SKELETON_TOPIC):
        counts[topic] = frames_written
    return BagSummary(
        path=path,
        storage=storage,
        people=len(scene.people),
        wearers=sum(p.identity is not None for p in scene.people),
        frames=frames_written,
        duration_s=frames_written / cfg.frame_rate_hz,
        cloud_layout=cfg.resolved_cloud_layout,
        points_per_frame=points_total / max(frames_written, 1),
        person_points_per_frame=person_points / max(frames_written, 1),
        messages=counts,
        size_bytes=sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
    )
