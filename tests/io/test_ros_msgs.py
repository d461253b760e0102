"""Message conversion with rosbags message classes, checked by a real bag round trip."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rt_reid.errors import BagError, MessageError
from rt_reid.io.bag import (
    BagWriter,
    RawMessage,
    deserialize,
    header,
    msg_class,
    read_messages,
    typestore,
)
from rt_reid.io.ros_msgs import (
    ImuDecoded,
    MessageTypes,
    decode_imu,
    detections_msg,
    diagnostics_msg,
    identity_colour,
    imu_sample,
    latency_msg,
    markers_msg,
)
from rt_reid.runtime.imu_buffer import DeviceStats
from rt_reid.runtime.imu_sample import ImuSample
from rt_reid.runtime.pipeline import FrameResult, IdentityTrack, PipelineDiagnostics

TYPES = MessageTypes.from_lookup(msg_class)
IMU = "sensor_msgs/msg/Imu"
STAMP_NS = 1_700_000_000_123_456_789


def _imu(
    q: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0),
    a: tuple[float, ...] = (0.1, 0.2, 9.8),
    w: tuple[float, ...] = (0.01, 0.02, 0.03),
    orientation_cov: float = 0.0,
) -> Any:
    cls = msg_class("sensor_msgs/msg/Imu")
    vec = msg_class("geometry_msgs/msg/Vector3")
    quat = msg_class("geometry_msgs/msg/Quaternion")
    cov = np.zeros(9)
    cov[0] = orientation_cov
    return cls(
        header=header(STAMP_NS, "alice/left_wrist"),
        orientation=quat(*q),
        orientation_covariance=cov,
        angular_velocity=vec(*w),
        angular_velocity_covariance=np.zeros(9),
        linear_acceleration=vec(*a),
        linear_acceleration_covariance=np.zeros(9),
    )


def _result() -> FrameResult:
    tracks = [
        IdentityTrack(
            7, np.array([1.0, 2.0, -0.5]), np.array([0.5, 0.4, 1.7]), "alice", 0.93, "alice", 12.0
        ),
        IdentityTrack(
            9, np.array([-1.0, 0.5, -0.4]), np.array([0.6, 0.5, 1.6]), None, 1.4, "bob", -3.0
        ),
    ]
    return FrameResult(
        stamp_s=STAMP_NS * 1e-9,
        tracks=tracks,
        timings={
            "perception": 0.004,
            "windows": 0.001,
            "imu": 0.002,
            "inference": 0.006,
            "identity": 0.0005,
            "total": 0.0135,
        },
        similarity=np.array([[0.9, 0.1], [np.nan, np.nan]]),
        evidence=np.array([[12.0, -3.0], [-1.0, 2.0]]),
        identities=("alice", "bob"),
        perception_timings={"background": 0.002},
    )


def test_imu_sample_valid_and_invalid() -> None:
    sample = imu_sample(_imu(q=(0.0, 0.0, 0.0, 1.02)), identity="alice", site="left_wrist")
    assert (sample.identity, sample.site) == ("alice", "left_wrist")
    assert sample.stamp_s == pytest.approx(STAMP_NS * 1e-9)
    assert sample.orientation_xyzw == pytest.approx((0.0, 0.0, 0.0, 1.0))  # normalised
    assert sample.specific_force == (0.1, 0.2, 9.8)
    assert sample.angular_velocity == (0.01, 0.02, 0.03)
    for message, error in (
        (_imu(a=(float("nan"), 0.0, 9.8)), "non-finite linear_acceleration"),
        (_imu(q=(0.0, 0.0, 0.0, 0.0)), "zero orientation quaternion"),
        (_imu(orientation_cov=-1.0), "no orientation estimate"),
        (_imu(q=(0.0, 0.0, 0.0, 2.0)), r"norm 2\.000"),
    ):
        with pytest.raises(MessageError, match=error):
            imu_sample(message, identity="alice", site="left_wrist")


def _per_message(raws: list[bytes]) -> tuple[list[ImuSample], list[int], list[tuple[int, str]]]:
    """What decoding and validating one message at a time gives: samples, undecodable, invalid."""
    samples: list[ImuSample] = []
    undecodable: list[int] = []
    invalid: list[tuple[int, str]] = []
    for i, data in enumerate(raws):
        try:
            message = deserialize("bag", RawMessage("/imu/a/b", IMU, 0, data)).message
        except BagError:
            undecodable.append(i)
            continue
        try:
            samples.append(imu_sample(message, identity="a", site="b"))
        except MessageError as err:
            invalid.append((i, str(err)))
    return samples, undecodable, invalid


def _batched(raws: list[bytes]) -> ImuDecoded:
    def decode(i: int) -> Any:
        return deserialize("bag", RawMessage("/imu/a/b", IMU, 0, raws[i])).message

    return decode_imu(raws, decode=decode)


def _assert_same(raws: list[bytes]) -> ImuDecoded:
    """decode_imu gives exactly the readings and errors of imu_sample on each message."""
    samples, undecodable, invalid = _per_message(raws)
    decoded = _batched(raws)
    batch = decoded.batch("a", "b")
    assert (batch.identity, batch.site) == ("a", "b")
    assert [i for i, _ in decoded.undecodable] == undecodable
    assert [(i, str(err)) for i, err in decoded.invalid] == invalid
    assert batch.stamps_s.tolist() == [s.stamp_s for s in samples]
    assert batch.orientation_xyzw.tolist() == [list(s.orientation_xyzw) for s in samples]
    assert batch.specific_force.tolist() == [list(s.specific_force) for s in samples]
    assert batch.angular_velocity.tolist() == [list(s.angular_velocity) for s in samples]
    return decoded


def _cdr(message: Any, *, little_endian: bool = True) -> bytes:
    return bytes(typestore().serialize_cdr(message, IMU, little_endian=little_endian))


def _with_frame_id(frame_id: str, stamp_ns: int, **values: Any) -> Any:
    return dataclasses.replace(_imu(**values), header=header(stamp_ns, frame_id))


def test_decode_imu_equals_imu_sample_on_every_message() -> None:
    good = [_with_frame_id(f, STAMP_NS + k) for k, f in enumerate(["", "a", "wearer/left" * 3])]
    bad = [
        _imu(q=(0.0, float("nan"), 0.0, 1.0)),
        _imu(a=(0.0, float("inf"), 9.8)),
        _imu(w=(0.0, 0.0, -float("inf"))),
        _imu(q=(0.0, 0.0, 0.0, 0.0)),
        _imu(q=(0.0, 0.0, 0.0, 1.2)),
        _imu(orientation_cov=-1.0),
        _imu(q=(1e200, 0.0, 0.0, 1e200)),
    ]
    raws = [_cdr(m) for m in good + bad]
    valid = _cdr(good[1])
    raws += [
        _cdr(good[2], little_endian=False),  # big-endian CDR: decoded one by one
        valid + b"\0\0\0",  # padding rosbags accepts
        valid + b"\0" * 8,  # too long
        valid[:-1],  # truncated
        b"\0\2" + valid[2:],  # unknown encapsulation
        valid[:16] + b"\xff" + valid[17:],  # frame_id "a" replaced by a byte that is not UTF-8
        valid[:17] + b"x" + valid[18:],  # no NUL terminator
        valid[:12] + (9).to_bytes(4, "little") + valid[16:],  # string length beyond the layout
        b"\0\1",
    ]
    raws += raws  # a second message of each layout in the same group
    decoded = _assert_same(raws)
    assert len(decoded.batch("a", "b")) == 2 * 5
    odd = decoded.batch("a", "b", np.arange(1, len(raws), 2))  # every other message
    assert odd.stamps_s.tolist() == decoded.batch("a", "b").stamps_s[1::2].tolist()
    assert len(decoded.invalid) == 2 * len(bad)
    assert len(decoded.undecodable) == 2 * 7


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([-1.0, 0.0, 1.0, 0.9, 1.1, 1e-7, 1e154]),
        ),
        min_size=11,
        max_size=11,
    ),
    frame_id=st.text(max_size=12),
)
def test_decode_imu_validates_like_imu_sample(values: list[float], frame_id: str) -> None:
    message = _with_frame_id(
        frame_id,
        STAMP_NS,
        q=tuple(values[0:4]),
        a=tuple(values[4:7]),
        w=tuple(values[7:10]),
        orientation_cov=values[10],
    )
    _assert_same([_cdr(message), _cdr(_imu())])


def test_detections_and_markers_round_trip_through_a_bag(tmp_path: Path) -> None:
    result = _result()
    bag = tmp_path / "out"
    with BagWriter(bag) as writer:
        writer.write(
            "/reid/identities",
            STAMP_NS,
            detections_msg(result, TYPES, frame_id="lidar", stamp_ns=STAMP_NS),
        )
        writer.write("/reid/markers", STAMP_NS, markers_msg(result, TYPES, frame_id="lidar"))
        writer.write(
            "/reid/latency", STAMP_NS, latency_msg(result, TYPES, receipt_to_publish_s=0.02)
        )
    messages = {m.topic: m.message for m in read_messages(bag)}
    det = messages["/reid/identities"]
    assert det.header.frame_id == "lidar"
    assert det.header.stamp.sec * 10**9 + det.header.stamp.nanosec == STAMP_NS
    assert [d.id for d in det.detections] == ["7", "9"]
    first, second = det.detections
    assert first.results[0].hypothesis.class_id == "alice"
    assert first.results[0].hypothesis.score == pytest.approx(0.93)
    assert second.results[0].hypothesis.class_id == "unknown"
    assert second.results[0].hypothesis.score == 1.0  # clamped into [0, 1]
    assert (first.bbox.center.position.x, first.bbox.center.position.z) == (1.0, -0.5)
    assert (first.bbox.size.x, first.bbox.size.z) == (0.5, 1.7)
    markers = messages["/reid/markers"].markers
    assert markers[0].action == TYPES.Marker.DELETEALL
    assert len(markers) == 1 + 2 * len(result.tracks)
    labels = [m.text for m in markers if m.type == TYPES.Marker.TEXT_VIEW_FACING]
    assert labels == ["7: alice 0.93", "9: unknown 1.40"]
    boxes = [m for m in markers[1:] if m.type == TYPES.Marker.CUBE]
    assert (boxes[0].color.r, boxes[0].color.g, boxes[0].color.b) == pytest.approx(
        identity_colour("alice")
    )
    latency = messages["/reid/latency"].status[0]
    values = {kv.key: kv.value for kv in latency.values}
    assert values["total_ms"] == "13.500"
    assert values["receipt_to_publish_ms"] == "20.000"
    assert values["perception.background_ms"] == "2.000"


def test_default_stamp_is_rounded_from_seconds() -> None:
    msg = detections_msg(_result(), TYPES, frame_id="lidar")
    ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
    assert abs(ns - STAMP_NS) < 1000


def test_identity_colours_are_stable_and_distinct() -> None:
    assert identity_colour("alice") == identity_colour("alice")
    assert identity_colour("alice") != identity_colour("bob")
    assert identity_colour(None) == (0.6, 0.6, 0.6)


def test_diagnostics_message() -> None:
    stats = DeviceStats(accepted=100, resets=1, newest_stamp=12.5)
    stats.rejected["duplicate"] += 3
    diag = PipelineDiagnostics(
        backend="cpu (CPUExecutionProvider)",
        frames=10,
        dropped_frames=1,
        resets=0,
        encoded_windows=20,
        imu_devices={("alice", "left_wrist"): stats},
        unknown_imu_devices={("eve", "left_wrist"): 4},
        imu_incomplete={"alice/left_wrist:gap": 2},
        silent_identities=("alice",),
    )
    msg = diagnostics_msg(diag, TYPES, stamp_ns=STAMP_NS)
    data = typestore().serialize_cdr(msg, msg.__msgtype__)  # a valid, complete message
    assert len(data) > 0
    pipeline, device = msg.status
    assert pipeline.level == TYPES.DiagnosticStatus.WARN
    values = {kv.key: kv.value for kv in pipeline.values}
    assert values["backend"] == "cpu (CPUExecutionProvider)"
    assert values["unknown_imu_devices"] == "eve/left_wrist"
    assert device.name == "rt_reid: imu alice/left_wrist"
    assert device.message == "silent"
    device_values = {kv.key: kv.value for kv in device.values}
    assert device_values["rejected.duplicate"] == "3"
    assert device_values["incomplete.alice/left_wrist:gap"] == "2"


# SHA-256 of each message's CDR as the builders wrote it before they were made cheaper (commit
# a371622, replay outputs checked byte for byte on 8- and 32-person bags): the bytes are the
# output contract, so a faster builder must reproduce them exactly.
REFERENCE_CDR_SHA256 = {
    "identities": "194e5ff67fbc4218824132e87feda44d1a67c86fc315f8a9f0a552bb1cc415ac",
    "identities, rounded stamp": "8ccd7fab2309c588d828dc2d571417e414ea29bd8cd11a767de5035355d5db1c",
    "identities, no tracks": "b447c7f7838ed2333a41b63f8d94cb74d1febe97fdac6ab35f7a6d66d2bb04df",
    "markers": "9ca47568b5194e587cd39bfb2fc8e5a3fcc5146232ba1f188199ab1958298a34",
    "markers, rounded stamp": "b06de1a5fadb93c0db6ed3ad77bdf869c31e9b367c71526c234fff783bbfe97c",
    "latency": "95050e3a6eb6d3560181719756b17f543ab1b73277b64ab0712f81c8ded47f47",
    "latency, rounded stamp": "f988bee7e13629112d47a6278daf5b358a4cfff859cbb734998140ba0d44a32a",
    "diagnostics": "51a60ae29796c007fa6088ef9a327ca47ec0474c9b1b22a32b3c7390154cd57a",
}


def _edge_case_frame() -> FrameResult:
    """Tracks with -0.0 coordinates, extents below the marker minimum and NaN, scores outside
    [0, 1], an unknown and a non-ASCII identity."""
    tracks = [
        IdentityTrack(
            7, np.array([1.0, 2.0, -0.5]), np.array([0.5, 0.4, 1.7]), "alice", 0.93, "alice", 12.0
        ),
        IdentityTrack(
            9, np.array([-0.0, 0.5, -0.4]), np.array([0.01, 0.5, 0.02]), None, 1.4, "bob", -3.0
        ),
        IdentityTrack(
            123456, np.array([-0.0, -0.0, 1e-300]), np.array([0.05, np.nan, 2.5]), "zo\u00eb", -0.2
        ),
        IdentityTrack(
            3, np.array([np.pi, -np.e, 1 / 3]), np.array([0.3333, 0.7, 1.9]), "carol", 0.5
        ),
    ]
    return FrameResult(
        STAMP_NS * 1e-9 + 0.25,
        tracks,
        {"perception": 0.004, "windows": 0.001, "total": 0.0135},
        np.zeros((4, 2)),
        np.zeros((4, 2)),
        ("alice", "bob"),
        perception_timings={"background": 0.002},
    )


def test_output_messages_serialise_to_the_reference_bytes() -> None:
    result = _edge_case_frame()
    no_tracks = FrameResult(1.5, [], {}, np.zeros((0, 0)), np.zeros((0, 0)), ())
    stats = DeviceStats(accepted=100, resets=1, newest_stamp=12.5)
    stats.rejected["duplicate"] += 3
    diag = PipelineDiagnostics(
        backend="cpu",
        frames=10,
        dropped_frames=1,
        resets=0,
        encoded_windows=20,
        imu_devices={("alice", "left_wrist"): stats, ("bob", "pelvis"): DeviceStats()},
        unknown_imu_devices={("eve", "left_wrist"): 4},
        imu_incomplete={"alice/left_wrist:gap": 2},
        silent_identities=("alice",),
        dropped_by_reason={"out_of_order": 1},
        warnings=("w1",),
    )
    messages = {
        "identities": detections_msg(result, TYPES, frame_id="lidar", stamp_ns=STAMP_NS),
        "identities, rounded stamp": detections_msg(result, TYPES, frame_id="os_sensor"),
        "identities, no tracks": detections_msg(no_tracks, TYPES, frame_id="x"),
        "markers": markers_msg(result, TYPES, frame_id="lidar", stamp_ns=STAMP_NS),
        "markers, rounded stamp": markers_msg(result, TYPES, frame_id="lidar"),
        "latency": latency_msg(result, TYPES, receipt_to_publish_s=0.02, stamp_ns=STAMP_NS),
        "latency, rounded stamp": latency_msg(result, TYPES),
        "diagnostics": diagnostics_msg(diag, TYPES, stamp_ns=STAMP_NS),
    }
    digests = {
        name: hashlib.sha256(typestore().serialize_cdr(msg, msg.__msgtype__)).hexdigest()
        for name, msg in messages.items()
    }
    assert digests == REFERENCE_CDR_SHA256


def test_missing_field_is_reported() -> None:
    from rt_reid.io.ros_msgs import _make

    with pytest.raises(MessageError, match=r"fields \['g'\] missing"):
        _make(TYPES.ColorRGBA, r=1.0, b=0.0, a=1.0)
