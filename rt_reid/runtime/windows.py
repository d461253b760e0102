"""Per-track point-cloud windows: the last T frames of every live track, ready for the encoder.

Each frame a track's cluster points are kept (a bounded ring per track); a frame is sampled to the
manifest's points per frame (`rt_reid.runtime.features.sample_frame`, farthest point sampling) only
when a window that contains it is first encoded, and the result is cached, so each frame is sampled
at most once and never for tracks that are never encoded. Frames where the track was not observed
are filled with `fill_missing_frames` and the window is centred with `assemble_window`, exactly as
in training.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from rt_reid.arrays import F64Array, FloatArray
from rt_reid.errors import ReidError
from rt_reid.runtime.features import Centring, assemble_window, fill_missing_frames, sample_frame


class WindowError(ReidError):
    """A window was requested for a track that has none ready."""


@dataclass
class _Frame:
    """One frame of one track: raw points (None = not observed) and, once needed, the sample."""

    index: int
    points: FloatArray | None
    sample: F64Array | None = None  # (n + 1, 3): sampled points, then the raw centroid (exact)


class TrackWindows:
    """Ring buffer of the last `window_frames + lag_frames` frames of every live track.

    Input per LiDAR frame: `update(frame_index, {track_id: points (N, 3) or None})` with every
    live track (tracks missing from the mapping are evicted). Output: `windows(ids, end)` ->
    (B, T, n, 3) float32 windows ending at frame `end`, centred as the manifest declares.
    A window is ready when the track existed at its first frame and was observed (at least
    `min_points` points) in at least `min_observed_fraction` of its frames.
    """

    def __init__(
        self,
        *,
        window_frames: int,
        points_per_frame: int,
        centring: Centring,
        lag_frames: int,
        min_observed_fraction: float,
        min_points: int,
    ) -> None:
        self.window_frames = window_frames
        self.points_per_frame = points_per_frame
        self.centring: Centring = centring
        self.lag_frames = lag_frames
        self._min_observed = max(1, math.ceil(min_observed_fraction * window_frames))
        self._min_points = min_points
        self._tracks: dict[int, deque[_Frame]] = {}

    def update(self, frame_index: int, observations: Mapping[int, FloatArray | None]) -> None:
        """Append this frame for every live track and evict tracks that are gone."""
        for track_id in [t for t in self._tracks if t not in observations]:
            del self._tracks[track_id]
        for track_id, points in observations.items():
            ring = self._tracks.get(track_id)
            if ring is None:
                ring = deque(maxlen=self.window_frames + self.lag_frames)
                self._tracks[track_id] = ring
            observed = points is not None and len(points) >= self._min_points
            ring.append(_Frame(frame_index, np.array(points, np.float32) if observed else None))

    def clear(self) -> None:
        """Forget every track (pipeline reset)."""
        self._tracks.clear()

    @property
    def track_ids(self) -> list[int]:
        """Ids of the tracks currently buffered."""
        return list(self._tracks)

    def _frames(self, track_id: int, end: int) -> list[_Frame] | None:
        """The track's frames end-T+1..end, or None if the track did not exist at end-T+1."""
        ring = self._tracks.get(track_id)
        if ring is None:
            return None
        start = end - self.window_frames + 1
        frames = [frame for frame in ring if start <= frame.index <= end]
        if len(frames) != self.window_frames or frames[0].index != start:
            return None
        return frames

    def observed_fraction(self, track_id: int, end: int) -> float:
        """Share of the window's frames in which the track was observed (0 if no full window)."""
        frames = self._frames(track_id, end)
        if frames is None:
            return 0.0
        return sum(frame.points is not None for frame in frames) / self.window_frames

    def ready(self, track_id: int, end: int) -> bool:
        """Whether the track has a complete, sufficiently observed window ending at frame `end`."""
        observed = round(self.observed_fraction(track_id, end) * self.window_frames)
        return observed >= self._min_observed

    def windows(self, track_ids: Sequence[int], end: int) -> FloatArray:
        """Stack of centred windows (B, T, n, 3) ending at frame `end`; WindowError if not ready."""
        batch = np.empty(
            (len(track_ids), self.window_frames, self.points_per_frame, 3), dtype=np.float32
        )
        for row, track_id in enumerate(track_ids):
            frames = self._frames(track_id, end)
            if frames is None or not self.ready(track_id, end):
                raise WindowError(f"track {track_id} has no ready window ending at frame {end}")
            samples = cast(list[FloatArray | None], [self._sample(frame) for frame in frames])
            filled = np.stack(fill_missing_frames(samples)).astype(np.float64)
            batch[row] = assemble_window(
                filled[:, :-1].astype(np.float32), filled[:, -1], self.centring
            )
        return batch

    def _sample(self, frame: _Frame) -> F64Array | None:
        """Sampled points with the raw centroid appended as a last row (cached per frame)."""
        if frame.points is None:
            return None
        if frame.sample is None:
            sampled, centroid = sample_frame(frame.points, self.points_per_frame)
            frame.sample = np.concatenate([sampled.astype(np.float64), centroid[None]])
        return frame.sample
