"""Simulator speed: seconds of scene simulated per wall-clock second (target: >= 5x real time).

Runs `simulate_scene` (bodies, crowd planner, ray-cast LiDAR, IMU synthesis; in memory) for the
reference scene of the issue (8 people, os1-64, 1024 columns, 60 s) a few times with different
seeds and prints wall time, CPU time, the real-time ratio and the machine load (other processes on
the same cores slow the wall time down; CPU time is less sensitive to that). With --bag it also
times `write_bag` (which includes its own simulation) into a temporary directory.

    python bench/bench_sim.py [--people 8] [--duration 60] [--lidar os1-64] [--columns 1024]
                              [--repeats 3] [--bag]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rt_reid_sim import SceneConfig, simulate_scene, write_bag

TARGET_RATIO = 5.0


def main() -> int:
    """Time the simulator and print a small report; exit 1 if the median misses the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--lidar", default="os1-64")
    parser.add_argument("--columns", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bag", action="store_true", help="also time write_bag (MCAP)")
    args = parser.parse_args()
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()}")
    walls, cpus, frame_points = [], [], []
    for k in range(args.repeats):
        cfg = SceneConfig(people=args.people, duration_s=args.duration, lidar=args.lidar,
                          columns=args.columns, seed=100 + k)  # fmt: skip
        wall0, cpu0 = time.perf_counter(), time.process_time()
        scene = simulate_scene(cfg)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        walls.append(wall)
        cpus.append(cpu)
        points = [sum(len(p.points[t]) for p in scene.people) for t in range(cfg.frames)]
        frame_points.append(float(np.mean(points)))
        print(f"seed {cfg.seed}: simulate_scene {wall:.2f} s wall, {cpu:.2f} s CPU -> "
              f"{args.duration / wall:.1f}x real time; {np.mean(points):.0f} person points/frame, "
              f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    median = float(np.median(walls))
    ratio = args.duration / median
    print(f"simulate_scene: median {median:.2f} s for {args.duration:.0f} s of "
          f"{args.people} people, {args.lidar} x {args.columns}: {ratio:.1f}x real time "
          f"(CPU time median {np.median(cpus):.2f} s -> "
          f"{args.duration / np.median(cpus):.1f}x)")  # fmt: skip
    if args.bag:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = SceneConfig(people=args.people, duration_s=args.duration, lidar=args.lidar,
                              columns=args.columns, seed=100)  # fmt: skip
            wall0 = time.perf_counter()
            summary = write_bag(cfg, Path(tmp) / "bag")
            wall = time.perf_counter() - wall0
            print(f"write_bag (simulate + write): {wall:.2f} s -> {args.duration / wall:.1f}x "
                  f"real time, {summary.size_bytes / 1e6:.0f} MB, "
                  f"{sum(summary.messages.values())} messages")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"{verdict}: target >= {TARGET_RATIO:.0f}x real time")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
