"""`rt-reid demo`: simulate a fresh multi-person scene, replay it with the shipped model, summarise.

Everything runs on the CPU with ONNX Runtime (no ROS, GPU or torch). The scene's seed defaults to
a value no shipped model was trained on (lipd4 trained on seeds 1000-1011 with 8 people).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rt_reid.cli.replay import check_output_path, replay_bag, summary_lines
from rt_reid.errors import ReidError
from rt_reid.paths import shipped_model

DEFAULT_SEED = 1201


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Demo options (scene size, seed, where to put the files)."""
    parser.add_argument("--people", type=int, default=4, help="people in the room (1-32)")
    parser.add_argument(
        "--bystanders",
        type=int,
        default=None,
        help="people without wearables (default: the simulator's share)",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="scene length in seconds")
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"scene seed (default {DEFAULT_SEED}; not a training seed)",
    )
    parser.add_argument("--lidar", default="os1-32", help="LiDAR preset (vlp-16, os1-32/64/128)")
    parser.add_argument("--columns", type=int, default=512, help="LiDAR columns per revolution")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model directory (default: the shipped lipd4 model)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for the bags and the report (default: a new temp dir)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Simulate, replay, report, and print a one-screen summary."""
    from rt_reid.evaluation.report import write_report
    from rt_reid_sim import SceneConfig, write_bag

    model = args.model if args.model is not None else shipped_model()
    if args.out is None:
        out_dir = Path(tempfile.mkdtemp(prefix="rt_reid_demo_"))
    else:
        out_dir = args.out
        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
            raise ReidError(f"--out {out_dir} exists and is not an empty directory")
        check_output_path(out_dir / "scene")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ReidError(f"cannot create --out {out_dir}: {err}") from err
    scene = SceneConfig(
        people=args.people,
        bystanders=args.bystanders,
        duration_s=args.duration,
        lidar=args.lidar,
        columns=args.columns,
        seed=args.seed,
    )
    scene_bag = out_dir / "scene"
    tic = time.perf_counter()
    write_bag(scene, scene_bag, progress=not args.no_progress)
    simulate_s = time.perf_counter() - tic
    result = replay_bag(
        scene_bag, model=model, out=out_dir / "identities", progress=not args.no_progress
    )
    report = write_report(result, out_dir / "report")
    print()
    print(
        f"rt-reid demo: {args.people} people ({args.people - scene.bystander_count} wear IMUs, "
        f"{scene.bystander_count} without: bystanders), {scene.lidar} x {scene.columns}, "
        f"{args.duration:g} s, seed {args.seed}; simulated in {simulate_s:.1f} s"
    )
    print(f"model: {model}")
    for line in summary_lines(result):
        print(line)
    print(f"scene bag:  {scene_bag}")
    print(f"output bag: {result.out_bag}")
    print(f"report:     {report}")
    return 0
