"""Identity evidence ablation: learned only / physics only / fused, on our simulator and given bags.

Each simulated scene (held-out seeds 5000+10n+k, 25 % bystanders by default, distinct from the
encoders' training seeds, the physics fit's 3000+ and bench_identity's) is written once and
replayed once per channel setting with the shipped parameters, changed only by
`identity.learned_weight` / `identity.physics_weight` (and any `--set KEY=VALUE`). Bags given
with `--bags` (e.g. the foreign validation bags) are replayed the same way; nothing is fitted.

    OMP_NUM_THREADS=1 python bench/bench_fusion.py --people 4 8 16 32 --scenes 1 --duration 30 \
        --bags ../shared/foreign/f01_three_and_bystander ../shared/foreign/f02_six_mostly_standing \
               ../shared/foreign/f03_eight_watch_walk
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from rt_reid.config import ReidConfig
from rt_reid.evaluation.replay import BagReplayer, input_topics
from rt_reid.layouts import LAYOUTS, get_layout
from rt_reid.paths import find_data, shipped_model
from rt_reid_sim import SceneConfig, write_bag
from rt_reid_sim.randomize import randomized_config

EVAL_SEED = 5000
# Added to the scene seed for randomized worlds: apart from training (20000-20008, 25000-25002).
RANDOMIZED_SEED = 30_000
CHANNELS = ("learned", "physics", "fused")
OFF = {"learned": "physics_weight", "physics": "learned_weight"}  # the weight each one zeroes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, nargs="*", default=[4, 8])
    parser.add_argument("--scenes", type=int, default=1)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--lidar", default="os1-64")
    parser.add_argument("--columns", type=int, default=1024)
    parser.add_argument("--layout", default="lipd4")
    parser.add_argument(
        "--randomized",
        action="store_true",
        help="draw each scene's world from rt_reid_sim.randomize (sensors, mounts, rooms, bodies, "
        "motion styles, IMU errors) instead of the default world: a domain shift on our own data",
    )
    parser.add_argument("--channels", nargs="+", default=list(CHANNELS), choices=CHANNELS)
    parser.add_argument("--bags", type=Path, nargs="*", default=[], help="extra bags to replay")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. identity.x=1"
    )
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


def parameters(channel: str, overrides: list[str]) -> dict[str, Any]:
    """The shipped parameter file with the overrides applied, then the other channel switched off.

    "fused" keeps the channel weights of the file (or of the overrides).
    """
    document = yaml.safe_load(find_data("config/reid.yaml").read_text(encoding="utf-8"))
    raw: dict[str, Any] = next(iter(document.values()))["ros__parameters"]
    for item in overrides:
        key, _, value = item.partition("=")
        *path, leaf = key.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    if channel in OFF:
        raw.setdefault("identity", {})[OFF[channel]] = 0.0
    return raw


def bag_layout(bag: Path) -> str:
    """The wearable layout whose sites the bag's IMU topics use."""
    sites = {topic.rsplit("/", 1)[-1] for topic in input_topics(bag) if topic.startswith("/imu/")}
    for name in LAYOUTS:
        if set(get_layout(name).sites) == sites:
            return name
    raise SystemExit(f"{bag}: IMU sites {sorted(sites)} match no layout")


def replay(bag: Path, channel: str, overrides: list[str], out: Path) -> dict[str, Any]:
    """Replay one bag with one channel setting; the identity headline numbers."""
    config = ReidConfig.from_dict(parameters(channel, overrides))
    model = shipped_model(bag_layout(bag))
    result = BagReplayer(config=config, model_dir=model, backend="cpu").run(bag, out)
    if result.identity is None:
        raise SystemExit(f"{bag} has no /sim/ground_truth to score against")
    summary = result.identity.summary()
    return {
        "accuracy": summary["identity_accuracy"],
        "wrong_claims_per_frame": summary["wrong_claims_per_frame"],
        "bystander_labelled_rate": summary["bystander_labelled_rate"],
        "median_time_to_id_s": summary["time_to_identity_median_s"],
        "missed_rate": summary["missed_rate"],
        "realtime_factor": result.realtime_factor,
    }


def main() -> int:
    args = parse_args()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_fusion_") as tmp_name:
        tmp = Path(tmp_name)
        bags: list[tuple[str, Path]] = [(bag.name, bag) for bag in args.bags]
        for people in args.people:
            for k in range(args.scenes):
                seed = EVAL_SEED + 10 * people + k
                scene = (
                    randomized_config(
                        RANDOMIZED_SEED + seed, people=people, duration_s=args.duration,
                        layout=args.layout,
                    )
                    if args.randomized
                    else SceneConfig(
                        people=people, duration_s=args.duration, lidar=args.lidar,
                        columns=args.columns, layout=args.layout, seed=seed,
                    )
                )  # fmt: skip
                bag = tmp / f"sim_{people}_{k}"
                write_bag(scene, bag)
                world = f"randomized {scene.lidar} x {scene.columns}" if args.randomized else "sim"
                bags.append((f"{world} {people} people seed {scene.seed}", bag))
        for name, bag in bags:
            row: dict[str, Any] = {"bag": name}
            for channel in args.channels:
                out = tmp / f"out_{len(rows)}_{channel}"
                row[channel] = replay(bag, channel, args.set, out)
                print(
                    f"{name} {channel}: accuracy {row[channel]['accuracy']:.3f} "
                    f"({time.perf_counter() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            rows.append(row)
    report = {"command": shlex.join(["python", *sys.argv]), "rows": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\n`{report['command']}`\n")
    print(
        "| bag | channel | accuracy | wrong claims/frame | bystander frames labelled | "
        "median t-to-ID [s] | missed |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        for channel in args.channels:
            r = row[channel]
            print(
                f"| {row['bag']} | {channel} | {100 * r['accuracy']:.1f} % | "
                f"{r['wrong_claims_per_frame']:.3f} | {100 * r['bystander_labelled_rate']:.1f} % | "
                f"{r['median_time_to_id_s']:.1f} | {100 * r['missed_rate']:.1f} % |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
