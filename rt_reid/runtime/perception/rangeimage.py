"""Background in the sensor's own geometry: one background range per beam and column.

A spinning LiDAR measures along a fixed set of beams (elevations) and columns (azimuth steps), so
a static scene is one range per pixel (beam, column). `BeamGeometry` learns the beams and columns
from the points themselves (elevations cluster around the beam angles, azimuths step by the
column spacing), so organized clouds (NaN rows dropped), unorganized clouds with or without a
`ring` field and any rotation phase work alike; a cloud that shows no such structure (a
solid-state sensor) makes `learn` return None and the caller falls back to the voxel model.
`RangeImageBackground` keeps per pixel the background range, and a candidate range with the time
it was first seen there, all as flat numpy arrays: classifying and updating a frame are a few
gathers and scatters over its points, with no per-pixel Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rt_reid.arrays import BoolArray, FloatArray
from rt_reid.runtime.perception.frontend import Rays
from rt_reid.runtime.perception.params import BackgroundParams

IndexArray = npt.NDArray[np.int64]

BEAM_GAP_RAD = math.radians(0.15)  # elevations further apart than this belong to different beams
MIN_BEAM_POINTS = 8  # a beam group with fewer points is noise, not a beam
MIN_GEOMETRY_POINTS = 500  # too few points to learn the sensor geometry from
MAX_BEAMS = 256
MIN_BEAMS = 4
MIN_BEAM_SHARE = 0.98  # share of points that must fall into beam groups (else: no beam structure)
CANDIDATE_GAP_S = 1.0  # a candidate surface unseen this long starts over when it reappears


@dataclass(frozen=True)
class BeamGeometry:
    """Beams (sorted elevations) and columns of a spinning LiDAR, learned from one frame."""

    elevations: FloatArray  # (B,) ascending beam elevations (radians)
    columns: int
    phase: FloatArray  # (B,) azimuth offset of column 0 per beam, in columns

    @property
    def beams(self) -> int:
        """Number of beams."""
        return len(self.elevations)

    @property
    def pixels(self) -> int:
        """Number of pixels (beams x columns)."""
        return self.beams * self.columns

    @property
    def beam_spacing(self) -> float:
        """Median vertical angle between neighbouring beams (radians)."""
        return float(np.median(np.diff(self.elevations))) if self.beams > 1 else math.pi

    @property
    def column_spacing(self) -> float:
        """Horizontal angle between columns (radians)."""
        return 2 * math.pi / self.columns

    @classmethod
    def learn(cls, rays: Rays) -> BeamGeometry | None:
        """Beam elevations and column layout of these returns, or None without beam structure."""
        if len(rays.range) < MIN_GEOMETRY_POINTS:
            return None
        order = np.argsort(rays.elevation, kind="stable")
        elevation = rays.elevation[order].astype(np.float64)
        starts = np.flatnonzero(np.r_[True, np.diff(elevation) > BEAM_GAP_RAD])
        counts = np.diff(np.r_[starts, len(elevation)])
        beams = counts >= MIN_BEAM_POINTS
        if not MIN_BEAMS <= beams.sum() <= MAX_BEAMS:
            return None
        if counts[beams].sum() < MIN_BEAM_SHARE * len(elevation):
            return None
        centres = np.add.reduceat(elevation, starts)[beams] / counts[beams]
        groups = np.split(order, starts[1:])
        azimuth = rays.azimuth.astype(np.float64)
        steps = []
        for group, ok in zip(groups, beams, strict=True):
            if ok:
                diffs = np.diff(np.sort(azimuth[group]))
                diffs = diffs[diffs > 1e-6]
                if len(diffs):
                    steps.append(np.median(diffs))
        if not steps:
            return None
        columns = round(2 * math.pi / float(np.median(steps)))
        if columns < 16:
            return None
        step = 2 * math.pi / columns
        phases = []
        for group, ok in zip(groups, beams, strict=True):
            if ok:  # circular mean of the sub-column offset: columns sit at phase + k
                angle = 2 * math.pi * np.mod(azimuth[group] / step, 1.0)
                mean = math.atan2(float(np.sin(angle).mean()), float(np.cos(angle).mean()))
                phases.append(mean / (2 * math.pi))
        return cls(
            elevations=centres.astype(np.float32),
            columns=columns,
            phase=np.asarray(phases, dtype=np.float32),
        )

    def pixel(self, points: FloatArray, ranges: FloatArray) -> IndexArray:
        """Pixel index (beam * columns + column) of every return (nearest beam and column).

        `ranges` are the points' distances from the sensor; beams are found by the sine of the
        elevation (z / range), which spares an arctangent per point.
        """
        bounds = np.sin((self.elevations[1:] + self.elevations[:-1]) / 2).astype(np.float32)
        sine = points[:, 2] / np.maximum(ranges, np.float32(1e-6))
        beam = np.searchsorted(bounds, sine).astype(np.int64)
        azimuth = np.arctan2(points[:, 1], points[:, 0])
        step = np.float32(self.columns / (2 * math.pi))
        column = np.rint(azimuth * step - self.phase[beam]).astype(np.int64) % self.columns
        index: IndexArray = beam * self.columns + column
        return index


def hidden_share(
    geometry: BeamGeometry,
    image: FloatArray,
    centre: npt.NDArray[np.float64],
    *,
    half_width: float,
    margin: float,
) -> float:
    """Share of the pixels covering a body at `centre` whose return lies `margin` in front of it.

    `image` is the frame's range per pixel (inf = no return). The body is sampled at its centre
    height and 0.4 m above and below, `half_width` to either side; a return beyond the body
    (the space is seen through) or none counts as not hidden.
    """
    offsets = np.array([-0.4, 0.0, 0.4])
    horizontal = float(np.hypot(centre[0], centre[1]))
    if horizontal < 1e-3:
        return 0.0
    heights = centre[2] + offsets
    samples = np.c_[np.full(3, centre[0]), np.full(3, centre[1]), heights].astype(np.float32)
    ranges = np.linalg.norm(samples, axis=1).astype(np.float32)
    pixels = geometry.pixel(samples, ranges)
    spread = math.ceil(half_width / horizontal / geometry.column_spacing)
    beams, columns = np.divmod(pixels, geometry.columns)
    shifts = np.arange(-spread, spread + 1)
    grid = (
        beams[:, None] * geometry.columns + (columns[:, None] + shifts[None, :]) % geometry.columns
    )
    seen = image[grid]
    return float(np.mean(seen < ranges[:, None] - margin))


def silhouette_share(
    geometry: BeamGeometry, image: FloatArray, pixels: IndexArray, margin: float
) -> float:
    """Share of an object's row ends (per beam, leftmost and rightmost column) that occlude.

    `image` is the frame's range per pixel (inf = no return). An end occludes when the pixel
    just beside it returns from more than `margin` farther away (or nothing): someone standing
    free in the room occludes on both sides in every row, a wall corner or a wall fragment cut
    by the region of interest continues at the same range.
    """
    columns = geometry.columns
    beam, column = np.divmod(pixels, columns)
    centre = int(column[0])
    rel = (column - centre + columns // 2) % columns - columns // 2
    low = np.full(geometry.beams, columns, dtype=np.int64)
    high = np.full(geometry.beams, -columns, dtype=np.int64)
    np.minimum.at(low, beam, rel)
    np.maximum.at(high, beam, rel)
    rows = np.flatnonzero(high >= low)
    if not len(rows):
        return 0.0
    ends = np.r_[low[rows], high[rows]] + centre
    beside = np.r_[low[rows] - 1, high[rows] + 1] + centre
    base = np.r_[rows, rows] * columns
    end_range = image[base + ends % columns]
    beside_range = image[base + beside % columns]
    return float(np.mean(beside_range > end_range + margin))


class RangeImageBackground:
    """Per-pixel background range with candidate surfaces that are absorbed or revealed in time.

    Warm-up: the background range of a pixel is the farthest return seen in at least
    `warmup_min_fraction` of the warm-up frames (people walking through are in front of it).
    Afterwards a return is foreground when it lies more than the range tolerance in front of the
    background of its pixel and of both azimuth neighbours (columns jitter at depth edges). A
    return that differs from the background starts a candidate; while later returns stay at the
    candidate's range it becomes the background after `reveal_s` if it lies behind (something
    that stood there has left: revealed, never foreground meanwhile) or after `absorb_s` if in
    front (a moved chair; `reveal_s` too in pixels taken out of the background by `unmask`).
    Pixels of tracked people are `protect`ed: their candidates restart
    every frame, so a person who stands still for minutes is never absorbed.
    """

    def __init__(self, *, params: BackgroundParams, geometry: BeamGeometry) -> None:
        self.params = params
        self.geometry = geometry
        size = geometry.pixels
        self._background = np.full(size, np.inf, dtype=np.float32)
        self._reveal_at = np.full(size, np.inf, dtype=np.float32)  # behind this: revealed
        self._nearest_bg = np.full(size, np.inf, dtype=np.float32)  # min over azimuth neighbours
        self._unmasked = np.zeros(size, dtype=bool)  # taken out of the background as a person
        self._candidate = np.full(size, np.nan, dtype=np.float32)
        self._since = np.zeros(size, dtype=np.float64)
        self._seen = np.full(size, -np.inf, dtype=np.float64)
        self._warm_far = np.zeros(size, dtype=np.float32)
        self._warm_hits = np.zeros(size, dtype=np.uint16)
        self._warm_frames = 0
        self._start: float | None = None
        self._ready = False

    @property
    def ready(self) -> bool:
        """True once the warm-up is over and points are classified."""
        return self._ready

    def tolerance(self, ranges: FloatArray) -> FloatArray:
        """Range difference (m) that still counts as the same surface (noise, mixed returns)."""
        tol: FloatArray = np.maximum(
            np.float32(self.params.range_tolerance), np.float32(0.01) * ranges
        )
        return tol

    def is_foreground(self, pixels: IndexArray, ranges: FloatArray) -> BoolArray:
        """Foreground flag per return (all False during the warm-up)."""
        if not self._ready:
            return np.zeros(len(ranges), dtype=bool)
        tol = self.tolerance(ranges)
        mask: BoolArray = (ranges < self._nearest_bg[pixels] - tol) & (
            ranges <= self._reveal_at[pixels] + tol
        )
        return mask

    def update(
        self, pixels: IndexArray, ranges: FloatArray, protected: BoolArray, stamp: float
    ) -> None:
        """Learn from one frame's returns; `protected` returns (tracked people) never teach."""
        if not self._ready:
            self._learn_warmup(pixels, ranges, stamp)
            return
        p = self.params
        tol = self.tolerance(ranges)
        background = self._background[pixels]
        on_background = np.abs(ranges - background) <= tol
        self._candidate[pixels[on_background]] = np.nan
        rest = ~on_background
        px, r, tl = pixels[rest], ranges[rest], tol[rest]
        candidate = self._candidate[px]
        same = (np.abs(r - candidate) <= 2 * tl) & (stamp - self._seen[px] <= CANDIDATE_GAP_S)
        restart = ~same | protected[rest]
        self._candidate[px[restart]] = r[restart]
        self._since[px[restart]] = stamp
        self._seen[px] = stamp
        held = stamp - self._since[px]
        fast = (r > self._reveal_at[px] + tl) | self._unmasked[px]
        due = np.where(fast, p.reveal_s, p.absorb_s)
        learn = ~restart & (held >= due)
        if learn.any():
            changed = px[learn]
            self._background[changed] = r[learn]
            self._reveal_at[changed] = r[learn]
            self._candidate[changed] = np.nan
            self._unmasked[changed] = False
            self._refresh_nearest()

    def unmask(self, pixels: IndexArray, ranges: FloatArray) -> None:
        """Make these returns foreground again (a person learned as background in the warm-up).

        Their pixels get no background; whatever later shows up there without a tracked person
        (what is behind, or the object itself if it never became a person's track) is learned
        within `reveal_s`.
        """
        if len(pixels) == 0:
            return
        tol = self.tolerance(ranges)
        self._background[pixels] = np.inf
        self._reveal_at[pixels] = ranges + 2 * tol
        self._unmasked[pixels] = True
        self._candidate[pixels] = np.nan
        self._refresh_nearest()

    def _learn_warmup(self, pixels: IndexArray, ranges: FloatArray, stamp: float) -> None:
        """Collect the farthest return per pixel; at the end of warm-up seed the background."""
        if self._start is None:
            self._start = stamp
        self._warm_frames += 1
        np.maximum.at(self._warm_far, pixels, ranges)
        self._warm_hits[pixels] += 1  # repeated indices count once
        if stamp - self._start >= self.params.warmup_s:
            seen = self._warm_hits >= self.params.warmup_min_fraction * self._warm_frames
            self._background[:] = np.where(seen, self._warm_far, np.inf)
            self._reveal_at[:] = self._background
            self._refresh_nearest()
            self._ready = True

    def _refresh_nearest(self) -> None:
        """Background range per pixel as the nearest of it and its two azimuth neighbours."""
        image = self._background.reshape(self.geometry.beams, self.geometry.columns)
        nearest = np.minimum(image, np.roll(image, 1, axis=1))
        np.minimum(nearest, np.roll(image, -1, axis=1), out=nearest)
        self._nearest_bg = nearest.reshape(-1)
