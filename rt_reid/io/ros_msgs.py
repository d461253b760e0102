"""ROS message conversion without rclpy: message classes come from a `MessageTypes` namespace.

The ROS node builds it with ``MessageTypes.from_lookup(rt_reid_nodes.messages.lookup)``,
tests and bag tools with ``MessageTypes.from_lookup(rt_reid.io.bag.msg_class)``. Every message is
built with all of its fields passed explicitly (rosbags classes have no defaults; rclpy accepts
the same keyword arguments). Imu messages become `ImuSample`s one at a time (`imu_sample`, the
ROS callback) or, many at once straight from their CDR bytes, `ImuBatch`es (`decode_imu`, bag
replay).
"""

from __future__ import annotations

import colorsys
import inspect
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, is_dataclass
from functools import cache
from typing import Any, cast

import numpy as np

from rt_reid.arrays import BoolArray, F64Array, I64Array
from rt_reid.errors import MessageError, ReidError
from rt_reid.names import UNKNOWN, stamp_ns
from rt_reid.runtime.imu_sample import ImuBatch, ImuSample
from rt_reid.runtime.pipeline import FrameResult, PipelineDiagnostics

MARKER_NS_BOX, MARKER_NS_LABEL = "reid_boxes", "reid_labels"
MARKER_LIFETIME_NS = 500_000_000  # markers vanish if the node stops publishing
LATENCY_STATUS = "rt_reid: latency"


@dataclass(frozen=True)
class MessageTypes:
    """The message classes the conversions build, from rosbags or rclpy."""

    Time: Any
    Duration: Any
    Header: Any
    Point: Any
    Quaternion: Any
    Vector3: Any
    Pose: Any
    PoseWithCovariance: Any
    ColorRGBA: Any
    ObjectHypothesis: Any
    ObjectHypothesisWithPose: Any
    BoundingBox3D: Any
    Detection3D: Any
    Detection3DArray: Any
    CompressedImage: Any
    MeshFile: Any
    Marker: Any
    MarkerArray: Any
    KeyValue: Any
    DiagnosticStatus: Any
    DiagnosticArray: Any

    @classmethod
    def from_lookup(cls, lookup: Callable[[str], Any]) -> MessageTypes:
        """Resolve every class by full type name, e.g. ``lookup("std_msgs/msg/Header")``."""
        names = {
            "Time": "builtin_interfaces/msg/Time",
            "Duration": "builtin_interfaces/msg/Duration",
            "Header": "std_msgs/msg/Header",
            "Point": "geometry_msgs/msg/Point",
            "Quaternion": "geometry_msgs/msg/Quaternion",
            "Vector3": "geometry_msgs/msg/Vector3",
            "Pose": "geometry_msgs/msg/Pose",
            "PoseWithCovariance": "geometry_msgs/msg/PoseWithCovariance",
            "ColorRGBA": "std_msgs/msg/ColorRGBA",
            "ObjectHypothesis": "vision_msgs/msg/ObjectHypothesis",
            "ObjectHypothesisWithPose": "vision_msgs/msg/ObjectHypothesisWithPose",
            "BoundingBox3D": "vision_msgs/msg/BoundingBox3D",
            "Detection3D": "vision_msgs/msg/Detection3D",
            "Detection3DArray": "vision_msgs/msg/Detection3DArray",
            "CompressedImage": "sensor_msgs/msg/CompressedImage",
            "MeshFile": "visualization_msgs/msg/MeshFile",
            "Marker": "visualization_msgs/msg/Marker",
            "MarkerArray": "visualization_msgs/msg/MarkerArray",
            "KeyValue": "diagnostic_msgs/msg/KeyValue",
            "DiagnosticStatus": "diagnostic_msgs/msg/DiagnosticStatus",
            "DiagnosticArray": "diagnostic_msgs/msg/DiagnosticArray",
        }
        return cls(**{attr: lookup(name) for attr, name in names.items()})


