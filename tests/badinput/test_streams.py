"""Stamps (reorder, duplicates, jumps, far offsets), IMU values and topic names, models that do not
fit the bag: each case replays through the CLI and checks the exit code, the counts and warnings in
the summary, and the reason in the last /diagnostics."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rt_reid.io.bag import stamp
from rt_reid.names import stamp_ns as to_ns
from tests.badinput.conftest import (
    CONFIG,
    LIDAR,
    LIPD4,
    WATCH,
    last_diagnostics,
    replay,
    rewrite,
)

pytestmark = pytest.mark.slow
HOUR_NS = 3600 * 10**9


def restamp(msg: Any, ns: int) -> Any:
    """The message with header.stamp set to `ns`."""
    return dataclasses.replace(msg, header=dataclasses.replace(msg.header, stamp=stamp(ns)))


def lidar_stamps(change):
    """Edit: `change(index, stamp_ns) -> new stamp_ns` for every LiDAR message."""
    seen = [0]

    def edit(topic: str, ns: int, msg: Any):
        seen[0] += 1
        return [(topic, ns, restamp(msg, change(seen[0], to_ns(msg.header.stamp))))]

    return edit


def imu_edit(change, only: str | None = None):
    """Edit: `change(msg) -> msg` for every IMU message (of topics containing `only`)."""

    def edit(topic: str, ns: int, msg: Any):
        if topic.startswith("/imu/") and (only is None or only in topic):
            return [(topic, ns, change(msg))]
        return [(topic, ns, msg)]

    return edit


def test_one_lidar_stamp_1_ms_early_does_not_reset(cli, sim_bag: Path, tmp_path: Path) -> None:
    previous = [0]

    def change(i: int, ns: int) -> int:
        early = previous[0] - 1_000_000 if i == 15 else ns
        previous[0] = ns
        return early

    bag = rewrite(sim_bag, tmp_path / "bag", edit=lidar_stamps(change), topics=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "'lidar_out_of_order': 1" in result.out
    assert "pipeline resets: 0" in result.out
    assert "LiDAR frames dropped: 1 out_of_order" in result.out


def test_repeated_lidar_stamps_are_dropped_and_counted(cli, sim_bag: Path, tmp_path: Path) -> None:
    previous = [0]

    def change(i: int, ns: int) -> int:
        out = previous[0] if i % 5 == 0 else ns
        previous[0] = ns
        return out

    bag = rewrite(sim_bag, tmp_path / "bag", edit=lidar_stamps(change), topics=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "'lidar_duplicate_stamp': 8" in result.out
    level, message = last_diagnostics(tmp_path / "out")["rt_reid: pipeline"]
    assert level == 1
    assert "8 duplicate_stamp" in message


def test_two_lidar_frames_swapped(cli, sim_bag: Path, tmp_path: Path) -> None:
    stamps: dict[int, int] = {}

    def change(i: int, ns: int) -> int:
        stamps[i] = ns
        return ns + 100_000_000 if i == 10 else (ns - 100_000_000 if i == 11 else ns)

    bag = rewrite(sim_bag, tmp_path / "bag", edit=lidar_stamps(change), topics=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "'lidar_out_of_order': 1" in result.out
    assert "pipeline resets: 0" in result.out


def test_lidar_clock_jumping_back_resets_once(cli, sim_bag: Path, tmp_path: Path) -> None:
    bag = rewrite(
        sim_bag,
        tmp_path / "bag",
        edit=lidar_stamps(lambda i, ns: ns - 30 * 10**9 if i > 20 else ns),
        topics=[LIDAR],
    )
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "pipeline resets: 1" in result.out
    assert "LiDAR stamp went backwards" in result.log


def test_all_lidar_stamps_zero(cli, sim_bag: Path, tmp_path: Path) -> None:
    bag = rewrite(sim_bag, tmp_path / "bag", edit=lidar_stamps(lambda *_: 0), topics=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "'lidar_duplicate_stamp': 39" in result.out
    assert "replayed 1 frames" in result.out


@pytest.mark.parametrize(("shift", "word"), [(HOUR_NS, "ahead of"), (-HOUR_NS, "behind")])
def test_imu_an_hour_from_lidar_time_warns(
    cli, sim_bag: Path, tmp_path: Path, shift: int, word: str
) -> None:
    bag = rewrite(
        sim_bag,
        tmp_path / "bag",
        edit=imu_edit(lambda m: restamp(m, to_ns(m.header.stamp) + shift)),
    )
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert f"s {word} LiDAR time" in result.out
    assert "clocks not synchronised" in result.out
    diagnostics = last_diagnostics(tmp_path / "out")
    level, message = diagnostics["rt_reid: pipeline"]
    assert level == 1
    assert f"s {word} LiDAR time (more than imu.buffer_s" in message


def test_one_imu_device_clock_jumping_back(cli, sim_bag: Path, tmp_path: Path) -> None:
    seen = [0]

    def change(msg: Any) -> Any:
        seen[0] += 1
        back = 10 * 10**9 if seen[0] > 100 else 0
        return restamp(msg, to_ns(msg.header.stamp) - back)

    bag = rewrite(sim_bag, tmp_path / "bag", edit=imu_edit(change, only="left_forearm"))
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "IMU clock jumped back" in result.log
    assert "behind LiDAR time" in result.out


def quaternion(m: Any, **values: float) -> Any:
    return dataclasses.replace(m, orientation=dataclasses.replace(m.orientation, **values))


def acceleration(m: Any, **values: float) -> Any:
    return dataclasses.replace(
        m, linear_acceleration=dataclasses.replace(m.linear_acceleration, **values)
    )


# case -> (change of every sample of one device, reason logged)
IMU_CASES = {
    "nan_orientation": (lambda m: quaternion(m, w=float("nan")), "non-finite orientation"),
    "inf_acceleration": (
        lambda m: acceleration(m, x=float("inf")),
        "non-finite linear_acceleration",
    ),
    "zero_quaternion": (
        lambda m: quaternion(m, x=0.0, y=0.0, z=0.0, w=0.0),
        "zero orientation quaternion",
    ),
}


@pytest.mark.parametrize("case", sorted(IMU_CASES))
def test_bad_imu_values_are_counted(cli, sim_bag: Path, tmp_path: Path, case: str) -> None:
    change, reason = IMU_CASES[case]
    bag = rewrite(sim_bag, tmp_path / "bag", edit=imu_edit(change, only="right_lower_leg"))
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0, case
    assert "'imu': " in result.out  # every sample of the device counted as skipped
    assert reason in result.log


def test_imu_topic_without_a_site_is_counted_and_ignored(
    cli, sim_bag: Path, tmp_path: Path
) -> None:
    def edit(topic: str, ns: int, msg: Any):
        if topic.startswith("/imu/") and topic.endswith("/left_forearm"):
            return [(topic, ns, msg), (topic.rsplit("/", 1)[0], ns, msg)]
        return [(topic, ns, msg)]

    bag = rewrite(sim_bag, tmp_path / "bag", edit=edit)
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "'imu_topic_unparsable'" in result.out
    assert "warning: ignored IMU topic /imu/" in result.out


def test_imu_site_outside_the_layout_is_counted(cli, sim_bag: Path, tmp_path: Path) -> None:
    def edit(topic: str, ns: int, msg: Any):
        if topic.startswith("/imu/") and topic.endswith("/left_forearm"):
            return [(topic, ns, msg), (topic.replace("left_forearm", "left_ear"), ns, msg)]
        return [(topic, ns, msg)]

    bag = rewrite(sim_bag, tmp_path / "bag", edit=edit)
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "'imu_unknown_device'" in result.out
    level, message = last_diagnostics(tmp_path / "out")["rt_reid: pipeline"]
    assert level == 1
    assert "left_ear" in message


def test_watch_model_on_a_lipd4_bag_exits_2(cli, sim_bag: Path, tmp_path: Path) -> None:
    result = cli(
        "replay", sim_bag, "--model", WATCH, "--out", tmp_path / "out", "--config", CONFIG,
        "--no-progress",
    )  # fmt: skip
    assert result.code == 2
    assert "expects the 'watch' layout" in result.err
    assert "left_wrist" in result.err


def copy_model(tmp_path: Path) -> Path:
    return Path(shutil.copytree(LIPD4, tmp_path / "model"))


def model_case(tmp_path: Path, case: str) -> Path:
    model = copy_model(tmp_path)
    manifest = model / "manifest.json"
    if case == "no_manifest":
        manifest.unlink()
    elif case == "manifest_not_json":
        manifest.write_text("{ not json")
    elif case == "manifest_wrong_window":
        data = json.loads(manifest.read_text())
        data["window_frames"] = data["window_frames"] + 1
        manifest.write_text(json.dumps(data))
    elif case == "manifest_unknown_layout":
        data = json.loads(manifest.read_text())
        data["layout"] = "ankle9"
        manifest.write_text(json.dumps(data))
    elif case == "onnx_truncated":
        for onnx in model.glob("*.onnx"):
            onnx.write_bytes(onnx.read_bytes()[:1000])
    elif case == "onnx_missing":
        for onnx in model.glob("*.onnx"):
            onnx.unlink()
    return model


MODEL_CASES = [
    "no_manifest",
    "manifest_not_json",
    "manifest_wrong_window",
    "manifest_unknown_layout",
    "onnx_truncated",
    "onnx_missing",
]


@pytest.mark.parametrize("case", MODEL_CASES)
def test_broken_model_exits_2(cli, sim_bag: Path, tmp_path: Path, case: str) -> None:
    model = model_case(tmp_path, case)
    result = cli(
        "replay", sim_bag, "--model", model, "--out", tmp_path / "out", "--config", CONFIG,
        "--no-progress",
    )  # fmt: skip
    assert result.code == 2, result.text
    assert str(model) in result.err or "manifest" in result.err
