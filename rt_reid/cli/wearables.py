"""`rt-reid wearables`: emulate a bag's wearables as CurveZMQ clients, in real time."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--bag, --endpoint, --keys, optional --rate, --batch, --identities."""
    parser.add_argument("--bag", type=Path, required=True, help="bag with /imu/<identity>/<site>")
    parser.add_argument(
        "--endpoint", required=True, help="receiver endpoint, e.g. tcp://127.0.0.1:5555"
    )
    parser.add_argument(
        "--keys", type=Path, required=True, help="key directory (server.key + private/)"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed (1 = real time)")
    parser.add_argument("--batch", type=int, default=1, help="IMU samples per packet (1..256)")
    parser.add_argument(
        "--identities", help="comma-separated identities to emulate (default: all in the bag)"
    )
    parser.add_argument(
        "--connect-timeout-s",
        type=float,
        default=15.0,
        help="give up (exit 2) when no receiver completes the handshake within this time "
        "(default 15 s)",
    )
    parser.add_argument(
        "--start-at",
        type=float,
        help="Unix time at which the bag's start plays (default: now); pass the same value to "
        "`rt-reid run --start-at` so wearables and LiDAR replay in step",
    )


def run(args: argparse.Namespace) -> int:
    """Replay the bag's IMU topics to the endpoint and print what was sent."""
    from rt_reid.wearables.emulator import BagWearableEmulator
    from rt_reid.wearables.keys import KeyStore

    identities = None
    if args.identities:
        identities = tuple(i.strip() for i in args.identities.split(",") if i.strip())
    emulator = BagWearableEmulator(
        bag=args.bag,
        endpoint=args.endpoint,
        keys=KeyStore(args.keys),
        rate=args.rate,
        batch=args.batch,
        identities=identities,
        connect_timeout_s=args.connect_timeout_s,
    )
    stats = emulator.run(start_at=args.start_at)
    print(
        f"sent {stats.packets} packets, {stats.samples} samples from {len(stats.streams)} IMU "
        f"streams of {len(emulator.identities)} identities to {args.endpoint} "
        f"(skipped: {stats.skipped_out_of_order} out-of-order, {stats.skipped_invalid} invalid)"
    )
    return 0
