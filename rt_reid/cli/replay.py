"""`rt-reid replay IN_BAG... --model DIR --out OUT [--report DIR]`: score the pipeline on bags.

One bag replays in this process into the output bag OUT. Several bags (or a folder of rosbag2
folders) replay in parallel worker processes into OUT/<bag name>, with one combined report.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rt_reid.errors import ReidError
from rt_reid.names import Topic

if TYPE_CHECKING:  # the pipeline is imported only when a replay runs (fast --help)
    from rt_reid.config import ReidConfig
    from rt_reid.evaluation.replay import ReplayResult

DEFAULT_CONFIG = "config/reid.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Replay options."""
    parser.add_argument(
        "in_bags",
        type=Path,
        nargs="+",
        metavar="IN_BAG",
        help="input rosbag2 (directory or .mcap/.db3 bag), or a folder of rosbag2 folders; "
        "several bags replay in parallel",
    )
    parser.add_argument("--model", type=Path, required=True, help="exported model directory")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output MCAP bag (must not exist); with several bags, a new folder with one output "
        "bag per input bag",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="write report.md + plots here (several bags: one sub-folder per bag)",
    )
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        help="worker processes for several bags (default: the CPUs, at most one per bag)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write the combined report (one row per bag + pooled totals) as JSON here",
    )
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


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def load_replay_config(model: Path, config: Path | None) -> ReidConfig:
    """The parameter file (default: the shipped one), once the model directory is known to exist."""
    from rt_reid.config import load_config
    from rt_reid.paths import find_data

    if not model.is_dir():
        raise ReidError(f"model directory {model} does not exist")
    return load_config(config if config is not None else find_data(DEFAULT_CONFIG))


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

    from rt_reid.evaluation.replay import BagReplayer, input_topics

    check_output_path(out)
    cfg = load_replay_config(model, config)
    frames = input_topics(in_bag).get(Topic.LIDAR, ("", 0))[1]
    replayer = BagReplayer(config=cfg, model_dir=model, backend=backend)
    with tqdm(
        total=frames, unit="frame", desc="replay", disable=not progress, mininterval=0.5
    ) as bar:
        return replayer.run(in_bag, out, progress=bar.update)


def check_output_path(out: Path, what: str = "output bag") -> None:
    """ReidError unless `out` is a new path whose nearest existing parent is a writable folder."""
    if out.exists():
        raise ReidError(f"{what} {out} already exists; choose a new --out path")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ReidError(f"cannot create {what} {out}: {parent} is a file, not a folder")


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
    """Replay one bag here or several in worker processes; exit 2 if any bag failed."""
    from rt_reid.evaluation.batch import find_bags

    bags = find_bags(args.in_bags)
    if bags == args.in_bags and len(bags) == 1:
        return run_one(args, bags[0])
    return run_many(args, bags)


def run_one(args: argparse.Namespace, bag: Path) -> int:
    """Replay one bag in this process, print a summary and optionally write the reports."""
    from rt_reid.evaluation.batch import combined_report, outcome
    from rt_reid.evaluation.report import write_combined_json, write_report

    result = replay_bag(
        bag,
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
    if args.json is not None:
        report = combined_report([outcome(result)], wall_s=result.wall_s, workers=1)
        print(f"combined report: {write_combined_json(report, args.json)}")
    return 0


def run_many(args: argparse.Namespace, bags: list[Path]) -> int:
    """Replay `bags` in parallel into --out/<name>; print the combined report; 2 if any failed."""
    from tqdm import tqdm

    from rt_reid.evaluation.batch import BagJob, combined_report, output_names, replay_many
    from rt_reid.evaluation.report import combined_lines, write_combined_json

    check_output_path(args.out, "output folder")
    config = load_replay_config(args.model, args.config)
    try:
        args.out.mkdir(parents=True)
    except OSError as err:
        raise ReidError(f"cannot create output folder {args.out}: {err}") from err
    jobs = [
        BagJob(
            bag=bag,
            out_bag=args.out / name,
            config=config,
            model_dir=args.model,
            backend=args.backend,
            report_dir=None if args.report is None else args.report / name,
        )
        for bag, name in zip(bags, output_names(bags), strict=True)
    ]
    workers = min(args.jobs or os.cpu_count() or 1, len(jobs))
    tic = time.perf_counter()
    with tqdm(total=len(jobs), unit="bag", desc="replay", disable=args.no_progress) as bar:
        outcomes = replay_many(jobs, workers=workers, on_done=lambda _: bar.update())
    report = combined_report(outcomes, wall_s=time.perf_counter() - tic, workers=workers)
    for line in combined_lines(report):
        print(line)
    print(f"output bags: {args.out}")
    if args.report is not None:
        print(f"reports: {args.report}")
    if args.json is not None:
        print(f"combined report: {write_combined_json(report, args.json)}")
    return 2 if report["pooled"]["failed"] else 0
