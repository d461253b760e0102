"""ONNX Runtime CPU latency of the encoders: p50/p99 per call for batches of 1..32 windows.

Usage (a shipped model, or a random-weight export for development):
    python -m rt_reid export --random --preset small --layout lipd4 /tmp/rand
    OMP_NUM_THREADS=1 python bench/bench_inference.py --model /tmp/rand --threads 1
Prints one row per (encoder, batch): p50/p99 ms per call and p50 ms per window; then the per-frame
cost of the IMU stage (ingesting 100 ms of 100 Hz samples of every device, then the sliding IMU
windows of all identities: `ImuStore.add_batch` + `ImuStore.features_many`) for 1..32 identities.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from rt_reid.layouts import get_layout
from rt_reid.names import RUNTIME_MODALITIES
from rt_reid.paths import shipped_model
from rt_reid.runtime.features import GRAVITY
from rt_reid.runtime.imu_buffer import ImuStore, ImuStoreParams
from rt_reid.runtime.imu_sample import ImuBatch
from rt_reid.runtime.inference import EncoderSet
from rt_reid.runtime.manifest import Manifest

IMU_RATE = 100.0


def bench_imu(manifest: Manifest, identities: int, frames: int) -> tuple[float, float, float]:
    """p50/p99 ms of ingest + window features per frame, and the ingest share of the p50."""
    sites = get_layout(manifest.layout).sites
    names = [f"id{k}" for k in range(identities)]
    params = ImuStoreParams(
        buffer_s=5.0, max_rate_hz=400.0, max_gap_s=0.15, clock_jump_s=1.0, silence_s=1.0
    )
    store = ImuStore(identities=dict.fromkeys(names, sites), params=params, clock_offsets_s={})
    rng = np.random.default_rng(1)
    period = 1.0 / manifest.frame_rate_hz
    window, per_frame = manifest.window_frames, round(IMU_RATE * period)
    total, ingest = [], []
    for frame in range(window + 2 + frames):
        tic = time.perf_counter()
        stamps = frame * period + np.arange(per_frame) / IMU_RATE
        for name in names:
            for site in sites:
                quats = Rotation.random(per_frame, random_state=rng).as_quat()
                force = rng.normal(0.0, 2.0, (per_frame, 3)) + np.array([0.0, 0.0, GRAVITY])
                store.add_batch(
                    ImuBatch(name, site, stamps, quats, force, np.zeros((per_frame, 3)))
                )
        toc = time.perf_counter()
        frame_stamps = np.arange(frame - window, frame, dtype=np.float64) * period
        if frame >= window + 2:
            out = store.features_many(
                names, frame_stamps, frame_period=period, acc_unit=manifest.acc_unit
            )
            assert all(not isinstance(v, str) for v in out.values()), out
            total.append(time.perf_counter() - tic)
            ingest.append(toc - tic)
    p50, p99 = np.percentile(np.array(total) * 1e3, [50, 99])
    return float(p50), float(p99), float(np.median(ingest) * 1e3)


def main() -> int:
    """Measure and print the latency table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: shipped)")
    parser.add_argument("--batches", default="1,2,4,8,16,32", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per batch size")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--backend", default="cpu", choices=["auto", "tensorrt", "cuda", "cpu"])
    args = parser.parse_args()
    model = args.model if args.model is not None else shipped_model()
    encoders = EncoderSet(model_dir=model, backend=args.backend, intra_op_threads=args.threads)
    manifest = encoders.manifest
    print(f"$ {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"model {manifest.name} ({model}), backend {encoders.backend_name}, "
        f"threads {args.threads}, repeats {args.repeats}"
    )
    print(f"{'encoder':<11} {'batch':>5} {'p50 ms':>8} {'p99 ms':>8} {'ms/window':>9}")
    rng = np.random.default_rng(0)
    for modality in RUNTIME_MODALITIES:
        shape = [int(d) for d in manifest.encoders[modality].input.shape[1:]]
        for batch in (int(b) for b in args.batches.split(",")):
            windows = rng.normal(0, 0.3, size=(batch, *shape)).astype(np.float32)
            encoders.encode(modality, windows)  # warm-up
            times = []
            for _ in range(args.repeats):
                tic = time.perf_counter()
                encoders.encode(modality, windows)
                times.append(time.perf_counter() - tic)
            p50, p99 = np.percentile(np.array(times) * 1e3, [50, 99])
            print(f"{modality:<11} {batch:>5} {p50:>8.2f} {p99:>8.2f} {p50 / batch:>9.3f}")
    print(f"\nIMU stage per frame ({IMU_RATE:.0f} Hz devices, layout {manifest.layout})")
    print(f"{'identities':>10} {'p50 ms':>8} {'p99 ms':>8} {'ingest ms':>9}")
    for identities in (int(b) for b in args.batches.split(",")):
        p50, p99, ingest = bench_imu(manifest, identities, args.repeats)
        print(f"{identities:>10} {p50:>8.2f} {p99:>8.2f} {ingest:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
