"""Static-sensor LiDAR front end: region of interest, ground removal, voxel background model.

All three are vectorised numpy over the frame. The region of interest is a box, so voxels and
ground cells live in dense grids addressed by a linear index (a collision-free hash of the
integer voxel coordinates): a lookup is one gather, an update one scatter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from rt_reid.arrays import BoolArray, FloatArray
from rt_reid.errors import ConfigError
from rt_reid.runtime.perception.params import BackgroundParams, GroundParams, RoiParams

IndexArray = npt.NDArray[np.int64]

CANDIDATE_REFRESH_S = (
    1.0  # how often the list of background voxels to test for free space is rebuilt
)
FLOOR_WINDOW = 5  # ground cells: the floor of a cell is the lowest return in this window of cells
FLOOR_TOLERANCE = 0.6  # metres from the median learned floor that a cell's floor may lie
MAX_VOXELS = 50_000_000  # 50 M voxels = 600 MB of state: a region of interest this big is a typo


def take_rows(points: FloatArray, index: npt.NDArray[np.int64] | BoolArray) -> FloatArray:
    """`points[index]` for (N, 3) points, gathered as one record per row.

    The same values; numpy gathers rows of a 2-D array several times slower than the 1-D
    array of 12-byte records they form (65k returns: 1.4 -> 0.13 ms).
    """
    rows = np.ascontiguousarray(points)
    records = rows.view(f"V{rows.dtype.itemsize * rows.shape[1]}").reshape(-1)
    picked: FloatArray = records[index].view(rows.dtype).reshape(-1, rows.shape[1])
    return picked


def roi_mask(points: FloatArray, ranges: FloatArray, roi: RoiParams) -> BoolArray:
    """True for points inside the box and farther than `min_range` from the sensor."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    inside = (x >= roi.x_min) & (x < roi.x_max)
    inside &= (y >= roi.y_min) & (y < roi.y_max)
    inside &= (z >= roi.z_min) & (z < roi.z_max)
    inside &= ranges >= roi.min_range
    return inside


def check_voxel_grid(params: BackgroundParams, roi: RoiParams) -> None:
    """ConfigError when the voxel fallback would need an unreasonable grid for this ROI."""
    if params.mode == "range_image":
        return
    cells = Grid(roi=roi, size=params.voxel_size, dims=3).cells
    if cells > MAX_VOXELS:
        raise ConfigError(
            f"region of interest needs {cells} voxels of {params.voxel_size} m "
            f"(limit {MAX_VOXELS}): shrink perception.roi or grow background.voxel_size"
        )


class Grid:
    """Dense integer grid over the ROI box (2-D in x/y or 3-D) with a linear cell index."""

    def __init__(self, *, roi: RoiParams, size: float, dims: int) -> None:
        lows = np.array([roi.x_min, roi.y_min, roi.z_min][:dims], dtype=np.float32)
        highs = np.array([roi.x_max, roi.y_max, roi.z_max][:dims], dtype=np.float32)
        self.origin = lows
        self.size = float(size)
        self.shape = tuple(math.ceil((h - lo) / size) for lo, h in zip(lows, highs, strict=True))
        self.cells = int(np.prod(self.shape))
        strides = np.cumprod((1, *self.shape[:0:-1]))[::-1]
        self.strides = strides.astype(np.int64)
        self._last = np.array(self.shape, dtype=np.int64) - 1

    def coords(self, points: FloatArray) -> IndexArray:
        """(N, dims) integer coordinates, clipped to the grid."""
        dims = len(self.shape)
        cell: IndexArray = np.floor((points[:, :dims] - self.origin) / self.size).astype(np.int64)
        np.maximum(cell, 0, out=cell)
        np.minimum(cell, self._last, out=cell)
        return cell

    def centres(self, index: IndexArray) -> FloatArray:
        """(N, dims) centre coordinates of cells given by linear index."""
        coords = np.stack(np.unravel_index(index, self.shape), axis=1)
        centres: FloatArray = (self.origin + (coords + 0.5) * self.size).astype(np.float32)
        return centres

    def index(self, points: FloatArray) -> IndexArray:
        """Linear cell index of every point (points outside the box map to the border cells)."""
        index: IndexArray = self.coords(points) @ self.strides
        return index


