"""PointCloud2 layouts, impossible data, empty clouds and frame ids, replayed through the CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.badinput.conftest import LIDAR, last_diagnostics, output_frame_ids, replay, rewrite

pytestmark = pytest.mark.slow
Cloud = Any


def every_cloud(change: Callable[[Cloud], Cloud]):
    """Edit applying `change` to every LiDAR message."""

    def edit(topic: str, ns: int, msg: Cloud):
        return [(topic, ns, change(msg))]

    return edit


def nth_cloud(n: int, change: Callable[[Cloud], Cloud]):
    """Edit applying `change` to the n-th LiDAR message only."""
    seen = [0]

    def edit(topic: str, ns: int, msg: Cloud):
        seen[0] += 1
        return [(topic, ns, change(msg) if seen[0] == n else msg)]

    return edit


def fields(msg: Cloud, **changes: dict[str, Any]) -> Cloud:
    """The cloud with some PointFields changed (name -> field attributes)."""
    new = [dataclasses.replace(f, **changes.get(f.name, {})) for f in msg.fields]
    return dataclasses.replace(msg, fields=new)


def without(msg: Cloud, name: str) -> Cloud:
    return dataclasses.replace(msg, fields=[f for f in msg.fields if f.name != name])


def xyz_scaled(msg: Cloud, factor: float) -> Cloud:
    """Multiply every x, y, z by `factor` (little-endian float32 at the declared offsets)."""
    data = np.array(msg.data, dtype=np.uint8)
    offsets = {f.name: f.offset for f in msg.fields}
    records = data.reshape(-1, msg.point_step)
    for axis in "xyz":
        o = offsets[axis]
        values = records[:, o : o + 4].copy().view("<f4") * np.float32(factor)
        records[:, o : o + 4] = values.view(np.uint8).reshape(-1, 4)
    return dataclasses.replace(msg, data=data)


def all_nan(msg: Cloud) -> Cloud:
    data = np.array(msg.data, dtype=np.uint8)
    records = data.reshape(-1, msg.point_step)
    o = next(f.offset for f in msg.fields if f.name == "x")
    records[:, o : o + 4] = np.full((len(records), 1), np.nan, "<f4").view(np.uint8)
    return dataclasses.replace(msg, data=data)


def unorganized(msg: Cloud) -> Cloud:
    return dataclasses.replace(
        msg, height=1, width=msg.height * msg.width, row_step=msg.height * msg.row_step
    )


def empty(msg: Cloud) -> Cloud:
    return dataclasses.replace(msg, height=1, width=0, row_step=0, data=np.zeros(0, dtype=np.uint8))


def frame(name: str) -> Callable[[Cloud], Cloud]:
    def change(msg: Cloud) -> Cloud:
        return dataclasses.replace(msg, header=dataclasses.replace(msg.header, frame_id=name))

    return change


# case -> (edit of the LiDAR topic, expected exit code, text the user must see)
FATAL: dict[str, tuple[Callable[[Cloud], Cloud], str]] = {
    "height_halved": (lambda m: dataclasses.replace(m, height=m.height // 2), "but height is"),
    "height_doubled": (lambda m: dataclasses.replace(m, height=m.height * 2), "too short"),
    "is_bigendian_on_little_endian_data": (
        lambda m: dataclasses.replace(m, is_bigendian=True),
        "is_bigendian=True is likely wrong",
    ),
    "no_x_field": (lambda m: without(m, "x"), "no 'x' field"),
    "z_as_float64": (lambda m: fields(m, z={"datatype": 8}), "must be one FLOAT32"),
    "y_count_3": (lambda m: fields(m, y={"count": 3}), "must be one FLOAT32"),
    "unknown_datatype": (lambda m: fields(m, x={"datatype": 9}), "unknown datatype 9"),
    "duplicate_field": (lambda m: dataclasses.replace(m, fields=[*m.fields, m.fields[0]]), "twice"),
    "field_beyond_point_step": (lambda m: fields(m, z={"offset": m.point_step}), "point_step"),
    "point_step_too_small": (lambda m: dataclasses.replace(m, point_step=4), "point_step"),
    "row_step_too_small": (lambda m: dataclasses.replace(m, row_step=m.point_step), "row_step"),
    "data_cut_in_half": (
        lambda m: dataclasses.replace(m, data=np.array(m.data[: len(m.data) // 2])),
        "too short",
    ),
    "coordinates_in_micrometres": (lambda m: xyz_scaled(m, 1e-7), "implausible"),
    "coordinates_times_1e7": (lambda m: xyz_scaled(m, 1e7), "implausible"),
    "size_zero_with_data": (lambda m: dataclasses.replace(m, width=0), "holds"),
}


@pytest.mark.parametrize("case", sorted(FATAL))
def test_every_cloud_broken_exits_2_naming_the_problem(
    cli, sim_bag: Path, tmp_path: Path, case: str
) -> None:
    change, problem = FATAL[case]
    bag = rewrite(sim_bag, tmp_path / "bag", edit=every_cloud(change), topics=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 2
    assert "no LiDAR frame could be processed" in result.err
    assert problem in result.err


@pytest.mark.parametrize("case", ["is_bigendian_on_little_endian_data", "height_halved"])
def test_one_broken_cloud_is_counted_and_skipped(
    cli, sim_bag: Path, tmp_path: Path, case: str
) -> None:
    bag = rewrite(sim_bag, tmp_path / "bag", edit=nth_cloud(7, FATAL[case][0]), topics=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "'lidar': 1" in result.out
    assert FATAL[case][1] in result.log  # the first one is logged with its reason


@pytest.mark.parametrize(
    ("case", "change"), [("empty", empty), ("all_points_nan", all_nan)], ids=["empty", "nan"]
)
def test_every_cloud_empty_warns_in_summary_and_diagnostics(
    cli, sim_bag: Path, tmp_path: Path, case: str, change
) -> None:
    bag = rewrite(sim_bag, tmp_path / "bag", edit=every_cloud(change), topics=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0, case
    assert "warning: 40 of 40 LiDAR frames had no points" in result.out
    level, message = last_diagnostics(tmp_path / "out")["rt_reid: pipeline"]
    assert level == 1
    assert "LiDAR frames had no points" in message


def test_unorganized_layout_of_the_same_points_is_fine(cli, sim_bag: Path, tmp_path: Path) -> None:
    bag = rewrite(sim_bag, tmp_path / "bag", edit=every_cloud(unorganized), topics=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "skipped" not in result.out
    assert "warning" not in result.out


def test_frame_id_changing_mid_stream_is_counted_not_used(
    cli, sim_bag: Path, tmp_path: Path
) -> None:
    seen = [0]

    def edit(topic: str, ns: int, msg: Cloud):
        seen[0] += 1
        if seen[0] > 20:  # a second sensor takes over the topic
            msg = frame("lidar_2")(msg)
        return [(topic, ns, msg)]

    bag = rewrite(sim_bag, tmp_path / "bag", edit=edit, topics=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "'lidar_frame_id_changed': 20" in result.out
    assert "frame_id changed from 'lidar' to 'lidar_2'" in result.log
    assert output_frame_ids(tmp_path / "out") == {"lidar"}


def test_frame_id_other_than_configured_is_used_and_warned(
    cli, sim_bag: Path, tmp_path: Path
) -> None:
    bag = rewrite(sim_bag, tmp_path / "bag", edit=every_cloud(frame("os_sensor")), topics=[LIDAR])
    result = replay(cli, bag, tmp_path / "out")
    assert result.code == 0
    assert "LiDAR frame_id 'os_sensor' differs from the configured frame_id 'lidar'" in result.out
    assert output_frame_ids(tmp_path / "out") == {"os_sensor"}
    level, message = last_diagnostics(tmp_path / "out")["rt_reid: pipeline"]
    assert level == 1
    assert "os_sensor" in message
