"""Where a frame's time goes: per-stage breakdown of the replay path and the live path.

Two paths over the same bag, 8 and 32 people by default (simulated OS1-64 x 1024 scenes, or
given bags):
- replay (`BagReplayer`, as `rt-reid replay`): the pipeline's own stage timings
  (`ReplayResult.timings`, wall clock per frame: decode, background, cluster, track, windows,
  imu, inference, physics, identity), the thread CPU time of the main parts (`CPU_PARTS`:
  steadier than wall time on a shared machine; with `--no-live` this runs on older trees too,
  `PYTHONPATH=<tree>`), and the replay's cost outside the stages (bag reading and
  deserialising, IMU decoding and buffering, building and writing output messages) as the rest
  of the wall time. With `--cprofile` a second replay runs under cProfile and the rest is split
  by function (cumulative time of the named callables, scaled to the unprofiled wall time), and
  the functions with the most own time are listed.
- live (`ReidEngine`, as `rt-reid run` and the ROS node): each LiDAR message goes through the
  engine's worker thread (decode + pipeline + JSON body of the published result), IMU messages
  are buffered into the pipeline as the wearable ingest does; per frame the engine's
  receipt-to-result latency and the pipeline's stages.

ms per frame (mean, and p50 / p99 for the pipeline stages) and the share of the path's time,
as Markdown tables. The first `--warmup-frames` frames (background learning) are left out.

    OMP_NUM_THREADS=1 python bench/bench_profile.py --people 8 32 --duration 15 --cprofile
    OMP_NUM_THREADS=1 python bench/bench_profile.py --bags /tmp/prof/bag8 /tmp/prof/bag32
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rt_reid.config import ReidConfig, load_config
from rt_reid.evaluation.replay import BagReplayer, config_for_bag, imu_streams, input_topics
from rt_reid.io import ros_msgs
from rt_reid.io.bag import read_messages
from rt_reid.io.pointcloud import pointcloud2_to_xyz
from rt_reid.names import Topic, stamp_ns
from rt_reid.paths import find_data, shipped_model
from rt_reid.runtime.identity import IdentityAssigner
from rt_reid.runtime.imu_buffer import ImuStore
from rt_reid.runtime.live import Frame, Latency, ReidEngine, result_to_json
from rt_reid.runtime.perception.cluster import Clusterer
from rt_reid.runtime.perception.core import LidarPerception
from rt_reid.runtime.perception.tracker import Tracker
from rt_reid.runtime.physics import MotionEvidence
from rt_reid.runtime.pipeline import FrameResult, ReidPipeline
from rt_reid_sim import SceneConfig, write_bag

PIPELINE_STAGES = (
    "decode",
    "background",
    "cluster",
    "track",
    "windows",
    "imu",
    "inference",
    "physics",
    "identity",
)
# Replay work outside the pipeline's stages, by the callables that do it (cProfile cumulative
# time; substrings of "file:line(function)" as pstats names them).
REPLAY_PARTS = {
    "bag read + deserialise": ("io/bag.py", "read_"),
    "IMU decode": ("io/ros_msgs.py", "imu"),
    "IMU buffering (add_imu)": ("runtime/pipeline.py", "add_imu"),
    "output messages + write": ("evaluation/replay.py", "write"),
}
# Thread CPU time of these callables during the replay (steadier than wall time on a loaded
# machine); indented parts are inside the one above.
CPU_PARTS: dict[str, tuple[type, tuple[str, ...]]] = {
    "perception (LidarPerception.process)": (LidarPerception, ("process",)),
    "  clustering (Clusterer.detect)": (Clusterer, ("detect",)),
    "  tracking (Tracker.update)": (Tracker, ("update",)),
    "physics stage (ReidPipeline._physics_step)": (ReidPipeline, ("_physics_step",)),
    "  IMU motion (ImuStore.motion_many)": (ImuStore, ("motion_many",)),
    "  physics evidence (MotionEvidence observe/update/features)": (
        MotionEvidence,
        ("observe", "update", "features"),
    ),
    "identity (IdentityAssigner.update)": (IdentityAssigner, ("update",)),
}
TOP_FUNCTIONS = 15
DRAIN_TIMEOUT_S = 30.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per scene")
    parser.add_argument("--lidar", default="os1-64")
    parser.add_argument("--columns", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1100, help="held-out seeds start here")
    parser.add_argument("--bags", type=Path, nargs="+", help="profile these bags instead")
    parser.add_argument("--model", type=Path, default=None, help="default: shipped lipd4")
    parser.add_argument("--warmup-frames", type=int, default=30)
    parser.add_argument("--cprofile", action="store_true", help="also split the replay's rest")
    parser.add_argument("--no-live", action="store_true", help="replay path only")
    return parser.parse_args()


def share_rows(parts: dict[str, float], total: float) -> list[str]:
    """Markdown rows `| part | ms/frame | share |`."""
    return [f"| {name} | {ms:.2f} | {100 * ms / total:.1f} % |" for name, ms in parts.items()]


def stage_means(timings: dict[str, list[float]], warmup: int) -> dict[str, np.ndarray]:
    """Per stage, the steady-state per-frame durations in ms."""
    return {k: np.asarray(v[warmup:], np.float64) * 1e3 for k, v in timings.items()}


@contextmanager
def cpu_timers() -> Iterator[dict[str, float]]:
    """Thread CPU seconds spent in each of CPU_PARTS while the block runs."""
    spent: defaultdict[str, float] = defaultdict(float)
    originals: list[tuple[type, str, Any]] = []

    def timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            tic = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.thread_time() - tic

        return wrapper

    for label, (owner, names) in CPU_PARTS.items():
        for name in names:
            originals.append((owner, name, getattr(owner, name)))
            setattr(owner, name, timed(label, getattr(owner, name)))
    try:
        yield spent
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)


def profile_replay(
    bag: Path, config: ReidConfig, model: Path, out: Path, args: argparse.Namespace
) -> list[str]:
    """Replay-path tables: pipeline stages from the replay's timings, CPU time of the main
    parts, and the rest by function."""
    replayer = BagReplayer(config=config, model_dir=model)
    cpu = time.process_time()
    with cpu_timers() as spent:
        result = replayer.run(bag, out / "replay")
    cpu_ms = (time.process_time() - cpu) * 1e3 / result.frames
    frames = result.frames
    steady = stage_means(result.timings, args.warmup_frames)
    wall_ms = result.wall_s * 1e3 / frames
    pipeline_ms = float(np.mean(np.asarray(result.timings["total"]) * 1e3))
    lines = [
        f"Replay path: {frames} frames, {result.imu_messages} IMU messages, "
        f"{result.points_per_frame:.0f} points/frame, wall {wall_ms:.1f} ms/frame "
        f"({result.realtime_factor:.1f}x real time); stages: the pipeline's own wall-clock "
        f"timings after {args.warmup_frames} frames.\n",
        "| stage | mean ms/frame | p50 / p99 ms | share of replay wall |",
        "|---|---|---|---|",
    ]
    for stage in PIPELINE_STAGES:
        if stage in steady and steady[stage].size:
            ms = steady[stage]
            lines.append(
                f"| {stage} | {ms.mean():.2f} | {np.percentile(ms, 50):.1f} / "
                f"{np.percentile(ms, 99):.1f} | {100 * ms.mean() / wall_ms:.1f} % |"
            )
    total = steady["total"]
    lines.append(
        f"| **end to end (decode + pipeline)** | {total.mean():.2f} | "
        f"{np.percentile(total, 50):.1f} / {np.percentile(total, 99):.1f} | "
        f"{100 * total.mean() / wall_ms:.1f} % |"
    )
    rest = wall_ms - pipeline_ms
    lines.append(f"| replay outside the pipeline (all frames) | {rest:.2f} | | "
                 f"{100 * rest / wall_ms:.1f} % |")  # fmt: skip
    parts = {label: seconds * 1e3 / frames for label, seconds in spent.items()}
    lines += [
        "",
        f"CPU time (thread time, all frames): replay {cpu_ms:.1f} ms/frame.\n",
        "| part | CPU ms/frame | share of replay CPU |",
        "|---|---|---|",
        *share_rows({k: parts.get(k, 0.0) for k in CPU_PARTS}, cpu_ms),
    ]
    if args.cprofile:
        lines += [
            "",
            *cprofile_replay(
                BagReplayer(config=config, model_dir=model),
                bag,
                out,
                frames=frames,
                wall_ms=wall_ms,
            ),
        ]
    return lines


def cprofile_replay(
    replayer: BagReplayer, bag: Path, out: Path, *, frames: int, wall_ms: float
) -> list[str]:
    """The replay under cProfile: the named parts of its own cost and the top functions."""
    profiler = cProfile.Profile()
    profiler.enable()
    replayer.run(bag, out / "replay_profiled")
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, nc, tt, ct, callers)}
    profiled_s = max(ct for (_, _, name), (_, _, _, ct, _) in raw.items() if name == "run")
    scale = float(wall_ms / (profiled_s * 1e3 / frames))  # profiled -> unprofiled wall time

    def cumulative(path: str, name: str) -> float:
        """Cumulative ms/frame of the outermost matching callables (no double counting)."""
        seconds = sum(
            ct
            for (file, _, func), (_, _, _, ct, callers) in raw.items()
            if file.endswith(path) and name in func
            and not any(c[0].endswith(path) and name in c[2] for c in callers)
        )  # fmt: skip
        return float(seconds) * 1e3 / frames * scale

    parts = {label: cumulative(*where) for label, where in REPLAY_PARTS.items()}
    lines = [
        f"cProfile of the same replay (ms/frame scaled by {scale:.2f} to the unprofiled wall "
        "time; cumulative, so the parts overlap nothing but include their own callees):\n",
        "| replay part outside the pipeline | ms/frame | share of replay wall |",
        "|---|---|---|",
        *share_rows(parts, wall_ms),
        "",
        f"Top {TOP_FUNCTIONS} functions by own time (profiled, ms/frame):\n",
        "| function | own ms/frame | cumulative ms/frame | calls/frame |",
        "|---|---|---|---|",
    ]
    ranked = sorted(raw.items(), key=lambda item: -item[1][2])[:TOP_FUNCTIONS]
    for (file, line, func), (_, calls, own, cum, _) in ranked:
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if line else "builtin"
        lines.append(
            f"| `{func}` ({where}) | {own * 1e3 / frames:.2f} | {cum * 1e3 / frames:.2f} | "
            f"{calls / frames:.0f} |"
        )
    return lines


def profile_live(bag: Path, config: ReidConfig, model: Path, warmup: int) -> list[str]:
    """Live-path table: every LiDAR frame through `ReidEngine`, IMU buffered as it arrives."""
    topics = input_topics(bag)
    bag_config = config_for_bag(config, topics, model)
    streams = imu_streams(topics)
    pipeline = ReidPipeline(config=bag_config, model_dir=model)
    decode: list[float] = []
    publish: list[float] = []
    latency: list[float] = []
    stages: dict[str, list[float]] = {}

    def to_xyz(cloud: object) -> np.ndarray:
        tic = time.perf_counter()
        xyz = pointcloud2_to_xyz(cloud)
        decode.append(time.perf_counter() - tic)
        return xyz

    def on_result(result: FrameResult, frame: Frame, lat: Latency) -> None:
        tic = time.perf_counter()
        result_to_json(result, frame, lat, frame_id=bag_config.frame_id, dropped=0)
        publish.append(time.perf_counter() - tic)
        latency.append(time.monotonic() - frame.receipt_s)
        for stage, seconds in {**result.perception_timings, **result.timings}.items():
            stages.setdefault(stage, []).append(seconds)

    engine = ReidEngine(pipeline=pipeline, to_xyz=to_xyz, publish=on_result)
    engine.start()
    imu_s = 0.0
    try:
        for item in read_messages(bag, topics=[Topic.LIDAR, *streams]):
            if item.topic == Topic.LIDAR:
                frame = Frame(stamp_ns(item.message.header.stamp), item.message, time.monotonic())
                engine.submit(frame)
                engine.drain(DRAIN_TIMEOUT_S)  # one frame at a time: nothing is displaced
            else:
                identity, site = streams[item.topic]
                tic = time.perf_counter()
                pipeline.add_imu(ros_msgs.imu_sample(item.message, identity=identity, site=site))
                imu_s += time.perf_counter() - tic
    finally:
        engine.stop()
    frames = len(latency)
    steady = {k: np.asarray(v[warmup:], np.float64) * 1e3 for k, v in stages.items()}
    e2e = np.asarray(latency[warmup:], np.float64) * 1e3
    parts = {"decode (PointCloud2 -> xyz)": float(np.mean(decode[warmup:]) * 1e3)}
    parts |= {s: float(steady[s].mean()) for s in PIPELINE_STAGES[1:] if s in steady}
    parts["result JSON"] = float(np.mean(publish[warmup:]) * 1e3)
    parts["IMU decode + buffering (all frames)"] = imu_s * 1e3 / frames
    total = sum(parts.values())
    return [
        f"Live path (`ReidEngine`, worker thread): {frames} frames; receipt to result p50 / p99 "
        f"{np.percentile(e2e, 50):.1f} / {np.percentile(e2e, 99):.1f} ms; shares of the sum "
        f"of the parts ({total:.1f} ms/frame).\n",
        "| part | ms/frame | share |",
        "|---|---|---|",
        *share_rows(parts, total),
    ]


def scenes(args: argparse.Namespace, tmp: Path) -> Iterable[tuple[str, Path]]:
    """(label, bag) for the given bags, or simulated scenes of each crowd size."""
    if args.bags:
        yield from ((str(bag), bag) for bag in args.bags)
        return
    for i, people in enumerate(args.people):
        scene = SceneConfig(
            people=people,
            duration_s=args.duration,
            lidar=args.lidar,
            columns=args.columns,
            seed=args.seed + i,
        )
        bag = tmp / f"scene_{people}"
        write_bag(scene, bag)
        yield f"{people} people, {args.lidar} x {args.columns}, {args.duration:g} s", bag


def main() -> int:
    args = parse_args()
    model = args.model or shipped_model()
    config = load_config(find_data("config/reid.yaml"))
    print(f"`{shlex.join(['python', *sys.argv])}`  ")
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n"
    )
    with tempfile.TemporaryDirectory(prefix="bench_profile_") as tmp:
        for i, (label, bag) in enumerate(scenes(args, Path(tmp))):
            print(f"### {label}\n", flush=True)
            out = Path(tmp) / f"out_{i}"
            out.mkdir()
            print("\n".join(profile_replay(bag, config, model, out, args)) + "\n", flush=True)
            if not args.no_live:
                live = profile_live(bag, config, model, args.warmup_frames)
                print("\n".join(live) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
