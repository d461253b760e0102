"""Cost of a frame's output messages: build `/reid/identities`, `/reid/markers`, `/reid/latency`
(and `/diagnostics` every `DIAGNOSTICS_EVERY` frames), serialise them and write them to a bag.

Two measurements, ms per LiDAR frame:
- synthetic (default): `--people` tracks per frame and three IMU devices per person, through
  the `ros_msgs` builders and a `BagWriter` into a temporary bag; the best of `--repeats` runs of
  `--frames` frames, split into building and serialising + writing;
- `--bags`: thread CPU time of the replay's `_Replay.write` (the same work on real frames)
  while `BagReplayer` replays each bag.

Both run on older trees (`PYTHONPATH=<tree>`), so before and after can be measured side by side:

    OMP_NUM_THREADS=1 python bench/bench_outputs.py --people 8 32
    OMP_NUM_THREADS=1 python bench/bench_outputs.py --bags /tmp/prof/bag8 /tmp/prof/bag32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rt_reid.config import load_config
from rt_reid.evaluation import replay
from rt_reid.io import ros_msgs
from rt_reid.io.bag import BagWriter, msg_class
from rt_reid.names import Topic
from rt_reid.paths import find_data, shipped_model
from rt_reid.runtime.imu_buffer import DeviceStats
from rt_reid.runtime.pipeline import FrameResult, IdentityTrack, PipelineDiagnostics

SITES = ("left_wrist", "right_wrist", "pelvis")
STAGES = ("decode", "background", "cluster", "track", "windows", "imu", "physics", "total")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--frames", type=int, default=200, help="synthetic frames per run")
    parser.add_argument("--repeats", type=int, default=5, help="synthetic runs; the best counts")
    parser.add_argument("--bags", type=Path, nargs="+", help="time _Replay.write on these bags")
    parser.add_argument("--model", type=Path, default=None, help="default: shipped lipd4")
    parser.add_argument("--out", type=Path, help="keep the replays' output bags in this folder")
    return parser.parse_args()


def synthetic_frame(people: int, stamp_s: float) -> FrameResult:
    """A frame with one track per person, a third of them unknown, and typical timings."""
    rng = np.random.default_rng(people)
    tracks = [
        IdentityTrack(
            i + 1,
            rng.uniform(-10.0, 10.0, 3),
            rng.uniform(0.3, 1.9, 3),
            f"person{i}" if i % 3 else None,
            float(rng.uniform()),
        )
        for i in range(people)
    ]
    empty = np.zeros((people, people))
    identities = tuple(f"person{i}" for i in range(people))
    timings = dict.fromkeys(STAGES, 0.001)
    return FrameResult(stamp_s, tracks, timings, empty, empty, identities)


def synthetic_diagnostics(people: int) -> PipelineDiagnostics:
    """Pipeline diagnostics with three IMU devices per person."""
    devices = {
        (f"person{i}", site): DeviceStats(accepted=1000, newest_stamp=12.5)
        for i in range(people)
        for site in SITES
    }
    return PipelineDiagnostics(
        backend="cpu",
        frames=100,
        dropped_frames=0,
        resets=0,
        encoded_windows=0,
        imu_devices=devices,
        unknown_imu_devices={},
        imu_incomplete={},
        silent_identities=(),
    )


def frame_messages(
    frame: FrameResult,
    diag: PipelineDiagnostics,
    types: ros_msgs.MessageTypes,
    index: int,
    stamp_ns: int,
) -> list[tuple[str, Any]]:
    """(topic, message) of one frame, as the replay writes them."""
    messages = [
        (
            Topic.IDENTITIES,
            ros_msgs.detections_msg(frame, types, frame_id="lidar", stamp_ns=stamp_ns),
        ),
        (Topic.MARKERS, ros_msgs.markers_msg(frame, types, frame_id="lidar", stamp_ns=stamp_ns)),
        (Topic.LATENCY, ros_msgs.latency_msg(frame, types, stamp_ns=stamp_ns)),
    ]
    if index % replay.DIAGNOSTICS_EVERY == 1:
        messages.append(
            (Topic.DIAGNOSTICS, ros_msgs.diagnostics_msg(diag, types, stamp_ns=stamp_ns))
        )
    return messages


def synthetic(people: int, frames: int, repeats: int) -> tuple[float, float]:
    """(build, serialise + write) ms per frame, the best of `repeats` runs."""
    types = ros_msgs.MessageTypes.from_lookup(msg_class)
    frame, diag = synthetic_frame(people, 1.7e9), synthetic_diagnostics(people)
    best_build = best_write = float("inf")
    with tempfile.TemporaryDirectory(prefix="bench_outputs_") as tmp:
        for run in range(repeats):
            build = write = 0.0
            with BagWriter(Path(tmp) / f"run{run}") as writer:
                for index in range(frames):
                    stamp_ns = 1_700_000_000_000_000_000 + index * 100_000_000
                    start = time.perf_counter()
                    messages = frame_messages(frame, diag, types, index, stamp_ns)
                    built = time.perf_counter()
                    for topic, message in messages:
                        writer.write(topic, stamp_ns, message)
                    build += built - start
                    write += time.perf_counter() - built
            best_build = min(best_build, build * 1e3 / frames)
            best_write = min(best_write, write * 1e3 / frames)
    return best_build, best_write


def replay_write_ms(bag: Path, out: Path, model: Path) -> tuple[float, float, int]:
    """(thread CPU ms, wall ms) per frame in `_Replay.write` while replaying `bag`; frames."""
    spent = {"cpu": 0.0, "wall": 0.0}
    original: Callable[..., None] = replay._Replay.write

    def timed(self: Any, *args: Any, **kwargs: Any) -> None:
        cpu, wall = time.thread_time(), time.perf_counter()
        original(self, *args, **kwargs)
        spent["cpu"] += time.thread_time() - cpu
        spent["wall"] += time.perf_counter() - wall

    config = load_config(find_data("config/reid.yaml"))
    replay._Replay.write = timed  # type: ignore[method-assign]
    try:
        result = replay.BagReplayer(config=config, model_dir=model).run(bag, out)
    finally:
        replay._Replay.write = original  # type: ignore[method-assign]
    frames = max(result.frames, 1)
    return spent["cpu"] * 1e3 / frames, spent["wall"] * 1e3 / frames, result.frames


def main() -> int:
    args = parse_args()
    if args.bags:
        model = args.model or shipped_model()
        print("| bag | frames | `_Replay.write` CPU ms/frame | wall ms/frame |")
        print("|---|---|---|---|")
        with tempfile.TemporaryDirectory(prefix="bench_outputs_") as tmp:
            out = args.out or Path(tmp)
            for i, bag in enumerate(args.bags):
                cpu, wall, frames = replay_write_ms(bag, out / f"out{i}_{bag.name}", model)
                print(f"| {bag} | {frames} | {cpu:.2f} | {wall:.2f} |", flush=True)
        return 0
    print("| people | build ms/frame | serialise + write ms/frame | total ms/frame |")
    print("|---|---|---|---|")
    for people in args.people:
        build, write = synthetic(people, args.frames, args.repeats)
        print(f"| {people} | {build:.2f} | {write:.2f} | {build + write:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
