"""Simulated bags: independent mcap readers, both cloud layouts, determinism, the CLI."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.reader import read_ros2_messages

from rt_reid.cli import main
from rt_reid.errors import BagError
from rt_reid.io.bag import read_messages
from rt_reid_sim import SceneConfig, simulate_scene, write_bag
from rt_reid_sim.bagio import OUSTER_STEP, VELODYNE_STEP

SMALL = SceneConfig(people=3, bystanders=1, duration_s=2.0, columns=256, lidar="os1-32", seed=21)


def _mcap_file(bag: Path) -> Path:
    files = sorted(bag.glob("*.mcap"))
    assert len(files) == 1
    return files[0]


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "bag"
    scene = simulate_scene(SMALL)
    summary = write_bag(SMALL, path, scene=scene)
    return path, scene, summary


def test_independent_mcap_reader_decodes_all_topics_with_correct_counts_and_stamps(small_bag):
    path, scene, summary = small_bag
    messages = list(read_ros2_messages(str(_mcap_file(path))))
    counts = Counter(m.channel.topic for m in messages)
    assert counts == Counter(summary.messages)
    frames_ns = [round(s * 1e9) for s in scene.frame_stamps]
    for topic in ("/lidar/points", "/sim/ground_truth", "/sim/activities", "/sim/skeletons"):
        got = [m for m in messages if m.channel.topic == topic]
        assert [m.log_time_ns for m in got] == frames_ns
    for m in messages:
        if m.channel.topic != "/sim/skeletons":
            stamp = m.ros_msg.header.stamp
            assert stamp.sec * 1_000_000_000 + stamp.nanosec == m.log_time_ns
    wearers = [p for p in scene.people if p.identity is not None]
    assert len(wearers) == 2
    for person in wearers:
        for site, stream in person.imu.items():
            topic = f"/imu/{person.identity}/{site}"
            got = [m for m in messages if m.channel.topic == topic]
            stamps = np.array([m.log_time_ns for m in got])
            expected = np.round(stream.stamps * 1e9).astype(np.int64)
            # duplicates are written twice; every device sample is there, in stamp order
            np.testing.assert_array_equal(np.unique(stamps), expected)
            assert got[0].ros_msg.header.frame_id == f"{person.identity}/{site}"
            first = got[0].ros_msg.linear_acceleration
            np.testing.assert_allclose([first.x, first.y, first.z], stream.specific_force[0])
    # ground truth: present people, identity or empty results, pelvis centre
    for t, m in enumerate(m for m in messages if m.channel.topic == "/sim/ground_truth"):
        present = {p.person_id: p for p in scene.people if p.present[t]}
        assert sorted(int(d.id) for d in m.ros_msg.detections) == sorted(present)
        for detection in m.ros_msg.detections:
            person = present[int(detection.id)]
            if person.identity is None:
                assert detection.results == []
            else:
                assert detection.results[0].hypothesis.class_id == person.identity
            centre = detection.bbox.center.position
            np.testing.assert_allclose([centre.x, centre.y, centre.z], person.skeleton[t, 0],
                                       atol=1e-5)  # fmt: skip


def test_organized_cloud_is_ouster_like_with_nan_no_returns(small_bag):
    path, scene, _ = small_bag
    cloud = next(m.message for m in read_messages(path, topics=["/lidar/points"]))
    assert (cloud.height, cloud.width, cloud.point_step) == (32, 256, OUSTER_STEP)
    assert not cloud.is_dense
    names = [f.name for f in cloud.fields]
    assert names[:4] == ["x", "y", "z", "intensity"]
    assert "ring" in names
    assert "t" in names
    data = np.frombuffer(bytes(cloud.data), dtype=np.uint8).reshape(32, 256, OUSTER_STEP)
    xyz = data[..., :12].copy().view("<f4").reshape(32, 256, 3)
    ring = data[..., 22:24].copy().view("<u2").reshape(32, 256)
    np.testing.assert_array_equal(ring, np.repeat(np.arange(32)[:, None], 256, axis=1))
    expected = scene.frame_returns(0).xyz.reshape(32, 256, 3)
    np.testing.assert_array_equal(np.isnan(xyz), np.isnan(expected))
    np.testing.assert_allclose(xyz[~np.isnan(xyz)], expected[~np.isnan(expected)])


def test_unorganized_cloud_is_velodyne_like_with_labels(tmp_path: Path):
    cfg = SceneConfig(people=2, duration_s=0.5, columns=256, lidar="vlp-16", seed=3,
                      point_labels=True)  # fmt: skip
    summary = write_bag(cfg, tmp_path / "bag", storage="sqlite3")
    assert summary.cloud_layout == "unorganized"
    cloud = next(m.message for m in read_messages(tmp_path / "bag", topics=["/lidar/points"]))
    step = cloud.point_step
    assert step == VELODYNE_STEP + 2
    assert cloud.height == 1
    assert cloud.is_dense
    assert [(f.name, f.offset) for f in cloud.fields][3:] == [
        ("intensity", 12),
        ("ring", 16),
        ("time", 18),
        ("label", 22),
    ]
    raw = np.frombuffer(bytes(cloud.data), dtype=np.uint8).reshape(cloud.width, step)
    xyz = raw[:, :12].copy().view("<f4")
    ring = raw[:, 16:18].copy().view("<u2").ravel()
    label = raw[:, 22:24].copy().view("<u2").ravel()
    assert np.isfinite(xyz).all()
    assert cloud.width > 0.9 * 16 * 256
    elevation = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    np.testing.assert_allclose(elevation, -15.0 + 2.0 * ring, atol=0.2)  # ring 0 is the lowest
    assert set(np.unique(label)) <= {0, 1, 2}
    assert (label > 0).any()


def _raw_messages(bag: Path) -> list[tuple[str, int, bytes]]:
    with _mcap_file(bag).open("rb") as stream:
        reader = make_reader(stream)
        return [
            (c.topic, m.log_time, m.data) for _, c, m in reader.iter_messages(log_time_order=False)
        ]


def test_same_seed_gives_identical_message_bytes(tmp_path: Path):
    cfg = SceneConfig(people=2, duration_s=1.0, columns=128, lidar="vlp-16", seed=5,
                      imu_duplicates=0.05, imu_reorder=0.05)  # fmt: skip
    write_bag(cfg, tmp_path / "a")
    write_bag(cfg, tmp_path / "b")
    other = SceneConfig(people=2, duration_s=1.0, columns=128, lidar="vlp-16", seed=6)
    write_bag(other, tmp_path / "c")
    first, second = _raw_messages(tmp_path / "a"), _raw_messages(tmp_path / "b")
    assert len(first) > 300
    assert first == second
    assert first != _raw_messages(tmp_path / "c")
    backwards = 0
    for topic in {t for t, _, _ in first if t.startswith("/imu/")}:
        stamps = [stamp for t, stamp, _ in first if t == topic]  # file (write) order
        backwards += sum(b < a for a, b in itertools.pairwise(stamps))
    assert backwards > 0, "configured reordering within a device's stream is absent"
    pairs = Counter((topic, stamp) for topic, stamp, _ in first if topic.startswith("/imu/"))
    assert max(pairs.values()) == 2, "configured duplicates are absent"


def test_write_bag_refuses_an_existing_path(tmp_path: Path):
    (tmp_path / "bag").mkdir()
    with pytest.raises(BagError, match="already exists"):
        write_bag(SMALL, tmp_path / "bag")


def test_cli_simulates_a_bag_and_prints_a_summary(tmp_path: Path, capsys):
    code = main(["simulate", "--people", "2", "--duration", "1", "--lidar", "vlp-16", "--columns",
                 "256", "--seed", "4", "--no-progress", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "people         2" in out
    assert "/lidar/points          10" in out
    assert (tmp_path / "out" / "metadata.yaml").exists()
    assert main(["simulate", "--people", "40", str(tmp_path / "bad")]) == 2
    assert "people must be 1..32" in capsys.readouterr().err