class GroundModel:
    """Height above ground of points: a fixed plane, or a per-cell floor learned from the scene.

    In ``cells`` mode the floor of a ground-plane cell is the lowest return seen in it while the
    background warms up; cells never seen take the median learned floor, or the configured plane
    when nothing has been learned.
    """

    def __init__(self, *, params: GroundParams, roi: RoiParams) -> None:
        self.params = params
        normal = np.array(params.plane[:3], dtype=np.float64)
        scale = float(np.linalg.norm(normal))
        self._normal = (normal / scale).astype(np.float32)
        self._offset = np.float32(params.plane[3] / scale)
        self._grid = Grid(roi=roi, size=params.cell_size, dims=2)
        self._floor = np.full(self._grid.cells, np.inf, dtype=np.float32)
        self._fallback: FloatArray | None = None

    def reset(self) -> None:
        """Forget the learned floor."""
        self._floor.fill(np.inf)
        self._fallback = None

    def height(self, points: FloatArray) -> FloatArray:
        """Height of every point above the ground (metres)."""
        if self.params.mode != "cells" or not np.isfinite(self._floor).any():
            plane: FloatArray = points @ self._normal + self._offset
            return plane
        if self._fallback is None:
            self._fallback = self._filled_floor()
        heights: FloatArray = points[:, 2] - self._fallback[self._grid.index(points)]
        return heights

    def learn(self, points: FloatArray) -> None:
        """Lower each cell's floor to the lowest of these (background) points."""
        if self.params.mode != "cells" or len(points) == 0:
            return
        np.minimum.at(self._floor, self._grid.index(points), points[:, 2])
        self._fallback = None

    def _filled_floor(self) -> FloatArray:
        """Learned floor: the lowest plausible return within `FLOOR_WINDOW` cells, else the median.

        The lowest return of one cell is not always floor: near the sensor the floor is below
        the lowest beam and a cell sees only bodies or furniture, under a chair or table it is
        hidden, far cells between sparse rings see only walls. A cell's value counts only within
        `FLOOR_TOLERANCE` of the median learned floor (most cells in view see the floor); then
        the lowest value in the window around a cell is its floor, so a step or platform wider
        than the window keeps its own height and cells without one take the median.
        """
        known = np.isfinite(self._floor)
        reference = np.median(self._floor[known])
        plausible = known & (np.abs(self._floor - reference) <= FLOOR_TOLERANCE)
        lowest = ndimage.minimum_filter(
            np.where(plausible, self._floor, np.inf).reshape(self._grid.shape),
            size=FLOOR_WINDOW,
            mode="nearest",
        ).reshape(-1)
        median = np.median(self._floor[plausible])
        floor: FloatArray = np.where(np.isfinite(lowest), lowest, median).astype(np.float32)
        return floor


@dataclass(frozen=True)
class Rays:
    """Direction (azimuth, elevation in radians) and range of returns seen from the sensor."""

    azimuth: FloatArray
    elevation: FloatArray
    range: FloatArray

    @classmethod
    def of(cls, points: FloatArray) -> Rays:
        """Rays of (N, 3) points in the sensor frame."""
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        horizontal = np.hypot(x, y)
        return cls(np.arctan2(y, x), np.arctan2(z, horizontal), np.hypot(horizontal, z))

    def __getitem__(self, index: BoolArray | IndexArray) -> Rays:
        """The rays selected by a boolean mask or index array."""
        return Rays(self.azimuth[index], self.elevation[index], self.range[index])