@cache
def _fields(cls: Any) -> tuple[frozenset[str], frozenset[str]] | None:
    """(accepted, required) field names of a message class; None = accept what is given.

    rosbags classes are dataclasses and need every field; rclpy classes list theirs in
    `get_fields_and_field_types()` and default the rest.
    """
    if is_dataclass(cls):
        parameters = inspect.signature(cast(Callable[..., Any], cls)).parameters
        names = frozenset(name for name in parameters if not name.startswith("__"))
        required = frozenset(n for n in names if parameters[n].default is inspect.Parameter.empty)
        return names, required
    if hasattr(cls, "get_fields_and_field_types"):
        names = frozenset(cls.get_fields_and_field_types())
        return names, frozenset()
    return None


@cache
def _constructor(cls: Any, given: tuple[str, ...]) -> Callable[..., Any]:
    """How to build `cls` from keyword values named `given`: the class itself when it takes them
    all, else a wrapper that drops the fields the class lacks (distro). Cached: checking the
    fields on every message was most of the cost of building them."""
    fields = _fields(cls)
    if fields is None:
        return cast(Callable[..., Any], cls)
    names, required = fields
    missing = required.difference(given)
    if missing:
        raise MessageError(f"{getattr(cls, '__name__', cls)}: fields {sorted(missing)} missing")
    if names.issuperset(given):
        return cast(Callable[..., Any], cls)
    return lambda **values: cls(**{key: value for key, value in values.items() if key in names})


def _make(cls: Any, **values: Any) -> Any:
    """Instantiate a message with every field given; fields the class lacks (distro) are dropped."""
    return _constructor(cls, tuple(values))(**values)


# sensor_msgs/Imu in CDR (little endian): 4-byte encapsulation, header (stamp sec int32, nanosec
# uint32, frame_id uint32 length + bytes incl. NUL), then 37 float64 aligned to 8 bytes of the body:
# orientation xyzw, its covariance (9), angular velocity (3), its covariance (9), linear
# acceleration (3), its covariance (9).
IMU_CDR_TAIL = 37 * 8
CDR_LITTLE_ENDIAN_WORD = 0x0100  # encapsulation bytes 00 01 read as little-endian uint16
NS = 1_000_000_000
COLUMNS = np.arange(4096)  # byte positions; longer messages (a huge frame_id) go one by one


def imu_problem(
    quat: tuple[float, ...],
    force: tuple[float, ...],
    gyro: tuple[float, ...],
    orientation_covariance0: float,
) -> tuple[str | None, float]:
    """(What is wrong with one Imu reading, or None; its quaternion norm): `imu_sample`'s rules.

    `decode_imu` checks the same conditions on arrays and words each failure with this function.
    """
    if orientation_covariance0 == -1.0:
        return (
            "Imu message has orientation_covariance[0] == -1 (no orientation estimate); the "
            "wearable must publish its fused orientation (REP-145)",
            math.nan,
        )
    for name, values in (
        ("orientation", quat),
        ("linear_acceleration", force),
        ("angular_velocity", gyro),
    ):
        if not all(math.isfinite(v) for v in values):
            return f"Imu message has a non-finite {name}: {values}", math.nan
    norm = math.sqrt(sum(v * v for v in quat))
    if norm < 1e-6:
        return "Imu message has a zero orientation quaternion", norm
    if abs(norm - 1.0) > 0.1:
        return f"Imu orientation quaternion has norm {norm:.3f}, not 1", norm
    return None, norm


def imu_sample(msg: Any, *, identity: str, site: str) -> ImuSample:
    """Validate one sensor_msgs/Imu of `identity`/`site`; MessageError names what is wrong."""
    q, f, w = msg.orientation, msg.linear_acceleration, msg.angular_velocity
    quat = (float(q.x), float(q.y), float(q.z), float(q.w))
    force = (float(f.x), float(f.y), float(f.z))
    gyro = (float(w.x), float(w.y), float(w.z))
    problem, norm = imu_problem(quat, force, gyro, float(msg.orientation_covariance[0]))
    if problem is not None:
        raise MessageError(problem)
    quat_n = (quat[0] / norm, quat[1] / norm, quat[2] / norm, quat[3] / norm)
    return ImuSample(identity, site, stamp_ns(msg.header.stamp) * 1e-9, quat_n, force, gyro)


