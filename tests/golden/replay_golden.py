"""Replay fingerprints, stored so that a refactor or a fast path can prove it changed nothing.

Regenerate (only when a change is meant to alter the outputs, and say so in the commit):

    python -m tests.golden.replay_golden --write
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from rt_reid.config import ReidConfig
from rt_reid.evaluation.replay import BagReplayer, ReplayResult
from rt_reid.paths import find_data, shipped_model
from rt_reid_sim import SceneConfig, write_bag

GOLDEN = Path(__file__).with_name("replay_golden.json")
# Organized OS1 clouds (range-image background) and unorganized VLP clouds (voxel fallback).
SCENES: dict[str, SceneConfig] = {
    "os1_organized": SceneConfig(
        people=3, bystanders=1, duration_s=12.0, lidar="os1-32", columns=512, seed=1203
    ),
    "vlp_unorganized": SceneConfig(
        people=2, bystanders=1, duration_s=12.0, lidar="vlp-16", seed=1207
    ),
}
# The shipped defaults (physics channel) and the fused setting, which also runs the encoders.
SETTINGS: dict[str, dict[str, float]] = {
    "default": {},
    "fused": {"learned_weight": 1.0, "physics_weight": 1.0},
}


def config(identity_overrides: dict[str, float]) -> ReidConfig:
    """The shipped parameter file with identity overrides."""
    document = yaml.safe_load(find_data("config/reid.yaml").read_text(encoding="utf-8"))
    raw: dict[str, Any] = next(iter(document.values()))["ros__parameters"]
    raw.setdefault("identity", {}).update(identity_overrides)
    return ReidConfig.from_dict(raw)


def fingerprint(result: ReplayResult) -> list[list[Any]]:
    """Per frame: stamp, then every output box as (track key, identity, score, position)."""
    return [
        [
            frame.stamp_ns,
            [
                [box.key, box.identity, round(box.score, 6), [round(float(v), 4) for v in where]]
                for box in frame.boxes
                for where in [box.position]
            ],
        ]
        for frame in result.outputs
    ]


def replay_all(work: Path) -> dict[str, list[list[Any]]]:
    """Replay every scene under every setting; fingerprints keyed ``scene/setting``."""
    prints: dict[str, list[list[Any]]] = {}
    for scene_name, scene in SCENES.items():
        bag = work / scene_name
        write_bag(scene, bag)
        for setting, overrides in SETTINGS.items():
            model = shipped_model()
            replayer = BagReplayer(config=config(overrides), model_dir=model, backend="cpu")
            result = replayer.run(bag, work / f"{scene_name}-{setting}")
            prints[f"{scene_name}/{setting}"] = fingerprint(result)
    return prints


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="overwrite the stored fingerprints")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        prints = replay_all(Path(work))
    if args.write:
        GOLDEN.write_text(json.dumps(prints, separators=(",", ":")) + "\n", encoding="utf-8")
    for key, frames in prints.items():
        print(key, len(frames), "frames", sum(len(boxes) for _, boxes in frames), "boxes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