class DirectionBins:
    """Azimuth x elevation bins of a fixed angular size, as a flat index."""

    def __init__(self, size_deg: float) -> None:
        self.step = math.radians(size_deg)
        self.n_az = math.ceil(2 * math.pi / self.step)
        self.n_el = math.ceil(math.pi / self.step)
        self.count = self.n_az * self.n_el

    def of(self, rays: Rays) -> IndexArray:
        """Bin of every ray."""
        az = ((rays.azimuth + math.pi) / self.step).astype(np.int64)
        el = ((rays.elevation + math.pi / 2) / self.step).astype(np.int64)
        index: IndexArray = np.minimum(az, self.n_az - 1) * self.n_el + np.minimum(
            el, self.n_el - 1
        )
        return index


class BackgroundModel:
    """Online voxel occupancy: per-voxel hit rate that rises while hit and decays when not.

    During the first `warmup_s` seconds every voxel hit in at least `warmup_min_fraction` of the
    frames becomes background. Afterwards a voxel's hit rate r follows an asymmetric exponential
    average, evaluated lazily from the last hit time so only hit voxels are touched per frame:
    continuously hit from r=0 it crosses `threshold` after `absorb_s` seconds (a moved chair
    becomes background); never hit again from r=1 it falls below `threshold` after `forget_s`.
    Points excluded from `update` (those of tracked people) never raise the rate, so a person
    standing still is not absorbed while tracked.
    """

    def __init__(self, *, params: BackgroundParams, roi: RoiParams) -> None:
        self.params = params
        self._grid = Grid(roi=roi, size=params.voxel_size, dims=3)
        if self._grid.cells > MAX_VOXELS:
            raise ConfigError(
                f"region of interest needs {self._grid.cells} voxels of {params.voxel_size} m "
                f"(limit {MAX_VOXELS}): shrink perception.roi or grow background.voxel_size"
            )
        self._rate = np.zeros(self._grid.cells, dtype=np.float32)
        self._last_hit = np.full(self._grid.cells, -np.inf, dtype=np.float64)
        self._warm_hits = np.zeros(self._grid.cells, dtype=np.uint16)
        self._tau_absorb = params.absorb_s / -math.log(1.0 - params.threshold)
        self._tau_forget = params.forget_s / -math.log(params.threshold)
        self._start: float | None = None
        self._warm_frames = 0
        self._ready = False
        self._last_stamp: float | None = None
        self._coarse = DirectionBins(params.ray_bin_deg)
        self._fine = DirectionBins(params.reveal_bin_deg)
        self._candidates: tuple[IndexArray, IndexArray, FloatArray] | None = None
        self._far = np.zeros(self._fine.count, dtype=np.float32)
        self._tau_reveal = params.reveal_s / -math.log(1.0 - params.threshold)
        self._candidates_stamp = -math.inf

    @property
    def ready(self) -> bool:
        """True once the warm-up is over and points are classified."""
        return self._ready

    def reset(self) -> None:
        """Forget everything learned; the next frame starts a new warm-up."""
        self._rate.fill(0.0)
        self._last_hit.fill(-np.inf)
        self._warm_hits.fill(0)
        self._start = None
        self._warm_frames = 0
        self._ready = False
        self._last_stamp = None
        self._candidates = None
        self._far.fill(0.0)

    def voxel_index(self, points: FloatArray) -> IndexArray:
        """Linear voxel index of each point (inside the region of interest)."""
        return self._grid.index(points)

    def is_background(self, points: FloatArray, voxels: IndexArray, stamp: float) -> BoolArray:
        """Background flag per point; points near a background voxel along their ray count too."""
        if not self._ready:
            return np.ones(len(points), dtype=bool)
        background = self._rate_at(voxels, stamp) >= self.params.threshold
        candidates = np.flatnonzero(~background)
        tolerance = self.params.range_tolerance
        if tolerance > 0 and len(candidates):
            near = points[candidates]
            ranges = np.sqrt(np.einsum("ij,ij->i", near, near))[:, None]
            for sign in (-1.0, 1.0):
                shifted = near * (1.0 + sign * tolerance / np.maximum(ranges, 1e-3))
                rate = self._rate_at(self._grid.index(shifted.astype(np.float32)), stamp)
                background[candidates[rate >= self.params.threshold]] = True
        return background

    def update(self, voxels: IndexArray, revealed: BoolArray, stamp: float) -> None:
        """Record one frame's hits (voxel indices may repeat; each voxel counts once).

        Hits flagged `revealed` (the farthest return ever seen in their direction) rise with
        `reveal_s` instead of `absorb_s`.
        """
        period = 0.0 if self._last_stamp is None else max(stamp - self._last_stamp, 0.0)
        self._last_stamp = stamp
        if not self._ready:
            self._learn_warmup(voxels, stamp)
            return
        rate = self._rate_at(voxels, stamp, grace=period)
        slow = 1.0 - math.exp(-period / self._tau_absorb)
        fast = 1.0 - math.exp(-period / self._tau_reveal)
        rise = np.where(revealed, np.float32(fast), np.float32(slow))
        self._rate[voxels] = rate + (1.0 - rate) * rise
        self._last_hit[voxels] = stamp

    def revealed(self, rays: Rays) -> BoolArray:
        """True for returns at (or beyond) the farthest range ever seen in their direction."""
        far = self._far[self._fine.of(rays)]
        mask: BoolArray = rays.range >= far - self.params.reveal_tolerance
        return mask

    def observe_rays(self, rays: Rays, stamp: float) -> None:
        """Use every return of the frame as evidence about space.

        The farthest range ever seen per `reveal_bin_deg` direction is kept (see `revealed`).
        Free space, per `ray_bin_deg` direction: a background voxel whose direction's nearest
        return lies beyond it by more than 2 voxels + 10 % of its range is seen through (someone
        who stood there during warm-up has left, a chair was moved away) and its rate decays to
        `threshold` within `free_s` of such evidence. The nearest return is used so a voxel at an
        object's edge, where only some rays pass by, is kept, and so is any voxel hit within the
        last `free_s` (direct evidence beats indirect).
        """
        if len(rays.range) == 0:
            return
        np.maximum.at(self._far, self._fine.of(rays), rays.range)
        if not self._ready:
            return
        period = 0.0 if self._last_stamp is None else max(stamp - self._last_stamp, 0.0)
        if self._candidates is None or stamp - self._candidates_stamp > CANDIDATE_REFRESH_S:
            voxels = np.flatnonzero(self._rate >= self.params.threshold)
            centres = Rays.of(self._grid.centres(voxels))
            margin = 2 * self.params.voxel_size + 0.1 * centres.range
            self._candidates = (voxels, self._coarse.of(centres), centres.range + margin)
            self._candidates_stamp = stamp
        voxels, bins, beyond = self._candidates
        nearest = np.full(self._coarse.count, np.inf, dtype=np.float32)
        np.minimum.at(nearest, self._coarse.of(rays), rays.range)
        seen = nearest[bins]
        free = voxels[np.isfinite(seen) & (seen > beyond)]  # inf: no return in that direction
        free = free[stamp - self._last_hit[free] > self.params.free_s]  # hits outweigh rays
        if len(free):
            self._rate[free] *= np.float32(self.params.threshold ** (period / self.params.free_s))

    def _learn_warmup(self, voxels: IndexArray, stamp: float) -> None:
        """Count frames each voxel is hit in; at the end of warm-up seed the rates."""
        if self._start is None:
            self._start = stamp
        self._warm_frames += 1
        self._warm_hits[voxels] = self._warm_hits[voxels] + 1  # repeated indices write once
        if stamp - self._start >= self.params.warmup_s:
            seen = self._warm_hits >= self.params.warmup_min_fraction * self._warm_frames
            self._rate[seen] = 1.0
            self._last_hit[seen] = stamp
            self._ready = True

    def _rate_at(self, voxels: IndexArray, stamp: float, grace: float = 0.0) -> FloatArray:
        """Hit rate of voxels at `stamp`, decayed for the time since their last hit."""
        idle = np.maximum(stamp - self._last_hit[voxels] - grace, 0.0)
        return (self._rate[voxels] * np.exp(-idle / self._tau_forget)).astype(np.float32)
