"""`rt-reid simulate`: simulate a multi-person LiDAR + IMU scene into a rosbag2 and summarise it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rt_reid.layouts import LAYOUTS
from rt_reid_sim.config import BEHAVIOURS, CLOUD_LAYOUTS, LIDAR_PRESETS, SceneConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Scene size, sensors, storage and the output bag directory."""
    parser.add_argument("out", type=Path, help="output bag directory (must not exist)")
    parser.add_argument("--people", type=int, default=8, help="people in the scene, 1-32 (8)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of data (60)")
    parser.add_argument("--lidar", choices=LIDAR_PRESETS, default="os1-64", help="LiDAR preset")
    parser.add_argument("--columns", type=int, default=1024, help="azimuth columns per turn (1024)")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="lipd4", help="wearables")
    parser.add_argument(
        "--bystanders", type=int, default=None,
        help="people without wearables (default: 25 %% of the people)",
    )  # fmt: skip
    parser.add_argument(
        "--cloud-layout", choices=CLOUD_LAYOUTS, default=None,
        help="PointCloud2 layout (default: organized for os1-*, unorganized for vlp-16)",
    )  # fmt: skip
    parser.add_argument(
        "--behaviour", choices=BEHAVIOURS, default="mixed",
        help="mixed: walking, activities, leaving (default); standing: after entering, everyone "
        "walks to a spot and stands or sits there with only idle sway",
    )  # fmt: skip
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (0)")
    parser.add_argument(
        "--point-labels", action="store_true", help="add a per-point `label` field (person id + 1)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Simulate, write the bag, print a one-screen summary."""
    cfg = SceneConfig(
        people=args.people,
        duration_s=args.duration,
        lidar=args.lidar,
        columns=args.columns,
        layout=args.layout,
        bystanders=args.bystanders,
        seed=args.seed,
        cloud_layout=args.cloud_layout,
        point_labels=args.point_labels,
        behaviour=args.behaviour,
    )
    started = time.perf_counter()
    from rt_reid_sim.bagio import write_bag  # open3d and the ray caster: only when simulating

    summary = write_bag(cfg, args.out, storage=args.storage, progress=not args.no_progress)
    elapsed = time.perf_counter() - started
    print(summary.format())
    print(f"simulated      {cfg.duration_s:.1f} s in {elapsed:.1f} s "
          f"({cfg.duration_s / elapsed:.1f}x real time), seed {cfg.seed}, {cfg.lidar} "
          f"x {cfg.columns} columns, layout {cfg.layout}")  # fmt: skip
    return 0
