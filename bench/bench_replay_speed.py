"""Replay speed of one bag under several source trees, side by side: wall and CPU per bag second.

Each tree (this checkout by default; e.g. a `git worktree` of an earlier release) replays the same
bag with `rt-reid replay` in a fresh process (`PYTHONPATH` = that tree), runs alternating, and
the medians are compared as ratios to the first tree. Without `--bag`, an 8-person OS1-64 x 1024
scene is simulated first (the issue's reference load).

    git worktree add /tmp/rt_reid_release 07f00b8
    OMP_NUM_THREADS=1 python bench/bench_replay_speed.py --trees /tmp/rt_reid_release . --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bag", type=Path, default=None, help="replay this bag (else simulate)")
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--duration", type=float, default=45.0)
    parser.add_argument("--seed", type=int, default=41)
    parser.add_argument("--trees", type=Path, nargs="+", default=[REPO], help="source trees")
    parser.add_argument("--model", default="models/lipd4", help="model, relative to each tree")
    parser.add_argument("--runs", type=int, default=3, help="replays per tree (alternating)")
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


def simulate(out: Path, people: int, duration: float, seed: int) -> Path:
    """The reference load: an OS1-64 x 1024 organized scene of `people` (25 % bystanders)."""
    command = [
        *("rt-reid", "simulate", "--people", str(people), "--duration", str(duration)),
        *("--lidar", "os1-64", "--columns", "1024", "--seed", str(seed), "--no-progress"),
        str(out),
    ]
    subprocess.run(command, check=True, cwd=REPO)
    return out


def bag_seconds(bag: Path) -> float:
    """Duration of the bag's LiDAR stream (the replay's own account of it)."""
    from rt_reid.io.bag import bag_topics, read_messages  # this tree's reader
    from rt_reid.names import Topic, stamp_ns

    assert Topic.LIDAR in bag_topics(bag), f"{bag} has no {Topic.LIDAR}"
    stamps = [stamp_ns(m.message.header.stamp) for m in read_messages(bag, topics=[Topic.LIDAR])]
    return (max(stamps) - min(stamps)) * 1e-9 + 0.1


def replay_once(tree: Path, bag: Path, model: str, work: Path) -> tuple[float, float]:
    """(wall s, CPU s of the child) of one `rt-reid replay` run from `tree`."""
    # Releases before 2026-12 fail to look up their data without an ament prefix set.
    ament = os.environ.get("AMENT_PREFIX_PATH") or str(work)
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": "1",
        "AMENT_PREFIX_PATH": ament,
    }
    out = Path(tempfile.mkdtemp(dir=work)) / "out"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tic = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rt_reid", "replay", str(bag), "--model", model, "--out", str(out)],
        check=True,
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - tic
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    args = parse_args()
    trees = [tree.resolve() for tree in args.trees]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bag = args.bag or simulate(work / "bag", args.people, args.duration, args.seed)
        seconds = bag_seconds(bag)
        runs: dict[Path, list[tuple[float, float]]] = {tree: [] for tree in trees}
        for _ in range(args.runs):
            for tree in trees:
                runs[tree].append(replay_once(tree, bag, args.model, work))
    rows: list[dict[str, Any]] = []
    for tree in trees:
        wall = statistics.median(w for w, _ in runs[tree])
        cpu = statistics.median(c for _, c in runs[tree])
        rows.append(
            {
                "tree": str(tree),
                "wall_s": wall,
                "cpu_s": cpu,
                "realtime_factor": seconds / wall,
                "cpu_s_per_bag_s": cpu / seconds,
            }
        )
    base = rows[0]
    print(f"bag: {bag} ({seconds:.1f} s); medians of {args.runs} runs, OMP_NUM_THREADS=1")
    print("| tree | wall s | CPU s | x real time | CPU s per bag s | CPU ratio vs first |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        ratio = base["cpu_s_per_bag_s"] / row["cpu_s_per_bag_s"]
        row["cpu_ratio_vs_first"] = ratio
        print(
            f"| {row['tree']} | {row['wall_s']:.1f} | {row['cpu_s']:.1f} | "
            f"{row['realtime_factor']:.1f} | {row['cpu_s_per_bag_s']:.2f} | {ratio:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"bag_s": seconds, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
