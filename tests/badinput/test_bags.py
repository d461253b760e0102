"""Corrupt, truncated, incomplete and mis-labelled bags in both storages: exit 2 naming the problem,
or a counted, logged degradation that keeps what was produced."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.badinput.conftest import (
    LIDAR,
    copy_tree,
    data_file,
    first_chunk_record,
    last_diagnostics,
    overwrite,
    replay,
    rewrite,
    set_uint64,
    truncate,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("at", [0.05, 0.1, 0.3, 0.5, 0.7, 0.9])
def test_mcap_with_1_mb_overwritten_mid_file(cli, sim_bag: Path, tmp_path: Path, at: float) -> None:
    bag = copy_tree(sim_bag, tmp_path / "bag")
    overwrite(bag, at=at, length=1 << 20)
    result = replay(cli, bag, tmp_path / "out")
    if result.code == 0:  # the damage hit records the reader can skip: the loss must be counted
        assert "missing from the file" in result.out
    else:
        assert result.code == 2
        assert "corrupt or truncated" in result.err


def test_mcap_record_length_beyond_any_file(cli, sim_bag: Path, tmp_path: Path) -> None:
    """The reader's OverflowError (issue 13's crash) becomes exit 2 naming the bag."""
    bag = copy_tree(sim_bag, tmp_path / "bag")
    set_uint64(bag, first_chunk_record(bag), 2**64 - 1)
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 2
    assert "corrupt or truncated" in result.err
    assert "int too large" in result.err  # the reader's own words, no traceback


def test_mcap_record_length_that_skips_a_chunk_silently(cli, sim_bag: Path, tmp_path: Path):
    """The reader skips the rest of the chunk without an error: the loss is counted."""
    bag = copy_tree(sim_bag, tmp_path / "bag")
    set_uint64(bag, first_chunk_record(bag), 2**40)
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "messages recorded in the bag's metadata are missing from the file" in result.out
    level, message = last_diagnostics(tmp_path / "out")["rt_reid: pipeline"]
    assert level == 1
    assert "missing from the file" in message


@pytest.mark.parametrize("storage", ["sim_bag", "sim_bag_sqlite"])
@pytest.mark.parametrize("fraction", [0.0, 0.02, 0.5, 0.98])
def test_truncated_bag(cli, request, tmp_path: Path, storage: str, fraction: float) -> None:
    bag = copy_tree(request.getfixturevalue(storage), tmp_path / "bag")
    truncate(bag, fraction)
    result = replay(cli, bag, tmp_path / "out")
    assert result.code in (0, 2)
    if result.code == 2:
        assert str(bag) in result.err
    else:  # a readable prefix: what is missing is counted against the metadata's counts
        assert "missing" in result.text


def test_sqlite_page_overwritten(cli, sim_bag_sqlite: Path, tmp_path: Path) -> None:
    bag = copy_tree(sim_bag_sqlite, tmp_path / "bag")
    overwrite(bag, at=0.4, length=1 << 16)
    result = replay(cli, bag, tmp_path / "out")
    assert result.code in (0, 2)
    assert result.code == 0 or "corrupt" in result.err or "cannot read" in result.err


def test_mcap_zeroed_mid_file(cli, sim_bag: Path, tmp_path: Path) -> None:
    bag = copy_tree(sim_bag, tmp_path / "bag")
    overwrite(bag, at=0.5, length=1 << 20, fill=b"\0")
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0  # the reader skips zeroed records silently: the loss must be counted
    assert "messages recorded in the bag's metadata are missing from the file" in result.out
    assert "'lost_in_file'" in result.out


def test_metadata_counts_more_messages_than_the_file_holds(
    cli, sim_bag: Path, tmp_path: Path
) -> None:
    """A damaged file that still parses: the loss against the recorded counts is reported."""
    bag = copy_tree(sim_bag, tmp_path / "bag")
    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    for topic in meta["rosbag2_bagfile_information"]["topics_with_message_count"]:
        if topic["topic_metadata"]["name"] == LIDAR:
            topic["message_count"] += 3
    meta_path.write_text(yaml.safe_dump(meta))
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    expected = "3 messages recorded in the bag's metadata are missing from the file (damaged?)"
    assert f"{expected}: {{'{LIDAR}': 3}}" in result.out
    assert "'lost_in_file': 3" in result.out


def test_metadata_missing(cli, sim_bag: Path, tmp_path: Path) -> None:
    bag = copy_tree(sim_bag, tmp_path / "bag")
    (bag / "metadata.yaml").unlink()
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 2
    assert "metadata" in result.err


def test_metadata_not_yaml(cli, sim_bag: Path, tmp_path: Path) -> None:
    bag = copy_tree(sim_bag, tmp_path / "bag")
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 2
    assert str(bag) in result.err


def test_storage_file_missing(cli, sim_bag: Path, tmp_path: Path) -> None:
    bag = copy_tree(sim_bag, tmp_path / "bag")
    data_file(bag).unlink()
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 2
    assert str(bag) in result.err


def test_empty_directory_is_not_a_bag(cli, tmp_path: Path) -> None:
    (tmp_path / "bag").mkdir()
    result = replay(cli, tmp_path / "bag", tmp_path / "out")
    assert result.code == 2
    assert "corrupt or truncated" in result.err


def test_regular_file_is_not_a_bag(cli, tmp_path: Path) -> None:
    (tmp_path / "bag.txt").write_text("not a bag\n")
    result = replay(cli, tmp_path / "bag.txt", tmp_path / "out")
    assert result.code == 2
    assert "bag.txt" in result.err


def test_missing_bag(cli, tmp_path: Path) -> None:
    result = replay(cli, tmp_path / "nothing", tmp_path / "out")
    assert result.code == 2
    assert "does not exist" in result.err


def test_bag_without_lidar_topic(cli, sim_bag: Path, tmp_path: Path) -> None:
    bag = rewrite(sim_bag, tmp_path / "bag", drop=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 2
    assert f"no {LIDAR} PointCloud2 topic" in result.err
    assert "/imu/" in result.err  # names the topics present


def test_lidar_topic_of_the_wrong_type(cli, sim_bag: Path, tmp_path: Path) -> None:
    first: list[str] = []

    def imu_as_lidar(topic: str, ns: int, msg):
        if topic == LIDAR:
            return []
        if topic.startswith("/imu/") and (not first or first[0] == topic):
            first[:] = [topic]
            return [(LIDAR, ns, msg)]
        return [(topic, ns, msg)]

    bag = rewrite(sim_bag, tmp_path / "bag", edit=imu_as_lidar)
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 2
    assert f"no {LIDAR} PointCloud2 topic" in result.err


def test_bag_without_imu_topics(cli, sim_bag: Path, tmp_path: Path) -> None:
    bag = rewrite(sim_bag, tmp_path / "bag", drop=["/imu/"])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 2
    assert "no /imu/<identity>/<site> Imu topics" in result.err


def test_bag_without_ground_truth_replays_without_scores(
    cli, sim_bag: Path, tmp_path: Path
) -> None:
    bag = rewrite(sim_bag, tmp_path / "bag", drop=["/sim/ground_truth"])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "identity accuracy" not in result.out
    assert (tmp_path / "out").is_dir()
