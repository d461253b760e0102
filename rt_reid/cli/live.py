"""`rt-reid run`: live pipeline on a LiDAR bag played at its own rate plus ZeroMQ wearables."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from rt_reid.wearables.ingest import DOC, IngestTiming

LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Bag, parameters, keys and the two ZeroMQ endpoints."""
    parser.add_argument("--bag", type=Path, required=True, help="bag with the LiDAR topic")
    parser.add_argument(
        "--params", type=Path, required=True, help="parameter file (e.g. config/reid.yaml)"
    )
    parser.add_argument("--node-name", help="node section of the parameter file, if several")
    parser.add_argument("--model", type=Path, help="model directory (overrides model_dir)")
    parser.add_argument(
        "--keys", type=Path, required=True, help="wearable key directory (rt-reid keys create)"
    )
    parser.add_argument(
        "--wearables",
        default="tcp://127.0.0.1:5555",
        help="endpoint the wearable ingest binds (default: tcp://127.0.0.1:5555)",
    )
    parser.add_argument(
        "--publish",
        default="tcp://127.0.0.1:5556",
        help="ZeroMQ PUB endpoint for identity tracks (default: tcp://127.0.0.1:5556)",
    )
    parser.add_argument("--lidar-topic", default="/lidar/points", help="PointCloud2 topic")
    parser.add_argument("--rate", type=float, default=1.0, help="LiDAR playback speed")
    parser.add_argument(
        "--start-at",
        type=float,
        help="Unix time at which the bag's start plays (default: now); give `rt-reid wearables "
        "--start-at` the same value when it replays the same bag",
    )
    for item in dataclasses.fields(IngestTiming):
        parser.add_argument(
            f"--{item.name.replace('_', '-')}",
            type=float,
            default=item.default,
            help=f"{item.metadata[DOC]}; default {item.default}",
        )


def run(args: argparse.Namespace) -> int:
    """Run until the bag ends; print frames, drops, latency and wearable counters."""
    import numpy as np

    from rt_reid.config import load_config
    from rt_reid.runtime.live import check_lidar_topic, run_live
    from rt_reid.runtime.pipeline import ReidPipeline

    config = load_config(args.params, node_name=args.node_name)
    check_lidar_topic(args.bag, args.lidar_topic)
    pipeline = ReidPipeline(config=config, model_dir=args.model)
    LOG.info("inference backend: %s", pipeline.backend_name)
    summary = run_live(
        pipeline=pipeline,
        frame_id=config.frame_id,
        bag=args.bag,
        lidar_topic=args.lidar_topic,
        rate=args.rate,
        wearable_endpoint=args.wearables,
        keys_dir=args.keys,
        publish_endpoint=args.publish,
        max_delay_s=args.max_delay_s,
        stream_timeout_s=args.stream_timeout_s,
        start_at=args.start_at,
    )
    worker = summary.engine.worker
    latency = np.asarray(summary.latency_s) * 1e3
    p50, p99 = np.percentile(latency, [50, 99]) if latency.size else (float("nan"),) * 2
    print(
        f"{summary.clouds} LiDAR frames: {worker.processed} processed, {worker.dropped} "
        f"dropped (late), {worker.errors} failed, {summary.engine.duplicates} repeated stamps; "
        f"receipt->publish p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms; backend {summary.backend}"
    )
    wearables = summary.wearables
    print(
        f"wearables: {wearables.accepted_packets} packets ({wearables.accepted_samples} samples) "
        f"accepted, rejected {wearables.rejected or 'none'}"
    )
    for warning in pipeline.diagnostics().warnings:
        print(f"warning: {warning}")
    return 0
