"""Pipeline latency and replay speed for 1-32 people on this CPU with ONNX Runtime.

For each crowd size a scene is simulated into a temporary rosbag2 and replayed through the full
pipeline (bag read + PointCloud2 decode + perception + windows + IMU + inference + identity +
output bag). Prints per-stage p50/p99 per frame, end-to-end p50/p99 (decode + pipeline), the
replay's own cost outside them (bag reading/deserialising, building and writing the output
messages), the replay speed as a multiple of real time and the replay's CPU time per frame
(process time: what the replay costs whatever else runs on the machine), as a Markdown table.
To compare releases side by side, run it with the library of each tree on the path (same
seeds, same scenes): `PYTHONPATH=/tmp/wt_before python bench/bench_pipeline.py ...`.

    OMP_NUM_THREADS=1 python bench/bench_pipeline.py               # 1 2 4 8 16 32 people
    python bench/bench_pipeline.py --people 8 --duration 20 --lidar os1-32 --columns 512
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

from rt_reid.config import load_config
from rt_reid.evaluation.metrics import latency_percentiles
from rt_reid.evaluation.replay import BagReplayer
from rt_reid.paths import find_data, shipped_model
from rt_reid_sim import SceneConfig, write_bag

STAGES = (
    "decode",
    "perception",
    "background",
    "cluster",
    "track",
    "windows",
    "imu",
    "inference",
    "physics",
    "identity",
    "total",
)
TARGET_P99_MS = {8: 30.0, 32: 100.0}  # issue 14
TARGET_SPEED = {8: 10.0}  # issue 14 (goal 20x)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per scene")
    parser.add_argument("--lidar", default="os1-64")
    parser.add_argument("--columns", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1100, help="held-out seeds start here")
    parser.add_argument("--model", type=Path, default=None, help="default: shipped lipd4")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument(
        "--warmup-frames",
        type=int,
        default=30,
        help="frames excluded from latency (background learning, first windows)",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    model = args.model or shipped_model()
    config = load_config(find_data("config/reid.yaml"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        for i, people in enumerate(args.people):
            scene = SceneConfig(
                people=people,
                duration_s=args.duration,
                lidar=args.lidar,
                columns=args.columns,
                seed=args.seed + i,
            )
            bag = Path(tmp) / f"scene_{people}"
            tic = time.perf_counter()
            write_bag(scene, bag)
            sim_s = time.perf_counter() - tic
            replayer = BagReplayer(config=config, model_dir=model, backend=args.backend)
            cpu = time.process_time()
            result = replayer.run(bag, Path(tmp) / f"out_{people}")
            cpu_ms = (time.process_time() - cpu) * 1e3 / max(result.frames, 1)
            steady = {k: v[args.warmup_frames :] for k, v in result.timings.items()}
            table = latency_percentiles(steady)
            rows.append((people, result, table, cpu_ms))
            total = table["total"]
            print(
                f"{people:>2} people: p50 {total['p50']:.1f} ms, p99 {total['p99']:.1f} ms, "
                f"{result.realtime_factor:.1f}x real time, {cpu_ms:.1f} ms CPU per frame "
                f"(simulated in {sim_s:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    backend = rows[0][1].backend if rows else "?"
    print("\n## Pipeline latency per frame (ms, p50 / p99) and replay speed\n")
    print(f"`{shlex.join(['python', *sys.argv])}`  ")
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; backend {backend}; "
        f"scene {args.lidar} x {args.columns} columns, {args.duration:g} s, first "
        f"{args.warmup_frames} frames excluded from latency.\n"
    )
    present = [s for s in STAGES if any(s in r[2] for r in rows)]
    print(
        "| people | points/frame | "
        + " | ".join(present)
        + " | bag I/O + messages (mean ms/frame) | replay x RT | replay CPU ms/frame | targets |"
    )
    print("|---|---|" + "---|" * len(present) + "---|---|---|---|")
    for people, result, table, cpu_ms in rows:
        cells = [
            f"{table[s]['p50']:.1f} / {table[s]['p99']:.1f}" if s in table else "-" for s in present
        ]
        targets = []
        if people in TARGET_P99_MS:
            ok = table["total"]["p99"] <= TARGET_P99_MS[people]
            targets.append(f"p99<={TARGET_P99_MS[people]:g} ms {'met' if ok else 'MISSED'}")
        if people in TARGET_SPEED:
            ok = result.realtime_factor >= TARGET_SPEED[people]
            targets.append(f">={TARGET_SPEED[people]:g}x {'met' if ok else 'MISSED'}")
        points = result.points_per_frame
        overhead = (result.wall_s - sum(result.timings["total"])) / result.frames * 1e3
        print(
            f"| {people} | {points:.0f} | "
            + " | ".join(cells)
            + f" | {overhead:.1f} | {result.realtime_factor:.1f} | {cpu_ms:.1f} | "
            + f"{'; '.join(targets)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
