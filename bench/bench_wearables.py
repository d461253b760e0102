"""Wearable ingest benchmark: N CurveZMQ wearables at R Hz on loopback -> loss and latency.

    python bench/bench_wearables.py              # 64 wearables, 200 Hz, 10 s, 1 sample per packet
    python bench/bench_wearables.py --batch 4    # 4 samples per packet (50 packets/s each)

The wearables run in a separate process (they are separate devices), each with its own key,
sending on a fixed schedule; every sample carries its send time (time.time_ns) as its stamp, so
the receiver measures send -> accepted-by-ingest latency (encryption, TCP, decode,
authentication, replay checks). Loss = samples sent - samples accepted. The run is bounded:
`--duration` seconds of sending, then at most `--drain-s` seconds to receive the rest.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

import numpy as np
import zmq

from rt_reid.wearables import ImuPacket, KeyStore, WearableClient, WearableIngest

SITE = "left_wrist"
QUAT = np.array([[0.0, 0.0, 0.0, 1.0]], dtype=np.float32)


@dataclass(frozen=True)
class SendPlan:
    """What the sender process does (picklable for the spawned process)."""

    keys_dir: str
    endpoint: str
    wearables: int
    rate: float
    batch: int
    duration: float


def _send(plan: SendPlan, ready: MpEvent) -> None:
    """Sender process: all wearables on one schedule; a tick every batch/rate seconds."""
    keys_dir, endpoint, wearables = plan.keys_dir, plan.endpoint, plan.wearables
    rate, batch, duration = plan.rate, plan.batch, plan.duration
    store = KeyStore(keys_dir)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    clients = [
        WearableClient(
            endpoint=endpoint,
            server_public_key=store.server_public_key(),
            keys=store.wearable_keys(f"w{i:03d}"),
            identity=f"w{i:03d}",
            context=context,
        )
        for i in range(wearables)
    ]
    time.sleep(0.5)  # CurveZMQ handshakes
    ready.set()
    period = batch / rate
    sample_ns = int(1e9 / rate)
    force = np.tile(np.array([[0.0, 0.0, 9.81]], dtype=np.float32), (batch, 1))
    gyro = np.zeros((batch, 3), dtype=np.float32)
    quats = np.repeat(QUAT, batch, axis=0)
    start, start_ns = time.monotonic(), time.time_ns()
    for tick in range(int(duration / period)):
        delay = start + (tick + 1) * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        # Sample k is taken at start + k / rate; a packet leaves when its newest sample is due,
        # so a late sender shows up as latency.
        first = tick * batch + 1
        stamps = start_ns + np.arange(first, first + batch, dtype=np.int64) * sample_ns
        for client in clients:
            client.send(SITE, stamps, force, gyro, quats)
    for client in clients:
        client.close(linger_s=10.0)
    context.term()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wearables", type=int, default=64)
    parser.add_argument("--rate", type=float, default=200.0, help="samples per second each")
    parser.add_argument("--batch", type=int, default=1, help="samples per packet")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    parser.add_argument("--drain-s", type=float, default=10.0, help="max wait for stragglers")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = KeyStore(Path(tmp))
        for i in range(args.wearables):
            store.create(f"w{i:03d}", (SITE,))
        latencies: list[np.ndarray] = []
        lock = threading.Lock()

        def sink(packet: ImuPacket) -> None:
            now = time.time_ns()
            with lock:
                latencies.append((now - packet.stamps_ns[-1:]) * 1e-6)

        ingest = WearableIngest(
            endpoint="tcp://127.0.0.1:*",
            keys=store,
            sink=sink,
            max_delay_s=2.0,
            stream_timeout_s=10.0,
        )
        with ingest:
            ready = mp.get_context("spawn").Event()
            sender = mp.get_context("spawn").Process(
                target=_send,
                args=(
                    SendPlan(
                        tmp,
                        ingest.bound_endpoint,
                        args.wearables,
                        args.rate,
                        args.batch,
                        args.duration,
                    ),
                    ready,
                ),
            )
            sender.start()
            ready.wait(30.0)
            sender.join(args.duration + 60.0)
            ticks = int(args.duration / (args.batch / args.rate))
            expected = ticks * args.wearables * args.batch
            deadline = time.monotonic() + args.drain_s
            while ingest.stats().accepted_samples < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            stats = ingest.stats()
    lat = np.concatenate(latencies) if latencies else np.zeros(0)
    p50, p90, p99, p999 = np.percentile(lat, [50, 90, 99, 99.9]) if lat.size else [np.nan] * 4
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"{args.wearables} wearables x {args.rate:g} Hz, {args.batch} sample(s)/packet, "
        f"{args.duration:g} s: sent {expected} samples, accepted {stats.accepted_samples} "
        f"({stats.accepted_packets} packets), lost {expected - stats.accepted_samples}, "
        f"rejected {stats.rejected or 0}"
    )
    print(
        f"send -> ingest latency of the newest sample per packet (ms): p50 {p50:.2f}  "
        f"p90 {p90:.2f}  p99 {p99:.2f}  p99.9 {p999:.2f}  max {lat.max() if lat.size else 0:.2f}"
    )
    return 0 if stats.accepted_samples == expected and not stats.rejected else 1


if __name__ == "__main__":
    sys.exit(main())
