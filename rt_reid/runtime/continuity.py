"""Track continuity: a track that starts where another one recently stopped being seen continues it.

Evidence belongs to the person, not to a track id. When the tracker loses a person (a long
occlusion, a merge, a sparse stretch) it often starts a new track when the person reappears,
while the old one is still coasting or after it has ended. Once the old track ends, its state
is handed to a young track that was born after the old one was last observed, close enough to
have walked there in time (0.5 m + speed x gap), but only when that pairing is unambiguous: no
other young track could continue the ended one and no other ended track could have become the
young one. In a crowd a wrong hand-over would carry a wrong identity; no hand-over costs only time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from rt_reid.arrays import F64Array

State = TypeVar("State")
BASE_DISTANCE_M = 0.5  # slack for centroid noise between the last and the first observation


@dataclass(frozen=True)
class _Sighting:
    """When and where a track was observed (ground plane)."""

    stamp_s: float
    position: F64Array  # (2,)


class TrackContinuity(Generic[State]):
    """Pairs tracks that ended with young tracks that continue them.

    Per frame `step(stamp_s, observed, snapshot)`: `observed` maps every live track id to its
    ground-plane position if observed this frame (None when coasting); `snapshot(track_id)` is
    called once for each track that just ended and returns the state it hands over (None =
    nothing). Returns young track id -> the state of the track it continues.
    """

    def __init__(self, *, max_gap_s: float, speed_mps: float) -> None:
        self.max_gap_s = max_gap_s
        self.speed_mps = speed_mps
        self._last_seen: dict[int, _Sighting | None] = {}  # live track -> last observation
        self._young: dict[int, _Sighting] = {}  # live track -> its first observation
        self._ended: dict[int, tuple[_Sighting, State]] = {}
        self.continued = 0  # number of track breaks bridged so far

    def reset(self) -> None:
        """Forget live, young and ended tracks."""
        self._last_seen.clear()
        self._young.clear()
        self._ended.clear()

    def step(
        self,
        stamp_s: float,
        observed: Mapping[int, F64Array | None],
        snapshot: Callable[[int], State | None],
    ) -> dict[int, State]:
        """Record this frame's endings and births; return what each young track now continues."""
        for track_id in [t for t in self._last_seen if t not in observed]:
            last = self._last_seen.pop(track_id)
            self._young.pop(track_id, None)
            state = snapshot(track_id)
            if last is not None and state is not None and self.max_gap_s > 0:
                self._ended[track_id] = (last, state)
        for track_id, position in observed.items():
            if position is None:
                self._last_seen.setdefault(track_id, None)
                continue
            sighting = _Sighting(stamp_s, np.asarray(position, np.float64)[:2])
            if track_id not in self._last_seen:
                self._young[track_id] = sighting
            self._last_seen[track_id] = sighting
        horizon = stamp_s - self.max_gap_s
        self._ended = {k: v for k, v in self._ended.items() if v[0].stamp_s >= horizon}
        self._young = {k: v for k, v in self._young.items() if v.stamp_s >= horizon}
        return self._pair()

    def _pair(self) -> dict[int, State]:
        """Pairs of (ended, young) that a walking person could connect, and nobody else could.

        A pair is ambiguous, and skipped, when the ended track could also have become another
        young track or the young track could also continue another ended one (a crowd).
        """
        reach: dict[int, set[int]] = {old_id: set() for old_id in self._ended}
        reached_by: dict[int, set[int]] = {new_id: set() for new_id in self._young}
        for old_id, (last, _) in self._ended.items():
            for new_id, first in self._young.items():
                gap = first.stamp_s - last.stamp_s
                distance = float(np.linalg.norm(first.position - last.position))
                if 0.0 < gap <= self.max_gap_s and distance <= (
                    BASE_DISTANCE_M + self.speed_mps * gap
                ):
                    reach[old_id].add(new_id)
                    reached_by[new_id].add(old_id)
        continued: dict[int, State] = {}
        for old_id, young in reach.items():
            if len(young) == 1:
                (new_id,) = young
                if reached_by[new_id] == {old_id}:
                    continued[new_id] = self._ended.pop(old_id)[1]
                    del self._young[new_id]
                    self.continued += 1
        return continued
