"""Identity accuracy on held-out simulated scenes, confidence calibration and its reliability.

Held-out: the shipped lipd4 model was trained on seeds 1000-1011 (models/lipd4/REPORT.md);
evaluation uses seeds 1000+10n+k (n >= 2 people, so never 1000-1011). Calibration scenes (seeds
2000+) are distinct from evaluation scenes: the margin -> confidence map is fitted on the former
with `rt_reid.runtime.identity.fit_calibration` and its reliability (expected calibration error) is
measured on the latter. Ablations separate what limits accuracy: `--ablate-clock` replays the same
scenes with ideal IMU clocks (no offset, no jitter).

    OMP_NUM_THREADS=1 python bench/bench_identity.py --people 2 4 8 16 32 --scenes 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rt_reid.config import load_config
from rt_reid.evaluation.metrics import (
    IdentityMetrics,
    calibration_records,
    expected_calibration_error,
    identity_metrics,
    pool_identity,
)
from rt_reid.evaluation.replay import BagReplayer, ReplayResult
from rt_reid.layouts import get_layout
from rt_reid.paths import find_data, shipped_model
from rt_reid.runtime.features import imu_features, resample_imu
from rt_reid.runtime.identity import Calibration, fit_calibration
from rt_reid.runtime.inference import EncoderSet
from rt_reid.runtime.windows import TrackWindows
from rt_reid_sim import SceneConfig, simulate_scene, write_bag

EVAL_SEED = 1000
CALIBRATION_SEED = 2000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    parser.add_argument("--scenes", type=int, default=2, help="evaluation scenes per crowd size")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--calibration-people", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--lidar", default="os1-64")
    parser.add_argument("--columns", type=int, default=1024)
    parser.add_argument("--model", type=Path, default=None, help="default: shipped lipd4")
    parser.add_argument(
        "--ablate-clock",
        action="store_true",
        help="also replay every evaluation scene with ideal IMU clocks",
    )
    parser.add_argument(
        "--oracle-stride",
        type=int,
        default=0,
        help="also score windows built from ground-truth points every N frames "
        "(perfect tracking; separates model quality from tracking)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write all numbers here")
    return parser.parse_args()


def replay(scene: SceneConfig, tmp: Path, model: Path, tag: str) -> ReplayResult:
    """Simulate `scene` into a bag and replay it."""
    bag = tmp / f"{tag}_in"
    write_bag(scene, bag)
    config = load_config(find_data("config/reid.yaml"))
    return BagReplayer(config=config, model_dir=model, backend="cpu").run(bag, tmp / f"{tag}_out")


def oracle_windows(scene_cfg: SceneConfig, model: Path, *, stride: int) -> dict[str, float]:
    """Window matching with ground-truth person points (perfect tracking): the model alone.

    Every `stride` frames, each wearer's 24-frame window (built by the runtime's TrackWindows
    from that person's own simulated returns) is compared with every wearer's IMU window; argmax
    over identities. IMU windows use the device stamps as recorded ("raw") and with the true
    clock offset removed ("clock corrected"), which measures what the offsets cost.
    """
    scene = simulate_scene(scene_cfg)
    config = load_config(find_data("config/reid.yaml"))
    encoders = EncoderSet(model_dir=model, backend="cpu", layout=scene_cfg.layout)
    manifest = encoders.manifest
    windows = TrackWindows(
        window_frames=manifest.window_frames,
        points_per_frame=manifest.points_per_frame,
        centring=manifest.centring,
        lag_frames=0,
        min_observed_fraction=config.windows.min_observed_fraction,
        min_points=config.windows.min_points,
    )
    wearers = [p for p in scene.people if p.identity is not None]
    sites = get_layout(scene_cfg.layout).sites
    period = 1.0 / manifest.frame_rate_hz
    hits = {"raw": 0, "clock corrected": 0}
    total = 0
    for t in range(len(scene.frame_stamps)):
        windows.update(
            t,
            {
                p.person_id: p.points[t] if p.present[t] and len(p.points[t]) else None
                for p in scene.people
            },
        )
        end_ok = t >= manifest.window_frames - 1 and t % stride == 0
        if not end_ok:
            continue
        stamps = scene.frame_stamps[t - manifest.window_frames + 1 : t + 1]
        ready = [p for p in wearers if windows.ready(p.person_id, t)]
        if not ready:
            continue
        points = encoders.encode("pointcloud", windows.windows([p.person_id for p in ready], t))
        for mode in hits:
            feats, columns = [], []
            for column, person in enumerate(wearers):
                orient, acc = [], []
                for site in sites:
                    stream = person.imu[site]
                    shift = stream.true_offset_s if mode == "clock corrected" else 0.0
                    device_stamps = stream.stamps - shift
                    if device_stamps[0] > stamps[0] or device_stamps[-1] < stamps[-1]:
                        break
                    resampled = resample_imu(
                        device_stamps,
                        stream.orientation_xyzw,
                        stream.specific_force,
                        stamps,
                        frame_period=period,
                    )
                    orient.append(resampled.orientation_xyzw)
                    acc.append(resampled.world_acceleration)
                else:
                    feats.append(
                        imu_features(
                            np.stack(orient, 1), np.stack(acc, 1), acc_unit=manifest.acc_unit
                        )
                    )
                    columns.append(column)
            imu = encoders.encode("imu", np.stack(feats))
            best = np.asarray(columns)[np.argmax(points @ imu.T, axis=1)]
            hits[mode] += sum(int(wearers[b] is p) for b, p in zip(best, ready, strict=True))
        total += len(ready)
    return {"windows": total, **{f"accuracy {m}": h / max(total, 1) for m, h in hits.items()}}


def merge(parts: list[IdentityMetrics]) -> dict[str, float]:
    """Pool counts over scenes (accuracy over all person-frames, not a mean of means)."""
    return pool_identity(parts).summary()


def reliability(records: list[tuple[float, bool]], calibration: Calibration) -> dict[str, Any]:
    """ECE and reliability table of `calibration` applied to (margin, correct) records."""
    confidence = [calibration.confidence(m) for m, _ in records]
    ece, table = expected_calibration_error(confidence, [c for _, c in records])
    return {"ece": ece, "records": len(records), "bins": table}


def main() -> int:
    args = parse_args()
    model = args.model or shipped_model()
    started = time.perf_counter()
    report: dict[str, Any] = {"command": shlex.join(["python", *sys.argv]), "model": str(model)}
    with tempfile.TemporaryDirectory(prefix="bench_identity_") as tmp_name:
        tmp = Path(tmp_name)
        calibration_data: list[tuple[float, bool]] = []
        for i, people in enumerate(args.calibration_people):
            scene = SceneConfig(
                people=people,
                duration_s=args.duration,
                lidar=args.lidar,
                columns=args.columns,
                seed=CALIBRATION_SEED + i,
            )
            result = replay(scene, tmp, model, f"calib{i}")
            calibration_data += calibration_records(result.truth, result.candidates)
            print(
                f"calibration scene seed {scene.seed}: {people} people, "
                f"{len(calibration_data)} records so far",
                file=sys.stderr,
                flush=True,
            )
        fitted = fit_calibration(calibration_data)
        default = load_config(find_data("config/reid.yaml")).identity.calibration
        report["calibration"] = {
            "fitted": dataclasses.asdict(fitted),
            "default": dataclasses.asdict(default),
            "fit_records": len(calibration_data),
        }
        eval_records: list[tuple[float, bool]] = []
        rows = []
        for people in args.people:
            parts, ideal, trackers, oracle = [], [], [], []
            for k in range(args.scenes):
                scene = SceneConfig(
                    people=people,
                    duration_s=args.duration,
                    lidar=args.lidar,
                    columns=args.columns,
                    seed=EVAL_SEED + 10 * people + k,
                )
                result = replay(scene, tmp, model, f"eval{people}_{k}")
                assert result.identity is not None
                assert result.tracker is not None
                parts.append(result.identity)
                trackers.append(result.tracker)
                eval_records += calibration_records(result.truth, result.candidates)
                if args.ablate_clock:
                    clean = dataclasses.replace(scene, clock_offset_max_s=0.0, clock_jitter_s=0.0)
                    ideal_result = replay(clean, tmp, model, f"ideal{people}_{k}")
                    ideal.append(identity_metrics(ideal_result.truth, ideal_result.outputs))
                if args.oracle_stride:
                    oracle.append(oracle_windows(scene, model, stride=args.oracle_stride))
                print(
                    f"{people} people seed {scene.seed}: accuracy "
                    f"{result.identity.identity_accuracy:.4f}, tracked "
                    f"{result.identity.tracked_accuracy:.4f}, missed "
                    f"{result.identity.missed_rate:.4f}, IDF1 {result.tracker['idf1']:.3f} "
                    f"({time.perf_counter() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            row: dict[str, Any] = {
                "people": people,
                "seeds": [EVAL_SEED + 10 * people + k for k in range(args.scenes)],
                "identity": merge(parts),
                "mota": sum(t["mota"] for t in trackers) / len(trackers),
                "idf1": sum(t["idf1"] for t in trackers) / len(trackers),
            }
            if ideal:
                row["ideal_clock_identity"] = merge(ideal)
            if oracle:
                count = sum(o["windows"] for o in oracle)
                row["oracle"] = {
                    "windows": count,
                    **{
                        key: sum(o[key] * o["windows"] for o in oracle) / max(count, 1)
                        for key in oracle[0]
                        if key != "windows"
                    },
                }
            rows.append(row)
        report["evaluation"] = rows
        report["reliability"] = {
            "fitted": reliability(eval_records, fitted),
            "default": reliability(eval_records, default),
        }
    report["wall_s"] = time.perf_counter() - started
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_markdown(report, args)
    return 0


def print_markdown(report: dict[str, Any], args: argparse.Namespace) -> None:
    """Tables for bench/RESULTS.md."""
    print("\n## Identity accuracy on held-out scenes (after 3 s warm-up)\n")
    print(f"`{report['command']}`  ")
    print(
        f"Model `{report['model']}`; {args.scenes} scene(s) x {args.duration:g} s per crowd "
        "size, "
        f"{args.lidar} x {args.columns}; evaluation seeds {EVAL_SEED}+10n+k, calibration "
        f"seeds {CALIBRATION_SEED}+ (training used seeds 1000-1011).\n"
    )
    ablate = any("ideal_clock_identity" in r for r in report["evaluation"])
    oracle = any("oracle" in r for r in report["evaluation"])
    print(
        "| people | accuracy | tracked acc. | missed | unknown | wrong | bystander frames "
        "labelled | switches | wrong claims/frame | median t-to-ID [s] | MOTA | IDF1 |"
        + (" acc. ideal clocks |" if ablate else "")
        + (" window argmax, GT points: raw / clock-corrected IMU |" if oracle else "")
    )
    print("|---" * (12 + ablate + oracle) + "|")
    for row in report["evaluation"]:
        s = row["identity"]
        scored = max(s["scored_person_frames"], 1)
        cells = [
            f"{s['identity_accuracy']:.4f}",
            f"{s['tracked_accuracy']:.4f}",
            f"{s['missed_rate']:.4f}",
            f"{s['unknown_person_frames'] / scored:.4f}",
            f"{s['wrong_person_frames'] / scored:.4f}",
            f"{s['bystander_labelled_frames']} ({s['bystander_labelled_rate']:.4f})",
            str(s["id_switches"]),
            f"{s['wrong_claims_per_frame']:.3f}",
            f"{s['time_to_identity_median_s']:.1f}",
            f"{row['mota']:.3f}",
            f"{row['idf1']:.3f}",
        ]
        if ablate:
            cells.append(f"{row['ideal_clock_identity']['identity_accuracy']:.4f}")
        if oracle:
            o = row["oracle"]
            cells.append(
                f"{o['accuracy raw']:.4f} / {o['accuracy clock corrected']:.4f} "
                f"({o['windows']} windows)"
            )
        print(f"| {row['people']} | " + " | ".join(cells) + " |")
    cal = report["calibration"]
    rel = report["reliability"]
    print(
        f"\nCalibration fitted on {cal['fit_records']} held-out person-frames: slope "
        f"{cal['fitted']['slope']:.3f}, intercept {cal['fitted']['intercept']:.3f} (default "
        f"{cal['default']['slope']:g}, {cal['default']['intercept']:g}). Expected calibration "
        f"error on {rel['fitted']['records']} evaluation person-frames: fitted "
        f"{rel['fitted']['ece']:.4f}, default {rel['default']['ece']:.4f}.\n"
    )
    print("| confidence bin mean | accuracy | count |\n|---|---|---|")
    for mean, accuracy, count in rel["fitted"]["bins"]:
        print(f"| {mean:.3f} | {accuracy:.3f} | {count} |")
    print(f"\n(total wall time {report['wall_s']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
