"""`LidarPerception`: one LiDAR frame in, live person tracks with their points out.

Per frame: region of interest -> ground removal -> background classification (only foreground
points go on) -> grid clustering with track-guided splitting and person gates -> Kalman/Hungarian
tracking -> background update with every non-ground point except those of tracks that have
walked (so people standing still are not absorbed). The floor is learned during the warm-up;
tracks predicted outside the region of interest are dropped (they left through a door).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from rt_reid.arrays import FloatArray
from rt_reid.errors import MessageError, ReidError
from rt_reid.runtime.perception.cluster import Clusterer
from rt_reid.runtime.perception.frontend import (
    BackgroundModel,
    GroundModel,
    Rays,
    check_voxel_grid,
    roi_mask,
    take_rows,
)
from rt_reid.runtime.perception.params import PerceptionParams
from rt_reid.runtime.perception.rangeimage import (
    MIN_GEOMETRY_POINTS,
    BeamGeometry,
    RangeImageBackground,
    hidden_share,
    silhouette_share,
)
from rt_reid.runtime.perception.tracker import Track, Tracker

LOG = logging.getLogger(__name__)
STRUCTURE_MARGIN = 0.2  # metres above `cluster.max_top`: a static object reaching it is structure
HIDDEN_HALF_WIDTH = 0.2  # metres: half a body's width, sampled to test whether it is hidden
HIDDEN_MARGIN = 0.3  # metres: returns this much nearer than the body hide it
HIDDEN_SHARE = 0.5  # share of the body's pixels that must be hidden
SILHOUETTE_MARGIN = 0.2  # metres: what is beside a free-standing person lies this much behind
SILHOUETTE_SHARE = 0.6  # share of its beam rows' ends that must occlude to take it as a person


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
        check_voxel_grid(params.background, params.roi)
        self.clusterer = Clusterer(params=params.cluster, roi=params.roi)
        self.tracker = Tracker(params=params.tracker)
        roi = params.roi
        self._roi_low = np.array([roi.x_min, roi.y_min])
        self._roi_high = np.array([roi.x_max, roi.y_max])
        self._model: BackgroundModel | RangeImageBackground | None = None

    @property
    def background(self) -> BackgroundModel | RangeImageBackground:
        """The background model in use (chosen on the first frame with enough points)."""
        if self._model is None:
            raise ReidError("no background model yet: process a frame first")
        return self._model

    @property
    def mode(self) -> str:
        """`range_image` or `voxel` once the first frame chose the background model, else ``""``."""
        if self._model is None:
            return ""
        return "range_image" if isinstance(self._model, RangeImageBackground) else "voxel"

    def reset(self) -> None:
        """Drop tracks, background and floor (clock jump, bag loop); ids keep counting up."""
        self.ground.reset()
        self._model = None
        self.tracker.reset()

    def process(self, xyz: FloatArray, stamp_s: float) -> PerceptionResult:
        """Run one frame of (N, 3) points stamped `stamp_s` seconds."""
        points = np.asarray(xyz)
        if points.ndim != 2 or points.shape[1] != 3:
            raise MessageError(f"perception expects (N, 3) points, got shape {points.shape}")
        points = points.astype(np.float32, copy=False)
        tic = time.perf_counter()
        ranges = np.sqrt(np.einsum("ij,ij->i", points, points))
        finite = np.isfinite(ranges)  # NaN/inf anywhere in a row
        if not finite.all():
            points, ranges = take_rows(points, finite), ranges[finite]
        if self._model is None:
            self._model = self._choose_model(Rays.of(points))
        model = self._model
        if isinstance(model, RangeImageBackground):
            return self._process_range_image(model, points, ranges, stamp_s, tic)
        if isinstance(model, BackgroundModel):
            return self._process_voxels(model, points, Rays.of(points), stamp_s, tic)
        return PerceptionResult(tracks=[], ready=False)  # too few points to choose a model yet

    def _choose_model(self, rays: Rays) -> BackgroundModel | RangeImageBackground | None:
        """Range image if the cloud shows beam structure (or it is forced), else voxels."""
        mode = self.params.background.mode
        if mode == "voxel":
            return BackgroundModel(params=self.params.background, roi=self.params.roi)
        geometry = BeamGeometry.learn(rays)
        if geometry is not None:
            LOG.info(
                "background: range image of %d beams x %d columns", geometry.beams, geometry.columns
            )
            self.clusterer.set_resolution(geometry.beam_spacing, geometry.column_spacing)
            return RangeImageBackground(params=self.params.background, geometry=geometry)
        if len(rays.range) < MIN_GEOMETRY_POINTS:
            return None  # decide on a fuller frame
        if mode == "range_image":
            raise MessageError(
                "perception.background.mode is range_image but the cloud shows no beam "
                "structure (elevations not on beams); use mode auto or voxel"
            )
        LOG.info("background: no beam structure in the cloud, using the voxel grid")
        return BackgroundModel(params=self.params.background, roi=self.params.roi)

    def _above_ground(
        self, points: FloatArray, rays: Rays, learn: bool
    ) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """Indices of the points inside the ROI and above the ground, and their heights."""
        keep = np.flatnonzero(roi_mask(points, rays.range, self.params.roi))
        if learn:
            self.ground.learn(points[keep])
        heights = self.ground.height(points[keep])
        if self.params.ground.mode != "none":
            above = heights >= self.params.ground.margin
            keep, heights = keep[above], heights[above]
        return keep, heights

    def _process_range_image(
        self,
        model: RangeImageBackground,
        points: FloatArray,
        ranges: FloatArray,
        stamp_s: float,
        tic: float,
    ) -> PerceptionResult:
        """One frame with the per-beam range-image background.

        Every return in the ROI is classified by its pixel (the floor too: it is background), so
        heights above the ground are computed for the few foreground returns only.
        """
        was_ready = model.ready
        frame_points, frame_ranges = points, ranges
        inside = roi_mask(points, ranges, self.params.roi)
        points, ranges = take_rows(points, inside), ranges[inside]
        pixels = model.geometry.pixel(points, ranges)
        if not was_ready:
            self.ground.learn(points)
        foreground = np.flatnonzero(model.is_foreground(pixels, ranges))
        heights = self.ground.height(points[foreground])
        if self.params.ground.mode != "none":
            above = heights >= self.params.ground.margin
            foreground, heights = foreground[above], heights[above]
        tac = time.perf_counter()
        self.tracker.predict(stamp_s)
        self.tracker.drop_outside(self._roi_low, self._roi_high)
        detections = []
        if was_ready:
            detections = self.clusterer.detect(
                points[foreground], heights, self.tracker.predicted_xy()
            )
        toc = time.perf_counter()
        image = np.full(model.geometry.pixels, np.inf, dtype=np.float32)
        image[pixels] = ranges

        def hidden(track: Track) -> bool:
            """The track's place is behind nearer returns (another person, a pillar)."""
            centre = np.array([track.state[0], track.state[1], track.z])
            share = hidden_share(
                model.geometry, image, centre, half_width=HIDDEN_HALF_WIDTH, margin=HIDDEN_MARGIN
            )
            return share >= HIDDEN_SHARE

        self.tracker.update(detections, hidden)
        protected = np.zeros(len(points), dtype=bool)
        protected[foreground[self._protected(points[foreground])]] = True
        tuc = time.perf_counter()
        model.update(pixels, ranges, protected, stamp_s)
        if model.ready and not was_ready and self.params.background.find_static_people:
            image = np.full(model.geometry.pixels, np.inf, dtype=np.float32)
            image[model.geometry.pixel(frame_points, frame_ranges)] = frame_ranges
            all_heights = self.ground.height(points)
            margin = self.params.ground.margin if self.params.ground.mode != "none" else -np.inf
            rows = np.flatnonzero(all_heights >= margin)
            self._unmask_static_people(
                model=model,
                image=image,
                points=points[rows],
                heights=all_heights[rows],
                pixels=pixels[rows],
                ranges=ranges[rows],
            )
        end = time.perf_counter()
        return self._result(len(foreground), (tic, tac, toc, tuc, end), ready=was_ready)

    def _unmask_static_people(
        self,
        *,
        model: RangeImageBackground,
        image: FloatArray,
        points: FloatArray,
        heights: FloatArray,
        pixels: npt.NDArray[np.int64],
        ranges: FloatArray,
    ) -> None:
        """Person-shaped (and tall) objects learned in the warm-up become foreground again.

        Someone standing still since before the start is background after the warm-up; the
        last warm-up frame is clustered whole and clusters that pass the person gates with a top
        of at least `protect_min_top` that stand free (their silhouette occludes what is
        behind in most beam rows: `image` is the whole frame's range image) are taken out of
        the background. Furniture is lower or fails the gates, walls are thin or too wide,
        corners and wall fragments do not occlude.
        """
        # Up to a little above the tallest person: a pillar or shelf keeps a top above
        # `max_top` and is rejected, a ceiling does not join the people under it.
        below = heights <= self.params.cluster.max_top + STRUCTURE_MARGIN
        index = np.flatnonzero(below)
        detections = self.clusterer.detect(points[index], heights[index], np.zeros((0, 2)))
        for detection in detections:
            rows = index[detection.index]
            # Cut by the top of the field of view: true height unknown (a pillar seen from a low
            # mount looks like a person), not taken.
            cut = int(pixels[rows].max()) // model.geometry.columns == model.geometry.beams - 1
            share = silhouette_share(model.geometry, image, pixels[rows], SILHOUETTE_MARGIN)
            tall = detection.top >= self.params.background.protect_min_top
            if tall and not cut and share >= SILHOUETTE_SHARE:
                model.unmask(pixels[rows], ranges[rows])
                LOG.info(
                    "background: person-shaped object at %s (m) taken as a person",
                    detection.position[:2].round(2),
                )

    def _process_voxels(
        self,
        model: BackgroundModel,
        points: FloatArray,
        rays: Rays,
        stamp_s: float,
        tic: float,
    ) -> PerceptionResult:
        """One frame with the voxel background (clouds without beam structure)."""
        model.observe_rays(rays, stamp_s)  # every return, also outside the ROI
        keep, heights = self._above_ground(points, rays, learn=not model.ready)
        points, rays = points[keep], rays[keep]
        voxels = model.voxel_index(points)
        # Returns at the farthest range ever seen in their direction are walls or furniture that
        # were hidden behind someone, never a person (someone always has a wall behind them).
        revealed = model.revealed(rays)
        background = model.is_background(points, voxels, stamp_s) | revealed
        foreground = np.flatnonzero(~background)
        tac = time.perf_counter()
        self.tracker.predict(stamp_s)
        self.tracker.drop_outside(self._roi_low, self._roi_high)
        detections = []
        if model.ready:
            detections = self.clusterer.detect(
                points[foreground], heights[foreground], self.tracker.predicted_xy()
            )
        toc = time.perf_counter()
        self.tracker.update(detections)
        protected = np.zeros(len(points), dtype=bool)
        protected[foreground[self._protected(points[foreground])]] = True
        tuc = time.perf_counter()
        learn = ~protected | revealed  # revealed surfaces are learned even inside a track's box
        model.update(voxels[learn], revealed[learn], stamp_s)
        end = time.perf_counter()
        return self._result(len(foreground), (tic, tac, toc, tuc, end), ready=model.ready)

    def _result(
        self, foreground: int, marks: tuple[float, float, float, float, float], *, ready: bool
    ) -> PerceptionResult:
        """The frame's tracks and stage timings from the stage marks (start, foreground done,
        clustering done, tracking done, end)."""
        tic, tac, toc, tuc, end = marks
        return PerceptionResult(
            tracks=[_observation(t) for t in self.tracker.tracks],
            timings={
                "background": (tac - tic) + (end - tuc),
                "cluster": toc - tac,
                "track": tuc - toc,
            },
            foreground_points=foreground,
            ready=ready,
        )

    def _protected(self, foreground: FloatArray) -> npt.NDArray[np.bool_]:
        """Mask of foreground points near a confirmed track that is a person.

        A track is a person once it has walked `protect_min_travel` or stands at least
        `protect_min_top` tall; its cluster's points and every other foreground point within
        `protect_radius` of it (fragments, and the track's place while it coasts behind an
        occluder) never teach the background, so a person standing still is never absorbed,
        while a moved chair (low, never walking) is.
        """
        p = self.params.background
        mask = np.zeros(len(foreground), dtype=bool)
        people = [
            t
            for t in self.tracker.tracks
            if t.confirmed and (t.travel >= p.protect_min_travel or t.top >= p.protect_min_top)
        ]
        for track in people:
            if track.detection is not None:
                mask[track.detection.index] = True
        rest = np.flatnonzero(~mask)
        if not people or not len(rest):
            return mask
        tree = cKDTree(np.array([t.state[:2] for t in people]))
        distance, _ = tree.query(foreground[rest, :2], distance_upper_bound=p.protect_radius)
        mask[rest[np.isfinite(distance)]] = True  # inf: no person within the radius
        return mask


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
