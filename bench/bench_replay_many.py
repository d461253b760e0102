"""Many-bag replay: wall time of `rt-reid replay` over N bags with 1 worker vs W workers.

Simulates N bags into a temporary folder, then replays all of them with the many-bag path
(`rt_reid.evaluation.batch.replay_many`: worker processes, OMP_NUM_THREADS=1 each) once per
worker count, alternating over `--repeats` rounds in one run (the best wall time of each counts:
the machine is shared), and prints the wall times and the speed-up as a Markdown table. Every
bag's identity numbers must be the same for every worker count (checked). Wall time includes
starting the workers (each imports the pipeline once) and building each bag's pipeline;
"replay s" is the bags' own replay loops, summed.

    python bench/bench_replay_many.py --bags 4                      # --jobs 1 vs --jobs 2
    python bench/bench_replay_many.py --bags 8 --jobs 1 2 4 --people 4 --duration 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

from rt_reid.config import load_config
from rt_reid.evaluation.batch import BagJob, BagOutcome, replay_many
from rt_reid.paths import find_data, shipped_model
from rt_reid_sim import SceneConfig, write_bag


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bags", type=int, default=4, help="bags replayed per measurement")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="worker counts")
    parser.add_argument("--people", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per bag")
    parser.add_argument("--lidar", default="os1-32")
    parser.add_argument("--columns", type=int, default=512)
    parser.add_argument("--seed", type=int, default=1400, help="bag i uses seed + i")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the worker counts")
    return parser.parse_args()


def identity_numbers(outcomes: list[BagOutcome]) -> str:
    """The identity summaries of all bags, as one comparable string."""
    return json.dumps([o.summary and o.summary.get("identity") for o in outcomes], sort_keys=True)


def main() -> int:
    args = parse_args()
    config = load_config(find_data("config/reid.yaml"))
    model = shipped_model()
    with tempfile.TemporaryDirectory(prefix="bench_replay_many_") as tmp:
        work = Path(tmp)
        bags = []
        for i in range(args.bags):
            scene = SceneConfig(
                people=args.people,
                duration_s=args.duration,
                lidar=args.lidar,
                columns=args.columns,
                seed=args.seed + i,
            )
            bags.append(work / f"bag{i}")
            write_bag(scene, bags[-1])
        best: dict[int, tuple[float, float]] = {}  # workers -> (wall s, replay s) of the best round
        reference: str | None = None
        for round_, workers in itertools.product(range(args.repeats), args.jobs):
            out = work / f"out-{round_}-j{workers}"
            jobs = [BagJob(bag, out / bag.name, config, model, args.backend, None) for bag in bags]
            tic = time.perf_counter()
            outcomes = replay_many(jobs, workers=workers)
            wall = time.perf_counter() - tic
            failed = [o.error for o in outcomes if o.failed]
            if failed:
                print(f"replay failed: {failed}", file=sys.stderr)
                return 1
            numbers = identity_numbers(outcomes)
            reference = reference or numbers
            if numbers != reference:
                print(f"--jobs {workers} changed the identity numbers", file=sys.stderr)
                return 1
            replay_s = sum(float(o.summary["wall_s"]) for o in outcomes if o.summary)
            if workers not in best or wall < best[workers][0]:
                best[workers] = (wall, replay_s)
    base = best[args.jobs[0]][0]
    bag_s = args.bags * args.duration
    print(f"# {shlex.join(sys.argv)}")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (load average "
        f"{os.getloadavg()[0]:.1f} at the end: other jobs take cores from the workers), "
        f"{args.bags} bags x {args.duration:g} s, {args.people} people, "
        f"{args.lidar} x {args.columns}"
    )
    print("| workers | wall s | replay s (summed over bags) | bag s / wall s | speed-up |")
    print("|---|---|---|---|---|")
    for workers, (wall, replay_s) in best.items():
        print(
            f"| {workers} | {wall:.1f} | {replay_s:.1f} | {bag_s / wall:.1f} | {base / wall:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
