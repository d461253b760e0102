"""Multi-person tracker: constant-velocity Kalman filter in the ground plane, gated Hungarian.

Lifecycle: a detection nobody claims starts a tentative track; `confirm_hits` hits confirm it; a
tentative track that misses `tentative_max_missed` frames in a row is dropped; a confirmed track
that misses coasts on its prediction, its velocity decaying with `coast_damping_s` (re-acquired
if a detection falls in its gate, which widens while it coasts), for up to `max_coast_s`, or up
to `max_hidden_s` while its place is hidden behind something nearer to the sensor. Ids
come from a counter and are never reused. Confirmed tracks are associated first, then tentative
ones with the remaining detections.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from rt_reid.runtime.perception.cluster import Detection
from rt_reid.runtime.perception.params import TrackerParams

Vector = npt.NDArray[np.float64]
H = np.eye(2, 4)
UNASSIGNED = 1e9
GATE_GROWTH_S = 0.5  # seconds unseen over which the Euclidean gate grows
TOP_SMOOTHING = 0.2  # weight of a new cluster top in the track's smoothed top


@dataclass
class Track:
    """Filter state and lifecycle counters of one track."""

    track_id: int
    state: Vector  # x, y, vx, vy
    cov: npt.NDArray[np.float64]  # 4 x 4
    z: float  # last observed centroid height
    extent: Vector
    birth: Vector  # (2,) first position
    travel: float  # farthest distance from `birth` so far
    top: float  # smoothed top height above ground of its clusters
    last_seen: float  # stamp of the last detection
    hits: int = 1
    age_frames: int = 1
    missed_frames: int = 0
    missed_s: float = 0.0
    confirmed: bool = False
    detection: Detection | None = None  # this frame's detection, None when not observed

    @property
    def position(self) -> Vector:
        """Filtered centroid (x, y from the filter, z from the last cluster)."""
        return np.array([self.state[0], self.state[1], self.z])

    @property
    def velocity(self) -> Vector:
        """Filtered ground-plane velocity (vz = 0)."""
        return np.array([self.state[2], self.state[3], 0.0])


class Tracker:
    """Track people across frames from per-frame detections."""

    def __init__(self, *, params: TrackerParams) -> None:
        self.params = params
        self.tracks: list[Track] = []
        self._next_id = 1
        self._stamp: float | None = None

    def reset(self) -> None:
        """Drop every track (ids keep counting up so they are never reused)."""
        self.tracks = []
        self._stamp = None

    def predict(self, stamp: float) -> None:
        """Advance every track to `stamp` (constant velocity, speed clamped while coasting)."""
        dt = 0.0 if self._stamp is None else max(stamp - self._stamp, 0.0)
        self._stamp = stamp
        p = self.params
        F = np.eye(4)
        F[0, 2] = F[1, 3] = dt
        q = p.process_accel**2
        block = np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]) * q
        Q = np.zeros((4, 4))
        Q[np.ix_([0, 2], [0, 2])] = block
        Q[np.ix_([1, 3], [1, 3])] = block
        damping = math.exp(-dt / p.coast_damping_s)
        for track in self.tracks:
            speed = float(np.hypot(track.state[2], track.state[3]))
            if speed > p.max_speed:
                track.state[2:] *= p.max_speed / speed
            if track.missed_frames:  # unseen people mostly stop (sit down, wait behind others)
                track.state[2:] *= damping
            track.state = F @ track.state
            track.cov = F @ track.cov @ F.T + Q
            track.detection = None
            track.missed_s = max(stamp - track.last_seen - dt, 0.0)

    def drop_outside(self, low: Vector, high: Vector) -> None:
        """Drop tracks predicted outside the ground-plane box [low, high] (they left the area)."""
        self.tracks = [
            t for t in self.tracks if bool(np.all((t.state[:2] >= low) & (t.state[:2] <= high)))
        ]

    def predicted_xy(self, *, confirmed_only: bool = True) -> Vector:
        """(K, 2) predicted positions, confirmed tracks first, most-observed first."""
        tracks = sorted(
            (t for t in self.tracks if t.confirmed or not confirmed_only),
            key=lambda t: (not t.confirmed, t.missed_frames, -t.hits),
        )
        return np.array([t.state[:2] for t in tracks]).reshape(-1, 2)

    def update(
        self, detections: list[Detection], hidden: Callable[[Track], bool] | None = None
    ) -> None:
        """Associate detections with predicted tracks, update filters and the lifecycle.

        `hidden(track)` says whether an unobserved track's place is hidden behind something
        nearer to the sensor; such a track coasts for up to `max_hidden_s` instead of
        `max_coast_s` (nobody can see whether the person is still there).
        """
        remaining = list(range(len(detections)))
        for group in (
            [t for t in self.tracks if t.confirmed],
            [t for t in self.tracks if not t.confirmed],
        ):
            matches = self._associate(group, [detections[i] for i in remaining])
            for track_index, det_index in matches:
                self._correct(group[track_index], detections[remaining[det_index]])
            claimed = {remaining[d] for _, d in matches}
            remaining = [i for i in remaining if i not in claimed]
        p = self.params
        survivors: list[Track] = []
        for track in self.tracks:
            if track.detection is None:
                track.missed_frames += 1
                track.age_frames += 1
                coasting = track.missed_s <= p.max_coast_s or (
                    track.missed_s <= p.max_hidden_s and hidden is not None and hidden(track)
                )
                if track.confirmed and not coasting:
                    continue
                if not track.confirmed and track.missed_frames >= p.tentative_max_missed:
                    continue
            survivors.append(track)
        self.tracks = self._merge_duplicates(survivors)
        for index in remaining:
            self.tracks.append(self._new_track(detections[index]))

    def _merge_duplicates(self, tracks: list[Track]) -> list[Track]:
        """Merge confirmed tracks closer than `merge_distance` into the one with more hits.

        The survivor takes the other's filter state and detection when only the other was
        observed this frame, so the older id continues on the person.
        """
        confirmed = [t for t in tracks if t.confirmed]
        if len(confirmed) < 2:
            return tracks
        xy = np.array([t.state[:2] for t in confirmed])
        distance = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        dropped: set[int] = set()
        for i, j in np.argwhere(np.triu(distance < self.params.merge_distance, k=1)):
            a, b = confirmed[i], confirmed[j]
            if a.track_id in dropped or b.track_id in dropped:
                continue
            keep, drop = (a, b) if a.hits >= b.hits else (b, a)
            if keep.detection is None and drop.detection is not None:
                keep.state, keep.cov = drop.state.copy(), drop.cov.copy()
                keep.z, keep.extent, keep.detection = drop.z, drop.extent, drop.detection
                keep.missed_frames, keep.missed_s, keep.last_seen = 0, 0.0, drop.last_seen
            dropped.add(drop.track_id)
        return [t for t in tracks if t.track_id not in dropped]

    def _associate(self, tracks: list[Track], detections: list[Detection]) -> list[tuple[int, int]]:
        """Gated one-to-one assignment (Euclidean and Mahalanobis gates) minimising distance plus
        `top_weight` times the difference between cluster top and the track's smoothed top."""
        if not tracks or not detections:
            return []
        p = self.params
        det_xy = np.array([d.position[:2] for d in detections])
        det_top = np.array([d.top for d in detections])
        cost = np.full((len(tracks), len(detections)), UNASSIGNED)
        r = p.measurement_std**2
        for i, track in enumerate(tracks):
            innovation = det_xy - track.state[:2]
            distance = np.hypot(innovation[:, 0], innovation[:, 1])
            S = track.cov[:2, :2] + np.eye(2) * r
            mahalanobis = np.einsum("ij,jk,ik->i", innovation, np.linalg.inv(S), innovation)
            # grows for the first half second unseen only: a track hidden for long must not take
            # the detection of someone else appearing metres away
            gate = p.gate_m + 0.5 * p.max_speed * min(track.missed_s, GATE_GROWTH_S)
            ok = (distance <= gate) & (mahalanobis <= p.gate_sigma**2)
            # Shape: people differ in height; a close pass keeps each track on its own head.
            cost[i, ok] = distance[ok] + p.top_weight * np.abs(det_top[ok] - track.top)
        rows, cols = linear_sum_assignment(cost)
        return [
            (int(r_), int(c)) for r_, c in zip(rows, cols, strict=True) if cost[r_, c] < UNASSIGNED
        ]

    def _correct(self, track: Track, detection: Detection) -> None:
        """Kalman update with the detection centroid; lifecycle counters."""
        p = self.params
        innovation = detection.position[:2] - track.state[:2]
        S = track.cov[:2, :2] + np.eye(2) * p.measurement_std**2
        gain = track.cov[:, :2] @ np.linalg.inv(S)
        track.state = track.state + gain @ innovation
        track.cov = (np.eye(4) - gain @ H) @ track.cov
        track.z = float(detection.position[2])
        track.extent = detection.extent
        track.detection = detection
        track.hits += 1
        track.age_frames += 1
        track.missed_frames = 0
        track.missed_s = 0.0
        track.last_seen = self._stamp if self._stamp is not None else 0.0
        track.travel = max(track.travel, float(np.hypot(*(track.state[:2] - track.birth))))
        track.top += TOP_SMOOTHING * (detection.top - track.top)
        if track.hits >= p.confirm_hits:
            track.confirmed = True

    def _new_track(self, detection: Detection) -> Track:
        """Tentative track at a detection, zero velocity with a speed-sized uncertainty."""
        p = self.params
        cov = np.diag([p.measurement_std**2] * 2 + [(p.max_speed / 2) ** 2] * 2)
        track = Track(
            track_id=self._next_id,
            state=np.array([*detection.position[:2], 0.0, 0.0]),
            cov=cov,
            z=float(detection.position[2]),
            extent=detection.extent,
            birth=detection.position[:2].copy(),
            travel=0.0,
            top=detection.top,
            last_seen=self._stamp if self._stamp is not None else 0.0,
            detection=detection,
            confirmed=self.params.confirm_hits <= 1,
        )
        self._next_id += 1
        return track
