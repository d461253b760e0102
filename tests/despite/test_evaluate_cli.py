"""`rt-reid evaluate` end to end on small simulated scenes with an exported model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from despite.evaluate_cli import check_held_out
from rt_reid.cli import main
from rt_reid.errors import ConfigError


def test_evaluate_cli_writes_report_plot_and_json(tmp_path: Path) -> None:
    model = tmp_path / "model"
    assert main(["export", str(model), "--random", "--layout", "watch"]) == 0
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--model-dir",
        str(model),
        "--out",
        str(out),
        "--seeds",
        "3:4",
        "--har-train-seeds",
        "4:5",
        "--people",
        "3",
        "--duration-s",
        "4",
        "--n-list",
        "2",
        "--n-scenes",
        "10",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
    ]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    assert "| n | chance | PC→IMU | IMU→PC |" in report
    assert "Command: `" in report
    assert "R@50" in report
    assert "1-NN" in report
    assert (out / "matching.png").stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    assert {(r["query"], r["candidate"]) for r in results["matching"]} == {
        ("pointcloud", "imu"),
        ("imu", "pointcloud"),
    }
    assert all(r["scenes"] == 10 for r in results["matching"])
    overlapping = [*args[:8], "3:5", *args[9:]]  # held-out seeds overlap the HAR training ones
    assert main(overlapping) == 2


def test_held_out_seeds_must_not_be_training_scenes() -> None:
    training = {"config": {"sim": {"train_seeds": [1000, 1012]}}}
    check_held_out(range(9000, 9006), training)
    with pytest.raises(ConfigError, match="training scenes"):
        check_held_out(range(1010, 1020), training)
