"""`rt-reid replay IN_BAG --model DIR --out OUT_BAG [--report DIR]`: score the pipeline on a bag."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rt_reid.errors import ReidError
from rt_reid.names import Topic

if TYPE_CHECKING:  # the pipeline is imported only when a replay runs (fast --help)
    from rt_reid.evaluation.replay import ReplayResult

DEFAULT_CONFIG = "config/reid.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Replay options."""
    parser.add_argument("in_bag", type=Path, help="input rosbag2 (directory or .mcap/.db3 bag)")
    parser.add_argument("--model", type=Path, required=True, help="exported model directory")
    parser.add_argument("--out", type=Path, required=True, help="output MCAP bag (must not exist)")
    parser.add_argument("--report", type=Path, default=None, help="write report.md + plots here")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"parameter file (default: shipped {DEFAULT_CONFIG}); identities come from the bag",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "tensorrt", "cuda", "cpu"),
        default=None,
        help="inference backend (default: the config's)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def replay_bag(
    in_bag: Path,
    *,
    model: Path,
    out: Path,
    config: Path | None = None,
    backend: str | None = None,
    progress: bool = True,
) -> ReplayResult:
    """Replay one bag with a tqdm progress bar over its LiDAR frames."""
    from tqdm import tqdm

    from rt_reid.config import load_config
    from rt_reid.evaluation.replay import BagReplayer, input_topics
    from rt_reid.paths import find_data

    check_output_path(out)
    if not model.is_dir():
        raise ReidError(f"model directory {model} does not exist")
    cfg = load_config(config if config is not None else find_data(DEFAULT_CONFIG))
    frames = input_topics(in_bag).get(Topic.LIDAR, ("", 0))[1]
    replayer = BagReplayer(config=cfg, model_dir=model, backend=backend)
    with tqdm(
        total=frames, unit="frame", desc="replay", disable=not progress, mininterval=0.5
    ) as bar:
        return replayer.run(in_bag, out, progress=bar.update)


def check_output_path(out: Path) -> None:
    """ReidError unless `out` is a new path whose nearest existing parent is a writable folder."""
    if out.exists():
        raise ReidError(f"output bag {out} already exists; choose a new --out path")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ReidError(f"cannot create output bag {out}: {parent} is a file, not a folder")


def summary_lines(result: ReplayResult) -> list[str]:
    """A short human summary of a replay."""
    lines = [
        f"replayed {result.frames} frames ({result.bag_duration_s:.1f} s) in {result.wall_s:.1f} s "
        f"= {result.realtime_factor:.1f}x real time on {result.backend}",
    ]
    total = result.summary()["latency_ms"].get("total")
    if total:
        lines.append(f"latency per frame: p50 {total['p50']:.1f} ms, p99 {total['p99']:.1f} ms")
    if result.skipped or result.resets:
        lines.append(f"skipped messages: {dict(result.skipped)}; pipeline resets: {result.resets}")
    lines += [f"warning: {warning}" for warning in result.warnings]
    if result.identity is not None:
        s = result.identity.summary()
        lines += [
            f"identity accuracy: {s['identity_accuracy']:.2%} of {s['scored_person_frames']} "
            f"person-frames after {result.warmup_s:g} s warm-up "
            f"(tracked person-frames: {s['tracked_accuracy']:.2%})",
            f"wrong claims/frame: {s['wrong_claims_per_frame']:.3f}, bystander frames labelled: "
            f"{s['bystander_labelled_frames']}, identity switches: {s['id_switches']}, "
            f"missed: {s['missed_rate']:.2%}",
            f"time to first correct identity: median {s['time_to_identity_median_s']:.1f} s, "
            f"max {s['time_to_identity_max_s']:.1f} s; never identified: "
            f"{s['never_identified']} of {s['persons']}",
        ]
    if result.tracker is not None:
        t = result.tracker
        lines.append(
            f"tracker: MOTA {t['mota']:.3f}, IDF1 {t['idf1']:.3f}, recall {t['recall']:.3f}, "
            f"precision {t['precision']:.3f}, track switches {int(t['num_switches'])}, "
            f"fragmentations {int(t['num_fragmentations'])}, no track {t['no_track_rate']:.2%}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """Replay, print a summary and optionally write the report."""
    from rt_reid.evaluation.report import write_report

    result = replay_bag(
        args.in_bag,
        model=args.model,
        out=args.out,
        config=args.config,
        backend=args.backend,
        progress=not args.no_progress,
    )
    for line in summary_lines(result):
        print(line)
    print(f"output bag: {result.out_bag}")
    if args.report is not None:
        print(f"report: {write_report(result, args.report)}")
    return 0
