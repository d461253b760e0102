"""`LidarPerception`: one LiDAR frame in, live person tracks with their points out.

Per frame: region of interest -> ground removal -> background classification (only foreground
points go on) -> grid clustering with track-guided splitting and person gates -> Kalman/Hungarian
tracking -> background update with every non-ground point except those of tracks that have
walked (so people standing still are not absorbed). The floor is learned during the warm-up;
tracks predicted outside the region of interest are dropped (they left through a door).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rt_reid.arrays import FloatArray
from rt_reid.errors import MessageError
from rt_reid.perception.cluster import Clusterer
from rt_reid.perception.frontend import BackgroundModel, GroundModel, Rays, roi_mask
from rt_reid.perception.params import PerceptionParams
from rt_reid.perception.tracker import Track, Tracker


@dataclass(frozen=True)
class TrackObservation:
    """One live track in one frame (LiDAR frame, metres)."""

    track_id: int  # stable, never reused
    confirmed: bool  # False for tentative tracks
    position: npt.NDArray[np.float64]  # (3,) filtered centroid
    velocity: npt.NDArray[np.float64]  # (3,) ground-plane velocity, vz = 0
    extent: npt.NDArray[np.float64]  # (3,) last cluster's box size
    points: FloatArray | None  # (N, 3) this frame's cluster points; None = not observed
    age_frames: int
    missed_frames: int


@dataclass(frozen=True)
class PerceptionResult:
    """Output of one `LidarPerception.process` call."""

    tracks: list[TrackObservation]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    foreground_points: int = 0
    ready: bool = True  # False while the background model is still warming up


class LidarPerception:
    """Static-sensor LiDAR person detection and tracking (see the package README)."""

    def __init__(self, *, params: PerceptionParams) -> None:
        self.params = params
        self.ground = GroundModel(params=params.ground, roi=params.roi)
        self.background = BackgroundModel(params=params.background, roi=params.roi)
        self.clusterer = Clusterer(params=params.cluster, roi=params.roi)
        self.tracker = Tracker(params=params.tracker)
        roi = params.roi
        self._roi_low = np.array([roi.x_min, roi.y_min])
        self._roi_high = np.array([roi.x_max, roi.y_max])

    def reset(self) -> None:
        """Drop tracks, background and floor (clock jump, bag loop); ids keep counting up."""
        self.ground.reset()
        self.background.reset()
        self.tracker.reset()

    def process(self, xyz: FloatArray, stamp_s: float) -> PerceptionResult:
        """Run one frame of (N, 3) points stamped `stamp_s` seconds."""
        points = np.asarray(xyz)
        if points.ndim != 2 or points.shape[1] != 3:
            raise MessageError(f"perception expects (N, 3) points, got shape {points.shape}")
        points = points.astype(np.float32, copy=False)
        tic = time.perf_counter()
        finite = np.isfinite(points.sum(axis=1))  # NaN/inf anywhere in a row
        if not finite.all():
            points = points[finite]
        rays = Rays.of(points)
        self.background.observe_rays(rays, stamp_s)  # every return, also outside the ROI
        keep = np.flatnonzero(roi_mask(points, rays.range, self.params.roi))
        if not self.background.ready:
            self.ground.learn(points[keep])
        heights = self.ground.height(points[keep])
        if self.params.ground.mode != "none":
            above = heights >= self.params.ground.margin
            keep, heights = keep[above], heights[above]
        points, rays = points[keep], rays[keep]
        voxels = self.background.voxel_index(points)
        # Returns at the farthest range ever seen in their direction are walls or furniture that
        # were hidden behind someone, never a person (someone always has a wall behind them).
        revealed = self.background.revealed(rays)
        background = self.background.is_background(points, voxels, stamp_s) | revealed
        foreground = np.flatnonzero(~background)
        tac = time.perf_counter()
        self.tracker.predict(stamp_s)
        self.tracker.drop_outside(self._roi_low, self._roi_high)
        detections = []
        if self.background.ready:
            detections = self.clusterer.detect(
                points[foreground], heights[foreground], self.tracker.predicted_xy()
            )
        toc = time.perf_counter()
        self.tracker.update(detections)
        protected = self._protected_points(points, foreground)
        tuc = time.perf_counter()
        learn = ~protected | revealed  # revealed surfaces are learned even inside a track's box
        self.background.update(voxels[learn], revealed[learn], stamp_s)
        end = time.perf_counter()
        return PerceptionResult(
            tracks=[_observation(t) for t in self.tracker.tracks],
            timings={
                "background": (tac - tic) + (end - tuc),
                "cluster": toc - tac,
                "track": tuc - toc,
            },
            foreground_points=len(foreground),
            ready=self.background.ready,
        )

    def _protected_points(
        self, points: FloatArray, foreground: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """Mask of the points of this frame's confirmed tracks that have walked."""
        protected = np.zeros(len(points), dtype=bool)
        for track in self.tracker.tracks:
            if (
                track.confirmed
                and track.detection is not None
                and track.travel >= self.params.background.protect_min_travel
            ):
                protected[foreground[track.detection.index]] = True
        return protected


def _observation(track: Track) -> TrackObservation:
    """Public snapshot of a track."""
    return TrackObservation(
        track_id=track.track_id,
        confirmed=track.confirmed,
        position=track.position,
        velocity=track.velocity,
        extent=track.extent.copy(),
        points=None if track.detection is None else track.detection.points,
        age_frames=track.age_frames,
        missed_frames=track.missed_frames,
    )
