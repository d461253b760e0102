"""Latency of the exported encoders with ONNX Runtime CPU: percentiles per batch size and threads.

    python bench/bench_encoders.py [--model-dir models/lipd4] [--batches 1 8 32] [--threads 1 2]

Inputs are random windows of the manifest's shapes (point clouds within a person-sized box), so
the numbers include the FPS / ball-query work of the point-cloud encoder.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rt_reid.runtime.manifest import load_manifest


def percentiles(samples: list[float]) -> str:
    """p50 / p90 / p99 in milliseconds."""
    p50, p90, p99 = np.percentile(np.asarray(samples) * 1e3, [50, 90, 99])
    return f"p50 {p50:7.2f} ms  p90 {p90:7.2f} ms  p99 {p99:7.2f} ms"


def main() -> int:
    """Run every encoder of the model directory at every batch size and thread count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models/lipd4"))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    manifest = load_manifest(args.model_dir)
    rng = np.random.default_rng(0)
    print(f"command: python {shlex.join(sys.argv)}")
    print(
        f"model: {args.model_dir} ({manifest.training.get('preset', {}).get('name', '?')}), "
        f"onnxruntime {ort.__version__}"
    )
    for modality, spec in manifest.encoders.items():
        for threads in args.threads:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(
                str(args.model_dir / spec.file), options, providers=["CPUExecutionProvider"]
            )
            for batch in args.batches:
                shape = [batch, *(int(d) for d in spec.input.shape[1:])]
                scale = 1.0 if modality == "imu" else 0.5
                x = (rng.uniform(-1, 1, shape) * scale).astype(np.float32)
                feed = {spec.input.name: x}
                for _ in range(3):
                    session.run(None, feed)  # warm-up
                samples = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    session.run(None, feed)
                    samples.append(time.perf_counter() - start)
                print(
                    f"{modality:10s} threads {threads} batch {batch:3d}: {percentiles(samples)}"
                    f"  ({1e3 * np.median(samples) / batch:.2f} ms/window)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
