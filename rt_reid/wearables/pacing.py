"""Real-time pacing of a bag: one mapping from bag time to wall time, shared by several players.

The LiDAR player of ``rt-reid run`` and the wearable emulator replay different topics of the same
bag in different processes. They stay in step when both map the bag's start (its earliest
message on any topic) to the same wall-clock instant `start_at` (Unix time): then an IMU sample
and the LiDAR frame of the same instant leave together, as they would from live sensors.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rosbags.rosbag2 import Reader, ReaderError

from rt_reid.errors import BagError, ConfigError

LOG = logging.getLogger(__name__)


def bag_start_ns(path: Path) -> int:
    """Receive timestamp (ns) of the earliest message of any topic in the bag."""
    try:
        with Reader(path) as reader:
            return int(reader.start_time)
    except (ReaderError, OSError, ValueError, KeyError) as err:
        raise BagError(f"cannot read bag {path}: {err}") from err


class BagPacer:
    """Sleep until a bag timestamp is due: bag start plays at `start_at` (default: now)."""

    def __init__(self, bag: Path, *, rate: float, start_at: float | None) -> None:
        if rate <= 0:
            raise ConfigError(f"playback rate must be positive, got {rate}")
        self.rate = rate
        self.bag_start_ns = bag_start_ns(bag)
        now = time.time()
        if start_at is not None and start_at < now:
            LOG.warning(
                "start time %.3f is %.2f s past: the first messages are sent at once to catch up",
                start_at,
                now - start_at,
            )
        # Pace on the monotonic clock; the wall clock only fixes the shared starting instant.
        self._anchor = time.monotonic() + ((start_at if start_at is not None else now) - now)

    def wait(self, timestamp_ns: int) -> None:
        """Return when the message with this bag timestamp is due."""
        delay = self._anchor + (timestamp_ns - self.bag_start_ns) * 1e-9 / self.rate
        remaining = delay - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
