"""Person detection from foreground points: ground-plane grid clustering, splitting, size gates.

People stand upright, so foreground points are binned into a ground-plane grid and 8-connected
occupied cells form a cluster (scipy.ndimage.label on the occupied bounding box: linear in the
number of points, no neighbour search). A cluster that holds the predicted positions of two or
more tracks is split by k-means seeded with those predictions; an oversized cluster nobody tracks
is split by k-means seeded with its heads (peaks of its top-height profile). Parts that fail the
person-size gates are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from rt_reid.arrays import FloatArray
from rt_reid.runtime.perception.frontend import Grid, take_rows
from rt_reid.runtime.perception.params import ClusterParams, RoiParams

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
KMEANS_ITERATIONS = 4
HEAD_BIN = 0.05  # metres, resolution of the top-height profile used to find heads
PERSON_HEIGHT = 1.5  # metres of a person visible above the ground margin, for expected counts
PERSON_WIDTH = 0.45  # metres, shoulder width seen from the sensor
HEAD_PART_SHARE = 0.3  # split at heads only if every part holds this share of the points
MAX_TOP_DROP = 0.4  # metres: the lowest the measured top of a far person may sit below min_top


@dataclass(frozen=True)
class Detection:
    """One person candidate: centroid and box size in the LiDAR frame, its points, its top."""

    position: npt.NDArray[np.float64]  # (3,) centroid
    extent: npt.NDArray[np.float64]  # (3,) axis-aligned box size
    points: FloatArray  # (N, 3)
    top: float  # highest point above the ground
    index: npt.NDArray[np.int64]  # (N,) rows of these points in the array given to `detect`


class Clusterer:
    """Turn foreground points (with heights above ground) into gated person detections."""

    def __init__(self, *, params: ClusterParams, roi: RoiParams) -> None:
        self.params = params
        self._grid = Grid(roi=roi, size=params.cell_size, dims=2)
        self._spacing: tuple[float, float] | None = None

    def set_resolution(self, beam_spacing: float, column_spacing: float) -> None:
        """Angular spacing of the sensor's beams and columns (radians): gates scale with range."""
        self._spacing = (beam_spacing, column_spacing)

    def gates_at(
        self, ranges: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Minimum point count, vertical extent and top of a person at these ranges (m).

        A person of `PERSON_HEIGHT` x `PERSON_WIDTH` at range r collects about
        (H / (r dEl)) x (W / (r dAz)) returns; far away (16 beams at 12 m: a few rings) the
        count gate is `min_point_share` of that, the height gate one beam spacing, and the top
        may be one beam spacing (at most `MAX_TOP_DROP`) below the head (the next beam passes
        over it).
        """
        p = self.params
        count = np.full(len(ranges), float(p.min_points))
        height = np.full(len(ranges), p.min_height)
        top = np.full(len(ranges), p.min_top)
        if self._spacing is not None:
            beam, column = self._spacing
            r = np.maximum(ranges, 0.5)
            expected = (PERSON_HEIGHT / (r * beam)) * (PERSON_WIDTH / (r * column))
            count = np.clip(p.min_point_share * expected, p.min_points_floor, p.min_points)
            height = np.minimum(p.min_height, 0.9 * r * beam)
            top = p.min_top - np.minimum(r * beam, MAX_TOP_DROP)
        return count, height, top

    def detect(
        self,
        points: FloatArray,
        heights: FloatArray,
        predictions: npt.NDArray[np.float64],
    ) -> list[Detection]:
        """Detections for this frame; `predictions` (K, 2) are track positions used to split."""
        if len(points) == 0:
            return []
        p = self.params
        labels = self._label(points)
        order = np.argsort(labels, kind="stable")
        sorted_labels = labels[order]
        starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
        counts = np.diff(np.r_[starts, len(order)])
        pts, hts = take_rows(points, order), heights[order]
        # Per-cluster statistics in one pass each (segments are contiguous after the sort).
        low = np.minimum.reduceat(pts, starts, axis=0)
        high = np.maximum.reduceat(pts, starts, axis=0)
        bottom = np.minimum.reduceat(hts, starts)
        top = np.maximum.reduceat(hts, starts)
        sums = np.add.reduceat(pts, starts, axis=0, dtype=np.float64)
        xy = pts[:, :2].astype(np.float64)
        second = np.add.reduceat(np.c_[xy * xy, xy[:, 0] * xy[:, 1]], starts, axis=0)
        thickness = _minor_std(sums[:, :2], second, counts)
        min_count, min_height, min_top = self.gates_at(
            np.linalg.norm(sums / counts[:, None], axis=1)
        )
        kept = np.flatnonzero(counts >= min_count)
        footprint = (high - low)[:, :2].max(axis=1)
        person = (
            (top >= min_top)
            & (top <= p.max_top)
            & (top - bottom >= min_height)
            & (thickness >= p.min_thickness)
        )
        owners = _owners(low[kept, :2], high[kept, :2], predictions, p.split_margin)
        detections: list[Detection] = []
        for slot, cluster in enumerate(kept):
            segment = slice(starts[cluster], starts[cluster] + counts[cluster])
            seeds = _distinct(predictions[owners == slot], p.split_min_separation)
            span = float(np.hypot(*(high[cluster] - low[cluster])[:2]))
            if len(seeds) < 2 and span <= p.pair_span and footprint[cluster] <= p.max_footprint:
                if person[cluster]:
                    detections.append(
                        Detection(
                            position=sums[cluster] / counts[cluster],
                            extent=(high[cluster] - low[cluster]).astype(np.float64),
                            points=pts[segment],
                            top=float(top[cluster]),
                            index=order[segment],
                        )
                    )
                continue
            for part in self._split(pts[segment], hts[segment], seeds):
                detection = self._gate(pts[segment][part], hts[segment][part], order[segment][part])
                if detection is not None:
                    detections.append(detection)
        return detections

    def _label(self, points: FloatArray) -> npt.NDArray[np.int64]:
        """Connected-component label of every point's ground-plane cell."""
        coords = self._grid.coords(points)
        low = coords.min(axis=0)
        local = coords - low
        shape = tuple(int(v) + 1 for v in local.max(axis=0))
        flat = local[:, 0] * shape[1] + local[:, 1]
        occupied = np.zeros(shape[0] * shape[1], dtype=bool)
        occupied[flat] = True
        image, _count = ndimage.label(occupied.reshape(shape), structure=EIGHT_CONNECTED)
        return np.asarray(image.reshape(-1)[flat], dtype=np.int64)

    def _split(
        self, points: FloatArray, heights: FloatArray, seeds: npt.NDArray[np.float64]
    ) -> list[npt.NDArray[np.int64]]:
        """Index arrays of the parts of a cluster that holds several tracks or is oversized.

        `seeds` are the distinct predicted track positions that fall in this cluster; with fewer
        than two, the cluster's heads seed the split (no two heads: one part, which the gates
        judge as a whole: one person with outstretched arms, or an oversized object).
        """
        xy = points[:, :2].astype(np.float64)
        by_heads = len(seeds) < 2
        if by_heads:
            seeds = _head_seeds(
                xy,
                heights,
                prominence=self.params.head_prominence,
                separation=self.params.split_min_separation,
            )
            if len(seeds) < 2:
                return [np.arange(len(points))]
        parts = [part for part in _kmeans(xy, seeds) if len(part)]
        if by_heads and min(len(part) for part in parts) < HEAD_PART_SHARE * len(points):
            return [np.arange(len(points))]  # a raised arm, not a second person
        centres = np.array([xy[part].mean(axis=0) for part in parts])
        if len(_distinct(centres, self.params.split_min_separation)) < len(parts):
            return [np.arange(len(points))]  # parts this close are halves of one person
        return parts

    def _gate(
        self, points: FloatArray, heights: FloatArray, index: npt.NDArray[np.int64]
    ) -> Detection | None:
        """Detection of one split part if it looks like one person (count, top, size), else None."""
        p = self.params
        centre = points.mean(axis=0, dtype=np.float64)
        min_count, min_height, min_top = self.gates_at(np.array([np.linalg.norm(centre)]))
        if len(points) < min_count[0]:
            return None
        top = float(heights.max())
        if not min_top[0] <= top <= p.max_top or top - float(heights.min()) < min_height[0]:
            return None
        extent = (points.max(axis=0) - points.min(axis=0)).astype(np.float64)
        if max(extent[0], extent[1]) > p.max_footprint:
            return None
        xy = points[:, :2].astype(np.float64)
        second = np.array([[*(xy * xy).sum(axis=0), (xy[:, 0] * xy[:, 1]).sum()]])
        if _minor_std(xy.sum(axis=0)[None], second, np.array([len(xy)]))[0] < p.min_thickness:
            return None
        return Detection(
            position=centre,
            extent=extent,
            points=points,
            top=top,
            index=index,
        )


def _owners(
    low: npt.NDArray[np.float32],
    high: npt.NDArray[np.float32],
    predictions: npt.NDArray[np.float64],
    margin: float,
) -> npt.NDArray[np.int64]:
    """Cluster box (low/high corners) each predicted position falls in, nearest within margin."""
    owners = np.full(len(predictions), -1, dtype=np.int64)
    if not len(low) or not len(predictions):
        return owners
    outside = np.maximum(
        np.maximum(low[None, :, :] - predictions[:, None, :], 0.0),
        predictions[:, None, :] - high[None, :, :],
    )
    distance = np.hypot(outside[..., 0], outside[..., 1])
    nearest = distance.argmin(axis=1)
    within = distance[np.arange(len(predictions)), nearest] <= margin
    owners[within] = nearest[within]
    return owners


def _minor_std(
    sums: npt.NDArray[np.float64], second: npt.NDArray[np.float64], counts: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Per cluster, the standard deviation of its ground-plane points across their main axis.

    From sums (K, 2) of x, y and second moments (K, 3) of xx, yy, xy: the square root of the
    smaller eigenvalue of the 2 x 2 covariance.
    """
    mean = sums / counts[:, None]
    cxx = second[:, 0] / counts - mean[:, 0] ** 2
    cyy = second[:, 1] / counts - mean[:, 1] ** 2
    cxy = second[:, 2] / counts - mean[:, 0] * mean[:, 1]
    half_gap = np.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)
    minor: npt.NDArray[np.float64] = np.sqrt(np.maximum((cxx + cyy) / 2 - half_gap, 0.0))
    return minor


def _distinct(centres: npt.NDArray[np.float64], separation: float) -> npt.NDArray[np.float64]:
    """Keep centres in order, dropping any closer than `separation` to one already kept."""
    kept: list[npt.NDArray[np.float64]] = []
    for centre in centres:
        if all(np.hypot(*(centre - other)) >= separation for other in kept):
            kept.append(centre)
    return np.array(kept).reshape(-1, 2)


def _head_seeds(
    xy: npt.NDArray[np.float64], heights: FloatArray, *, prominence: float, separation: float
) -> npt.NDArray[np.float64]:
    """Ground positions of the heads along a cluster's principal axis.

    The top-height profile along the axis is binned; a bin is a head if it is the highest point
    between its neighbours' heads and at least `prominence` above the lowest top on the way to
    every other head (shoulders dip between two people; a flat panel or a table has no dips).
    """
    mean = xy.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov((xy - mean).T))
    axis = vectors[:, -1]
    proj = (xy - mean) @ axis
    bins = np.floor((proj - proj.min()) / HEAD_BIN).astype(np.int64)
    top = np.full(int(bins.max()) + 1, -np.inf)
    np.maximum.at(top, bins, heights.astype(np.float64))
    top[~np.isfinite(top)] = 0.0
    top = ndimage.maximum_filter1d(top, size=3)  # bridge bins that no return happened to hit
    heads: list[int] = []
    for b in np.argsort(-top, kind="stable"):
        if all(
            abs(int(b) - h) * HEAD_BIN >= separation
            and top[min(b, h) : max(b, h) + 1].min() <= top[b] - prominence
            for h in heads
        ):
            heads.append(int(b))
    if len(heads) < 2:
        return np.zeros((0, 2))
    positions = proj.min() + (np.array(sorted(heads)) + 0.5) * HEAD_BIN
    seeds: npt.NDArray[np.float64] = mean + positions[:, None] * axis
    return seeds


def _kmeans(
    xy: npt.NDArray[np.float64], seeds: npt.NDArray[np.float64]
) -> list[npt.NDArray[np.int64]]:
    """Partition points by a few Lloyd iterations from the given seeds.

    Distances per coordinate and centres from `bincount` sums (the same sequential sums as a
    per-centre mean, so the same partition) keep each iteration a handful of passes over the
    points whatever the number of seeds.
    """
    centres = seeds.copy()
    x, y = xy[:, 0], xy[:, 1]
    assign = np.zeros(len(xy), dtype=np.int64)
    k = len(centres)
    for _ in range(KMEANS_ITERATIONS):
        dx = x[:, None] - centres[None, :, 0]
        dy = y[:, None] - centres[None, :, 1]
        assign = (dx * dx + dy * dy).argmin(axis=1)
        counts = np.bincount(assign, minlength=k)
        filled = counts > 0  # a seed nobody is nearest to keeps its place
        sums = np.stack([np.bincount(assign, weights=v, minlength=k) for v in (x, y)], axis=1)
        centres[filled] = sums[filled] / counts[filled, None]
    order = np.argsort(assign, kind="stable")
    bounds = np.searchsorted(assign[order], np.arange(k + 1))
    return [order[bounds[j] : bounds[j + 1]] for j in range(k)]
