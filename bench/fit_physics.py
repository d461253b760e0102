"""Fit the physics channel's log-likelihood ratio (`physics.weights`, `.bias`) on our simulator.

Simulates calibration scenes (seeds 3000+, distinct from the evaluation seeds of
bench_identity.py and from the encoders' training seeds), runs the real pipeline with only the
physics channel, associates every confirmed track with the nearest ground-truth pelvis (0.5 m)
and records, every `--every` frames, the physics test statistics of each (track, identity) pair
with whether they are the same person. A class-balanced logistic regression of "same person" on
the statistics gives the weights and bias; the held-out part of the records reports how well
they separate. Never run this on the foreign bags: they are validation only.

    OMP_NUM_THREADS=1 python bench/fit_physics.py --scenes 6 --duration 40
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import yaml
from scipy.optimize import linear_sum_assignment

from rt_reid.config import ReidConfig, load_config
from rt_reid.paths import find_data, shipped_model
from rt_reid.runtime.imu_sample import ImuSample
from rt_reid.runtime.physics import PhysicsParams, feature_names, fit_physics_llr, physics_llr
from rt_reid.runtime.pipeline import ReidPipeline
from rt_reid_sim import SceneConfig, simulate_scene
from rt_reid_sim.scene import SimScene

CALIBRATION_SEED = 3000
GATE_M = 0.5
# (people, lidar, columns, layout): crowd sizes, sensors and wearable layouts the fit covers
VARIANTS = (
    (4, "os1-64", 1024, "lipd4"),
    (8, "os1-32", 512, "watch"),
    (6, "vlp-16", 900, "lipd4"),
    (8, "os1-64", 512, "lipd4"),
    (4, "os1-32", 1024, "watch"),
    (6, "os1-128", 1024, "watch"),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--every", type=int, default=5, help="record every N-th frame")
    parser.add_argument(
        "--smoothing",
        type=int,
        nargs="+",
        default=None,
        help="physics.smoothing_frames (default: shipped)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write records summary + fit")
    return parser.parse_args()


def physics_only(identities: list[str], layout: str, smoothing: list[int] | None) -> ReidConfig:
    """The shipped parameter file with the scene's identities and only the physics channel."""
    document = yaml.safe_load(find_data("config/reid.yaml").read_text(encoding="utf-8"))
    raw = next(iter(document.values()))["ros__parameters"]
    raw["identities"] = {"names": identities, "layout": layout}
    raw.setdefault("identity", {})["learned_weight"] = 0.0
    if smoothing is not None:
        section = raw.setdefault("physics", {})
        section["smoothing_frames"] = smoothing
        section["weights"] = [0.0] * len(feature_names(smoothing))  # fitted here
    return ReidConfig.from_dict(raw)


def scene_records(
    scene: SimScene, *, every: int, smoothing: list[int] | None
) -> list[tuple[list[float], bool]]:
    """(physics statistics, same person) for every matched (track, identity) pair."""
    identities = [p.identity for p in scene.people if p.identity is not None]
    pipe = ReidPipeline(
        config=physics_only(identities, scene.config.layout, smoothing),
        model_dir=shipped_model(scene.config.layout),
        backend="cpu",
    )
    samples = sorted(
        (float(stream.stamps[i]), person.identity, site, stream, i)
        for person in scene.people
        if person.identity is not None
        for site, stream in person.imu.items()
        for i in range(len(stream.stamps))
    )
    cursor = 0
    records: list[tuple[list[float], bool]] = []
    for t, stamp in enumerate(scene.frame_stamps):
        while cursor < len(samples) and samples[cursor][0] <= stamp + 0.02:
            sample_stamp, identity, site, stream, i = samples[cursor]
            pipe.add_imu(
                ImuSample(
                    identity,
                    site,
                    sample_stamp,
                    tuple(stream.orientation_xyzw[i].tolist()),
                    tuple(stream.specific_force[i].tolist()),
                    tuple(stream.angular_velocity[i].tolist()),
                )
            )
            cursor += 1
        result = pipe.process_frame(float(stamp), scene.frame_points(t))
        if t % every or not result.tracks:
            continue
        present = [p for p in scene.people if p.present[t]]
        if not present:
            continue
        truth = np.array([p.skeleton[t, 0, :2] for p in present])
        tracks = np.array([track.position[:2] for track in result.tracks])
        distance = np.linalg.norm(truth[:, None] - tracks[None], axis=2)
        for g, k in zip(*linear_sum_assignment(distance), strict=True):
            if distance[g, k] > GATE_M:
                continue
            for column, identity in enumerate(result.identities):
                features = result.physics[k, column]
                if np.any(features != 0.0):
                    records.append((features.tolist(), present[g].identity == identity))
    return records


def separation(records: list[tuple[list[float], bool]], params: PhysicsParams) -> dict[str, float]:
    """Mean LLR of true and false pairs and the share of each on the right side of 0."""
    x = np.array([f for f, _ in records])
    same = np.array([s for _, s in records])
    llr = physics_llr(x, params)
    return {
        "true_pairs": int(same.sum()),
        "false_pairs": int((~same).sum()),
        "true_mean_llr": float(llr[same].mean()),
        "false_mean_llr": float(llr[~same].mean()),
        "true_positive": float((llr[same] > 0).mean()),
        "false_negative_side": float((llr[~same] < 0).mean()),
    }


def main() -> None:
    args = parse_args()
    config = load_config(find_data("config/reid.yaml"))
    fit_records: list[tuple[list[float], bool]] = []
    check_records: list[tuple[list[float], bool]] = []
    for k in range(args.scenes):
        people, lidar, columns, layout = VARIANTS[k % len(VARIANTS)]
        cfg = SceneConfig(
            people=people,
            duration_s=args.duration,
            lidar=lidar,
            columns=columns,
            layout=layout,
            seed=CALIBRATION_SEED + k,
        )
        records = scene_records(simulate_scene(cfg), every=args.every, smoothing=args.smoothing)
        (check_records if k % 3 == 2 else fit_records).extend(records)
        print(f"scene {k} ({people} people, {lidar} x {columns}, {layout}): {len(records)} records")
    weights, bias = fit_physics_llr(fit_records)
    smoothing = config.physics.smoothing_frames if args.smoothing is None else args.smoothing
    params = dataclasses.replace(
        config.physics, smoothing_frames=tuple(smoothing), weights=weights, bias=bias
    )
    report = {
        "smoothing_frames": list(params.smoothing_frames),
        "features": list(feature_names(params.smoothing_frames)),
        "weights": list(weights),
        "bias": bias,
        "fit": separation(fit_records, params),
        "held_out": separation(check_records, params) if check_records else None,
        "command": "OMP_NUM_THREADS=1 python bench/fit_physics.py "
        f"--scenes {args.scenes} --duration {args.duration} --every {args.every}",
    }
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
