"""Shared helpers for tests that run a real `WearableIngest` on loopback: a packet sink, polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rt_reid.wearables.packet import ImuPacket


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
