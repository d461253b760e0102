"""Bag replay on a short simulated bag: output bag, determinism, bad messages, loops, bad bags."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcap_ros2.reader import read_ros2_messages
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from rt_reid import cli
from rt_reid.config import load_config
from rt_reid.errors import BagError, MessageError, ReidError
from rt_reid.evaluation.replay import BagReplayer, ReplayResult
from rt_reid.io.bag import BAG_VERSION, BagWriter, bag_topics, read_messages, typestore
from rt_reid.io.ros_msgs import imu_sample
from rt_reid.names import Topic
from rt_reid.paths import find_data, shipped_model
from rt_reid_sim import SceneConfig, write_bag

pytestmark = pytest.mark.slow
SCENE = SceneConfig(people=3, bystanders=1, duration_s=6.0, lidar="os1-32", columns=512, seed=1203)


@pytest.fixture(scope="module")
def scene_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "bag"
    write_bag(SCENE, path)
    return path


@pytest.fixture(scope="module")
def replayer() -> BagReplayer:
    config = load_config(find_data("config/reid.yaml"))
    return BagReplayer(config=config, model_dir=shipped_model(), backend="cpu")


@pytest.fixture(scope="module")
def replayed(scene_bag: Path, replayer: BagReplayer, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("out") / "identities"
    return replayer.run(scene_bag, out)


def mcap_file(bag_dir: Path) -> Path:
    (path,) = sorted(bag_dir.glob("*.mcap"))
    return path


def copy_bag(src: Path, dst: Path, edit=None) -> None:
    """Re-write a bag message by message; `edit(item)` returns a list of (topic, ns, msg)."""
    with BagWriter(dst) as writer:
        for item in read_messages(src):
            out = [(item.topic, item.timestamp_ns, item.message)] if edit is None else edit(item)
            for topic, ns, msg in out:
                writer.write(topic, ns, msg)


def test_replay_writes_every_frame_to_a_bag_the_mcap_reader_decodes(
    scene_bag: Path, replayed: ReplayResult
) -> None:
    lidar_count = bag_topics(scene_bag)[Topic.LIDAR][1]
    assert replayed.frames == lidar_count == len(replayed.truth)
    assert not replayed.skipped
    assert replayed.resets == 0
    assert replayed.identity is not None
    assert replayed.tracker is not None
    lidar_stamps = [m.message.header.stamp for m in read_messages(scene_bag, topics=[Topic.LIDAR])]
    counts: dict[str, int] = {}
    identities = []
    with mcap_file(replayed.out_bag).open("rb") as stream:
        for decoded in read_ros2_messages(stream):
            topic = decoded.channel.topic
            counts[topic] = counts.get(topic, 0) + 1
            if topic == Topic.IDENTITIES:
                identities.append(decoded.ros_msg)
    assert counts[Topic.IDENTITIES] == counts[Topic.MARKERS] == counts[Topic.LATENCY] == lidar_count
    assert counts[Topic.DIAGNOSTICS] >= lidar_count // 10
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in identities] == [
        (s.sec, s.nanosec) for s in lidar_stamps
    ]
    labels = {d.results[0].hypothesis.class_id for m in identities for d in m.detections}
    assert labels <= {"unknown", *replayed.identities}
    assert sum(len(m.detections) for m in identities) > lidar_count  # people were tracked
    assert replayed.tracker["recall"] > 0.5


def test_replay_is_deterministic(
    scene_bag: Path, replayer: BagReplayer, replayed: ReplayResult, tmp_path: Path
) -> None:
    again = replayer.run(scene_bag, tmp_path / "again")
    assert again.frames == replayed.frames
    for a, b in zip(again.outputs, replayed.outputs, strict=True):
        assert a.stamp_ns == b.stamp_ns
        assert [(x.key, x.identity) for x in a.boxes] == [(y.key, y.identity) for y in b.boxes]
        for x, y in zip(a.boxes, b.boxes, strict=True):
            np.testing.assert_array_equal(x.position, y.position)
            assert x.score == y.score
    # The output bags too, byte for byte, except the measured latency.
    for topic in (Topic.IDENTITIES, Topic.MARKERS, Topic.DIAGNOSTICS):
        first, second = raw_messages(replayed.out_bag, topic), raw_messages(again.out_bag, topic)
        assert len(first) == len(second) > 0, topic
        assert first == second, f"{topic} differs between two replays of the same bag"


def raw_messages(bag: Path, topic: str) -> list[tuple[int, bytes]]:
    """(receive stamp, serialized bytes) of every message on `topic`."""
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [(ns, bytes(raw)) for _, ns, raw in reader.messages(connections=connections)]


def test_malformed_messages_are_counted_and_skipped(
    scene_bag: Path, replayer: BagReplayer, tmp_path: Path
) -> None:
    counter = {"lidar": 0, "imu": 0}

    def corrupt(item):
        if item.topic == Topic.LIDAR:
            counter["lidar"] += 1
            if counter["lidar"] % 10 == 5:  # a cloud without a z field
                fields = [f for f in item.message.fields if f.name != "z"]
                bad = dataclasses.replace(item.message, fields=fields)
                return [(item.topic, item.timestamp_ns, bad)]
        if item.topic.startswith("/imu/"):
            counter["imu"] += 1
            if counter["imu"] % 500 == 7:  # a sample with a NaN orientation
                q = dataclasses.replace(item.message.orientation, w=float("nan"))
                bad = dataclasses.replace(item.message, orientation=q)
                return [(item.topic, item.timestamp_ns, bad)]
        return [(item.topic, item.timestamp_ns, item.message)]

    broken = tmp_path / "broken"
    copy_bag(scene_bag, broken, corrupt)
    result = replayer.run(broken, tmp_path / "out")
    bad_clouds = counter["lidar"] // 10 + (counter["lidar"] % 10 >= 5)
    assert result.skipped["lidar"] == bad_clouds > 0
    assert result.skipped["imu"] == (counter["imu"] + 493) // 500 > 0
    assert result.frames == counter["lidar"] - bad_clouds
    assert result.identity is not None  # scoring still ran over the frames that were processed


def test_bag_loop_resets_the_pipeline_and_keeps_going(
    scene_bag: Path, replayer: BagReplayer, tmp_path: Path
) -> None:
    """The same recording twice in one bag: header stamps jump back, receive times do not."""
    items = list(read_messages(scene_bag))
    shift = items[-1].timestamp_ns - items[0].timestamp_ns + 1_000_000_000
    looped = tmp_path / "looped"
    with BagWriter(looped) as writer:
        for offset in (0, shift):
            for item in items:
                if item.topic == "/sim/ground_truth":
                    continue  # ground truth cannot be joined by stamp across loops
                writer.write(item.topic, item.timestamp_ns + offset, item.message)
    result = replayer.run(looped, tmp_path / "out")
    lidar_count = sum(1 for i in items if i.topic == Topic.LIDAR)
    assert result.resets == 1
    assert result.frames == 2 * lidar_count
    assert result.identity is None  # no ground truth in this bag
    second = result.outputs[lidar_count:]
    assert sum(len(f.boxes) for f in second) > 0  # tracking works again after the reset


def test_bag_without_lidar_topic_is_rejected(
    scene_bag: Path, replayer: BagReplayer, tmp_path: Path
) -> None:
    no_lidar = tmp_path / "no_lidar"
    copy_bag(
        scene_bag,
        no_lidar,
        lambda i: [] if i.topic == Topic.LIDAR else [(i.topic, i.timestamp_ns, i.message)],
    )
    with pytest.raises(BagError, match="no /lidar/points PointCloud2 topic"):
        replayer.run(no_lidar, tmp_path / "out")


def test_corrupt_and_truncated_bags_raise_a_clear_error(
    scene_bag: Path, replayer: BagReplayer, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "garbage.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 40)
    with pytest.raises(BagError, match="garbage"):
        replayer.run(garbage, tmp_path / "out_garbage")

    truncated = tmp_path / "truncated"
    copy_bag(scene_bag, truncated)
    data = mcap_file(truncated).read_bytes()
    mcap_file(truncated).write_bytes(data[: len(data) // 2])
    with pytest.raises(ReidError, match="truncated"):
        replayer.run(truncated, tmp_path / "out_truncated")


def test_cli_replay_writes_report_and_reports_errors(
    scene_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    code = cli.main(
        [
            "replay",
            str(scene_bag),
            "--model",
            str(shipped_model()),
            "--out",
            str(tmp_path / "out"),
            "--report",
            str(report),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "identity accuracy:" in printed
    assert "x real time" in printed
    text = (report / "report.md").read_text()
    for name in ("identity_accuracy.png", "similarity_heatmap.png", "latency_histogram.png"):
        assert (report / name).stat().st_size > 1000
        assert f"]({name})" in text
    assert "| identity accuracy (person-frames) |" in text
    assert "| mota |" in text

    code = cli.main(
        [
            "replay",
            str(tmp_path / "missing_bag"),
            "--model",
            str(shipped_model()),
            "--out",
            str(tmp_path / "out2"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "missing_bag" in capsys.readouterr().err


def test_message_that_does_not_decode_is_counted_and_skipped(
    scene_bag: Path, replayer: BagReplayer, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    store = typestore()
    garbage_at: list[int] = []
    with Writer(broken, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP) as raw:
        connections: dict[str, Any] = {}
        for item in read_messages(scene_bag):
            if item.topic not in connections:
                connections[item.topic] = raw.add_connection(
                    item.topic, item.msgtype, typestore=store
                )
            data = bytes(store.serialize_cdr(item.message, item.msgtype))
            if item.topic == Topic.LIDAR and not garbage_at:
                data, garbage_at = b"\x00\x01\x00\x00\xff", [item.timestamp_ns]
            raw.write(connections[item.topic], item.timestamp_ns, data)
    result = replayer.run(broken, tmp_path / "out")
    assert result.skipped["undecodable"] == 1
    assert result.frames == bag_topics(scene_bag)[Topic.LIDAR][1] - 1


def test_imu_messages_are_decoded_in_batches_with_the_outcome_of_one_by_one(
    scene_bag: Path, replayer: BagReplayer, tmp_path: Path
) -> None:
    """Garbage, invalid and unconfigured Imu messages: the counts and the first error of each
    kind are those of decoding and validating every message on its own, in bag order."""
    broken = tmp_path / "broken"
    store = typestore()
    with Writer(broken, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP) as raw:
        connections: dict[str, Any] = {}

        def write(topic: str, msgtype: str, ns: int, data: bytes) -> None:
            if topic not in connections:
                connections[topic] = raw.add_connection(topic, msgtype, typestore=store)
            raw.write(connections[topic], ns, data)

        for k, item in enumerate(read_messages(scene_bag)):
            message = item.message
            if item.topic.startswith("/imu/") and k % 97 == 3:
                q = dataclasses.replace(message.orientation, x=float("nan"))
                message = dataclasses.replace(message, orientation=q)
            data = bytes(store.serialize_cdr(message, item.msgtype))
            if item.topic.startswith("/imu/") and k % 89 == 5:
                data = data[:-9]  # truncated: does not decode
            if item.topic.startswith("/imu/") and k % 101 == 7:
                data = bytes(store.serialize_cdr(message, item.msgtype, little_endian=False))
            write(item.topic, item.msgtype, item.timestamp_ns, data)
            if item.topic.endswith("/left_forearm") and k % 2:  # a site outside the layout
                write(item.topic.replace("left_forearm", "left_ear"), item.msgtype, k, data)
    expected: Counter[str] = Counter()
    first: dict[str, str] = {}
    with Reader(broken) as reader:  # bag order
        imu = [c for c in reader.connections if c.topic.startswith("/imu/")]
        stored = [(c.topic, bytes(data)) for c, _, data in reader.messages(connections=imu)]
    for topic, data in stored:
        try:
            message = store.deserialize_cdr(data, "sensor_msgs/msg/Imu")
            imu_sample(message, identity="x", site="y")
        except Exception as err:  # the bag name in the undecodable error is checked apart
            kind = "imu" if isinstance(err, MessageError) else "undecodable"
            expected[kind] += 1
            first.setdefault(kind, str(err))
            continue
        expected["accepted"] += 1
        expected["unknown"] += topic.endswith("/left_ear")
    result = replayer.run(broken, tmp_path / "out")
    assert expected["imu"] > 0
    assert expected["undecodable"] > 0
    assert expected["unknown"] > 0
    assert result.skipped["imu"] == expected["imu"]
    assert result.skipped["undecodable"] == expected["undecodable"]
    assert result.skipped["imu_unknown_device"] == expected["unknown"]
    assert result.imu_messages == expected["accepted"]
    assert result.first_errors["imu"] == first["imu"]
    assert result.first_errors["undecodable"].endswith(first["undecodable"])
