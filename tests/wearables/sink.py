"""Shared helpers for tests that run a real `WearableIngest` on loopback: a packet sink, polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from rt_reid.wearables import KeyStore, WearableIngest
from rt_reid.wearables.packet import ImuPacket

UNIT_Q = np.array([[0.0, 0.0, 0.0, 1.0]], dtype=np.float32)  # one reading's identity rotation
ZERO = np.zeros((1, 3), dtype=np.float32)


class Collector:
    """Thread-safe sink that records accepted packets."""

    def __init__(self) -> None:
        self.packets: list[ImuPacket] = []
        self._lock = threading.Lock()

    def __call__(self, packet: ImuPacket) -> None:
        with self._lock:
            self.packets.append(packet)


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll `condition` until true or `timeout_s` elapses (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@contextmanager
def collecting_ingest(
    keys: KeyStore, *, max_delay_s: float
) -> Iterator[tuple[WearableIngest, Collector]]:
    """A running `WearableIngest` on a free loopback port whose accepted packets are collected."""
    collector = Collector()
    with WearableIngest(
        endpoint="tcp://127.0.0.1:*",
        keys=keys,
        sink=collector,
        max_delay_s=max_delay_s,
        stream_timeout_s=5.0,
    ) as server:
        yield server, collector
