"""Bag I/O: vision_msgs round trip, independent mcap reader, clear errors on corrupt bags."""

from pathlib import Path

import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from rt_reid.errors import BagError
from rt_reid.io.bag import (
    BAG_VERSION,
    BagMessage,
    BagWriter,
    RawMessage,
    bag_topics,
    deserialize,
    header,
    msg_class,
    read_messages,
    read_stream,
    typestore,
)
from tests.io.mcap_reader import read_with_mcap


def _detections(stamp_ns: int):
    hypothesis = msg_class("vision_msgs/msg/ObjectHypothesis")(class_id="c0ffee", score=0.75)
    pose_cov = msg_class("geometry_msgs/msg/PoseWithCovariance")
    pose = msg_class("geometry_msgs/msg/Pose")
    point = msg_class("geometry_msgs/msg/Point")(x=1.0, y=2.0, z=0.9)
    quat = msg_class("geometry_msgs/msg/Quaternion")(x=0.0, y=0.0, z=0.0, w=1.0)
    import numpy as np

    with_pose = msg_class("vision_msgs/msg/ObjectHypothesisWithPose")(
        hypothesis=hypothesis,
        pose=pose_cov(pose=pose(position=point, orientation=quat), covariance=np.zeros(36)),
    )
    bbox = msg_class("vision_msgs/msg/BoundingBox3D")(
        center=pose(position=point, orientation=quat),
        size=msg_class("geometry_msgs/msg/Vector3")(x=0.5, y=0.4, z=1.7),
    )
    detection = msg_class("vision_msgs/msg/Detection3D")(
        header=header(stamp_ns, "lidar"), results=[with_pose], bbox=bbox, id="7"
    )
    return msg_class("vision_msgs/msg/Detection3DArray")(
        header=header(stamp_ns, "lidar"), detections=[detection]
    )


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip(tmp_path: Path, storage: str):
    path = tmp_path / "bag"
    with BagWriter(path, storage=storage) as writer:  # type: ignore[arg-type]
        for i in range(3):
            writer.write("/reid/identities", 100 + i, _detections(100 + i))
    assert bag_topics(path) == {"/reid/identities": ("vision_msgs/msg/Detection3DArray", 3)}
    messages = list(read_messages(path))
    assert [m.timestamp_ns for m in messages] == [100, 101, 102]
    first = messages[0].message.detections[0]
    assert first.results[0].hypothesis.class_id == "c0ffee"
    assert first.bbox.size.z == pytest.approx(1.7)


def test_independent_mcap_reader_decodes_vision_msgs(tmp_path: Path):
    path = tmp_path / "bag"
    with BagWriter(path) as writer:
        writer.write("/reid/identities", 5, _detections(5))
    decoded = read_with_mcap(path)
    assert len(decoded) == 1
    topic, log_time, message = decoded[0]
    assert (topic, log_time) == ("/reid/identities", 5)
    assert message.detections[0].results[0].hypothesis.class_id == "c0ffee"


def test_corrupt_and_missing_bags_raise_bag_error(tmp_path: Path):
    with pytest.raises(BagError, match="cannot read bag"):
        list(read_messages(tmp_path / "missing"))
    path = tmp_path / "bag"
    with BagWriter(path) as writer:
        writer.write("/reid/identities", 5, _detections(5))
    mcap_file = next(path.glob("*.mcap"))
    mcap_file.write_bytes(mcap_file.read_bytes()[:40])
    with pytest.raises(BagError):
        list(read_messages(path))


def test_undecodable_message_is_reported_and_skipped_on_request(tmp_path: Path):
    path = tmp_path / "bag"
    with BagWriter(path) as writer:
        writer.write("/reid/identities", 5, _detections(5))
        writer.write("/reid/identities", 7, _detections(7))
    # Rewrite the bag with a garbage CDR payload between the two good messages.
    broken = tmp_path / "broken"
    good = list(read_messages(path))
    store = typestore()
    with Writer(broken, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP) as raw:
        connection = raw.add_connection(
            "/reid/identities", "vision_msgs/msg/Detection3DArray", typestore=store
        )
        raw.write(connection, 5, store.serialize_cdr(good[0].message, good[0].msgtype))
        raw.write(connection, 6, b"\x00\x01\x00\x00\xff")
        raw.write(connection, 7, store.serialize_cdr(good[1].message, good[1].msgtype))
    with pytest.raises(BagError, match=r"cannot decode a vision_msgs/msg/Detection3DArray"):
        list(read_messages(broken))
    errors: list[BagError] = []
    kept = list(read_messages(broken, on_undecodable=errors.append))
    assert [m.timestamp_ns for m in kept] == [5, 7]
    assert len(errors) == 1
    assert "at 6 ns" in str(errors[0])


def test_raw_topics_come_undecoded_in_bag_order(tmp_path: Path):
    path = tmp_path / "bag"
    with BagWriter(path) as writer:
        writer.write("/a", 5, _detections(5))
        writer.write("/b", 6, _detections(6))
        writer.write("/a", 7, _detections(7))
    items = list(read_stream(path, raw_topics={"/a"}))
    assert [(type(m), m.topic, m.timestamp_ns) for m in items] == [
        (RawMessage, "/a", 5),
        (BagMessage, "/b", 6),
        (RawMessage, "/a", 7),
    ]
    raw = items[0]
    assert isinstance(raw, RawMessage)
    decoded = deserialize(path, raw)
    assert decoded.message.header == next(iter(read_messages(path))).message.header
    assert decoded.message.detections[0].id == "7"
    garbage = RawMessage("/a", raw.msgtype, 9, b"\x00\x01\x00")
    with pytest.raises(BagError, match=r"bag: cannot decode a vision_msgs/msg/Detection3DArray "
                       r"message on /a at 9 ns"):  # fmt: skip
        deserialize(path, garbage)


def test_topics_naming_no_topic_of_the_bag_yield_nothing(tmp_path: Path):
    """rosbags reads an empty connection list as "all": read_messages must not pass one on."""
    path = tmp_path / "bag"
    with BagWriter(path) as writer:
        writer.write("/reid/identities", 100, _detections(100))
    assert list(read_messages(path, topics=["/lidar/points"])) == []
    assert len(list(read_messages(path, topics=["/reid/identities"]))) == 1


def test_messages_missing_against_the_metadata_are_reported(tmp_path: Path):
    path = tmp_path / "bag"
    with BagWriter(path) as writer:
        for i in range(3):
            writer.write("/reid/identities", 100 + i, _detections(100 + i))
    metadata = path / "metadata.yaml"
    metadata.write_text(metadata.read_text().replace("message_count: 3", "message_count: 5"))
    lost: list[tuple[str, int]] = []
    messages = list(read_messages(path, on_lost=lambda topic, n: lost.append((topic, n))))
    assert len(messages) == 3
    assert lost == [("/reid/identities", 2)]