@dataclass(frozen=True)
class ImuDecoded:
    """Imu messages decoded at once: a reading per message (rows in message order), which rows
    are valid, and why the others are not: `undecodable` and `invalid` hold (row, error)."""

    readings: F64Array  # (N, 11): stamp s, quaternion xyzw (normalised where valid), force, gyro
    valid: BoolArray
    undecodable: list[tuple[int, ReidError]]
    invalid: list[tuple[int, MessageError]]

    def batch(self, identity: str, site: str, rows: I64Array | None = None) -> ImuBatch:
        """The valid readings among `rows` (default: all), in order, as `identity`/`site`'s."""
        if rows is None:
            rows = np.arange(len(self.valid))
        if self.undecodable or self.invalid:  # every other row is valid
            rows = rows[self.valid[rows]]
        picked = self.readings[rows]
        return ImuBatch(
            identity, site, picked[:, 0], picked[:, 1:5], picked[:, 5:8], picked[:, 8:11]
        )


def _cdr_imu_rows(raws: Sequence[bytes | memoryview]) -> tuple[BoolArray, I64Array, F64Array]:
    """Vectorised decode of little-endian CDR Imu: (decoded, stamp ns (N,), fields (N, 37)).

    Messages are grouped by length (one group per frame_id length). A message is decoded here
    only if it is exactly what `deserialize_cdr` accepts in the usual layout (encapsulation,
    length, string terminator, UTF-8 frame_id); `decoded` is False for the others, which the
    caller decodes one by one, so the outcome is the same as message by message.
    """
    n = len(raws)
    decoded = np.zeros(n, dtype=bool)
    stamps = np.zeros(n, dtype=np.int64)
    fields = np.zeros((n, 37), dtype=np.float64)
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=n)
    groups = [lengths[0]] if n and (lengths == lengths[0]).all() else np.unique(lengths)
    for length in [int(g) for g in groups]:
        index = np.arange(n) if len(groups) == 1 else np.flatnonzero(lengths == length)
        if not 16 + IMU_CDR_TAIL <= length <= len(COLUMNS):
            continue
        rows = np.frombuffer(b"".join([raws[i] for i in index.tolist()]), dtype=np.uint8)
        rows = rows.reshape(len(index), length)
        head = rows[:, :16].copy().view("<u4")  # encapsulation, sec, nanosec, frame_id length
        strlen = head[:, 3].astype(np.int64)
        start = length - IMU_CDR_TAIL  # the 37 float64 end the message exactly
        fast = (
            ((head[:, 0] & 0xFFFF) == CDR_LITTLE_ENDIAN_WORD)
            & (strlen >= 1)
            & (4 + (12 + strlen + 7) // 8 * 8 == start)
        )
        fast[fast] = rows[fast, 15 + strlen[fast]] == 0  # the string's NUL terminator
        in_name = (COLUMNS[:length] >= 16) & (COLUMNS[:length] < 15 + strlen[:, None])
        for row in np.flatnonzero(fast & ((rows >= 0x80) & in_name).any(axis=1)).tolist():
            try:  # not ASCII: is it UTF-8?
                rows[row, 16 : 15 + strlen[row]].tobytes().decode()
            except UnicodeDecodeError:
                fast[row] = False
        rows, index, head = rows[fast], index[fast], head[fast]
        decoded[index] = True
        stamps[index] = head[:, 1].view("<i4").astype(np.int64) * NS + head[:, 2]
        fields[index] = rows[:, start:].copy().view("<f8")
    return decoded, stamps, fields


def decode_imu(raws: Sequence[bytes | memoryview], *, decode: Callable[[int], Any]) -> ImuDecoded:
    """Decode and validate CDR Imu messages at once; `batch()` gives a device's readings.

    The result equals `imu_sample` on each message: the same readings and the same errors.
    Messages outside the usual layout are decoded one by one with `decode(index)` (which raises
    ReidError for an undecodable one, e.g. `rt_reid.io.bag.deserialize`).
    """
    decoded, stamps, fields = _cdr_imu_rows(raws)
    undecodable: list[tuple[int, ReidError]] = []
    for i in np.flatnonzero(~decoded).tolist():
        try:
            msg = decode(i)
        except ReidError as err:
            undecodable.append((i, err))
            continue
        q, f, w = msg.orientation, msg.linear_acceleration, msg.angular_velocity
        stamps[i] = stamp_ns(msg.header.stamp)
        fields[i, 0:5] = (q.x, q.y, q.z, q.w, msg.orientation_covariance[0])
        fields[i, 13:16] = (w.x, w.y, w.z)
        fields[i, 25:28] = (f.x, f.y, f.z)
        decoded[i] = True
    quat, gyro, force = fields[:, 0:4], fields[:, 13:16], fields[:, 25:28]
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are rejected below
        square = quat * quat
        norm = np.sqrt(((square[:, 0] + square[:, 1]) + square[:, 2]) + square[:, 3])
    valid = (
        decoded
        & (fields[:, 4] != -1.0)
        & np.isfinite(fields[:, [0, 1, 2, 3, 13, 14, 15, 25, 26, 27]]).all(axis=1)
        & (norm >= 1e-6)
        & (np.abs(norm - 1.0) <= 0.1)
    )
    invalid: list[tuple[int, MessageError]] = []
    if not valid.all():
        for i in np.flatnonzero(decoded & ~valid).tolist():
            problem, _ = imu_problem(
                tuple(quat[i].tolist()),
                tuple(force[i].tolist()),
                tuple(gyro[i].tolist()),
                float(fields[i, 4]),
            )
            invalid.append((i, MessageError(problem)))
        norm[~valid] = 1.0
    readings = np.empty((len(valid), 11))
    readings[:, 0] = stamps.astype(np.float64) * 1e-9
    readings[:, 1:5] = quat / norm[:, None]
    readings[:, 5:8] = force
    readings[:, 8:11] = gyro
    return ImuDecoded(readings, valid, undecodable, invalid)


def _time(types: MessageTypes, nanoseconds: int) -> Any:
    return _make(types.Time, sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def _header(types: MessageTypes, nanoseconds: int, frame_id: str) -> Any:
    return _make(types.Header, stamp=_time(types, nanoseconds), frame_id=frame_id)


def _xyz(values: Any) -> tuple[float, float, float]:
    """Three numbers (a sequence or a numpy vector) as Python floats."""
    x, y, z = values
    return float(x), float(y), float(z)


def _identity_rotation(types: MessageTypes) -> Any:
    return _make(types.Quaternion, x=0.0, y=0.0, z=0.0, w=1.0)


def _pose(types: MessageTypes, position: Any, orientation: Any) -> Any:
    """A Pose at `position`; `orientation` is the message's shared identity Quaternion."""
    x, y, z = _xyz(position)
    return _make(types.Pose, position=_make(types.Point, x=x, y=y, z=z), orientation=orientation)


def _vector(types: MessageTypes, values: Any) -> Any:
    x, y, z = _xyz(values)
    return _make(types.Vector3, x=x, y=y, z=z)


def result_stamp_ns(result: FrameResult, stamp_ns: int | None) -> int:
    """The frame's stamp in ns: the caller's exact LiDAR header stamp if given, else rounded."""
    return stamp_ns if stamp_ns is not None else round(result.stamp_s * 1e9)


def detections_msg(
    result: FrameResult, types: MessageTypes, *, frame_id: str, stamp_ns: int | None = None
) -> Any:
    """`/reid/identities`: one Detection3D per track (ARCHITECTURE.md), identity or "unknown".

    Sub-messages that are equal for every track (header, orientation, covariance) and a track's
    pose (hypothesis and box centre) are one object each: building is most of the cost.
    """
    header = _header(types, result_stamp_ns(result, stamp_ns), frame_id)
    orientation = _identity_rotation(types)
    covariance = np.zeros(36, dtype=np.float64)
    detections = []
    for track in result.tracks:
        pose = _pose(types, track.position, orientation)
        hypothesis = _make(
            types.ObjectHypothesisWithPose,
            hypothesis=_make(
                types.ObjectHypothesis,
                class_id=track.identity if track.identity is not None else UNKNOWN,
                score=float(min(1.0, max(0.0, track.score))),
            ),
            pose=_make(types.PoseWithCovariance, pose=pose, covariance=covariance),
        )
        detections.append(
            _make(
                types.Detection3D,
                header=header,
                results=[hypothesis],
                bbox=_make(types.BoundingBox3D, center=pose, size=_vector(types, track.extent)),
                id=str(track.track_id),
            )
        )
    return _make(types.Detection3DArray, header=header, detections=detections)


@cache
def identity_colour(identity: str | None) -> tuple[float, float, float]:
    """Stable RGB per identity (hue from a CRC of the name); grey for unknown."""
    if identity is None:
        return (0.6, 0.6, 0.6)
    hue = (zlib.crc32(identity.encode("utf-8")) % 360) / 360.0
    return colorsys.hsv_to_rgb(hue, 0.85, 0.95)


def _marker_constants(types: MessageTypes, header: Any) -> dict[str, Any]:
    """The Marker fields every marker of one MarkerArray shares (one object each)."""
    return {
        "header": header,
        "lifetime": _make(types.Duration, sec=0, nanosec=MARKER_LIFETIME_NS),
        "frame_locked": False,
        "texture_resource": "",
        "texture": _make(
            types.CompressedImage, header=header, format="", data=np.zeros(0, dtype=np.uint8)
        ),
        "mesh_resource": "",
        "mesh_file": _make(types.MeshFile, filename="", data=np.zeros(0, dtype=np.uint8)),
        "mesh_use_embedded_materials": False,
    }


def _marker(
    types: MessageTypes,
    constants: dict[str, Any],
    *,
    ns: str,
    marker_id: int,
    marker_type: int,
    action: int,
    pose: Any,
    scale: Any,
    colour: tuple[float, float, float, float],
    text: str,
) -> Any:
    return _make(
        types.Marker,
        ns=ns,
        id=marker_id,
        type=marker_type,
        action=action,
        pose=pose,
        scale=_vector(types, scale),
        color=_make(types.ColorRGBA, r=colour[0], g=colour[1], b=colour[2], a=colour[3]),
        points=[],
        colors=[],
        uv_coordinates=[],
        text=text,
        **constants,
    )


def markers_msg(
    result: FrameResult, types: MessageTypes, *, frame_id: str, stamp_ns: int | None = None
) -> Any:
    """`/reid/markers`: DELETEALL, then per track a translucent box and a text label."""
    header = _header(types, result_stamp_ns(result, stamp_ns), frame_id)
    constants = _marker_constants(types, header)
    orientation = _identity_rotation(types)
    marker = types.Marker
    markers = [
        _marker(
            types,
            constants,
            ns=MARKER_NS_BOX,
            marker_id=0,
            marker_type=marker.CUBE,
            action=marker.DELETEALL,
            pose=_pose(types, (0, 0, 0), orientation),
            scale=(1, 1, 1),
            colour=(0, 0, 0, 0),
            text="",
        )
    ]
    for track in result.tracks:
        r, g, b = identity_colour(track.identity)
        name = track.identity if track.identity is not None else UNKNOWN
        x, y, z = _xyz(track.position)
        size = [max(extent, 0.05) for extent in _xyz(track.extent)]  # NaN stays NaN
        markers.append(
            _marker(
                types,
                constants,
                ns=MARKER_NS_BOX,
                marker_id=track.track_id,
                marker_type=marker.CUBE,
                action=marker.ADD,
                pose=_pose(types, (x, y, z), orientation),
                scale=size,
                colour=(r, g, b, 0.35),
                text="",
            )
        )
        label_at = (x + 0.0, y + 0.0, z + (size[2] / 2 + 0.3))  # + 0.0: -0.0 becomes 0.0
        markers.append(
            _marker(
                types,
                constants,
                ns=MARKER_NS_LABEL,
                marker_id=track.track_id,
                marker_type=marker.TEXT_VIEW_FACING,
                action=marker.ADD,
                pose=_pose(types, label_at, orientation),
                scale=(0.0, 0.0, 0.25),
                colour=(r, g, b, 1.0),
                text=f"{track.track_id}: {name} {track.score:.2f}",
            )
        )
    return _make(types.MarkerArray, markers=markers)


def _status(
    types: MessageTypes, *, level: int, name: str, message: str, values: dict[str, str]
) -> Any:
    return _make(
        types.DiagnosticStatus,
        level=level,
        name=name,
        message=message,
        hardware_id="rt_reid",
        values=[_make(types.KeyValue, key=k, value=v) for k, v in values.items()],
    )


def latency_msg(
    result: FrameResult,
    types: MessageTypes,
    *,
    receipt_to_publish_s: float | None = None,
    stamp_ns: int | None = None,
) -> Any:
    """Latency as diagnostic_msgs/DiagnosticArray: one status, `<stage>_ms` key/values.

    `receipt_to_publish_s` (measured by the node from message receipt to publish) is added as
    `receipt_to_publish_ms` when given.
    """
    values = {f"{stage}_ms": f"{seconds * 1e3:.3f}" for stage, seconds in result.timings.items()}
    values.update(
        {f"perception.{k}_ms": f"{v * 1e3:.3f}" for k, v in result.perception_timings.items()}
    )
    if receipt_to_publish_s is not None:
        values["receipt_to_publish_ms"] = f"{receipt_to_publish_s * 1e3:.3f}"
    status = _status(
        types,
        level=types.DiagnosticStatus.OK,
        name=LATENCY_STATUS,
        message=f"{len(result.tracks)} tracks",
        values=values,
    )
    return _make(
        types.DiagnosticArray,
        header=_header(types, result_stamp_ns(result, stamp_ns), ""),
        status=[status],
    )


def diagnostics_msg(diag: PipelineDiagnostics, types: MessageTypes, *, stamp_ns: int) -> Any:
    """`/diagnostics`: pipeline status (backend, frames, drops, resets) and one status per IMU."""
    ok, warn = types.DiagnosticStatus.OK, types.DiagnosticStatus.WARN
    unknown = ",".join(f"{i}/{s}" for i, s in diag.unknown_imu_devices)
    reasons = list(diag.warnings)
    if unknown:
        reasons.append(f"IMU devices not configured (ignored): {unknown}")
    statuses = [
        _status(
            types,
            level=warn if reasons or diag.dropped_frames else ok,
            name="rt_reid: pipeline",
            message="; ".join(reasons) if reasons else f"backend {diag.backend}",
            values={
                "backend": diag.backend,
                "frames": str(diag.frames),
                "dropped_frames": str(diag.dropped_frames),
                **{f"dropped.{k}": str(v) for k, v in sorted(diag.dropped_by_reason.items())},
                "resets": str(diag.resets),
                "encoded_windows": str(diag.encoded_windows),
                "unknown_imu_devices": unknown,
                "silent_identities": ",".join(diag.silent_identities),
                "warnings": " | ".join(diag.warnings),
            },
        )
    ]
    for (identity, site), stats in sorted(diag.imu_devices.items()):
        incomplete = {k: v for k, v in diag.imu_incomplete.items() if k.startswith(f"{identity}/")}
        silent = identity in diag.silent_identities
        values = {
            "accepted": str(stats.accepted),
            "resets": str(stats.resets),
            "newest_stamp": "" if stats.newest_stamp is None else f"{stats.newest_stamp:.6f}",
        }
        values.update({f"rejected.{k}": str(v) for k, v in sorted(stats.rejected.items())})
        values.update({f"incomplete.{k}": str(v) for k, v in sorted(incomplete.items())})
        statuses.append(
            _status(
                types,
                level=warn if silent else ok,
                name=f"rt_reid: imu {identity}/{site}",
                message="silent" if silent else "streaming",
                values=values,
            )
        )
    return _make(types.DiagnosticArray, header=_header(types, stamp_ns, ""), status=statuses)
