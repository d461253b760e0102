"""Tracker accuracy against ground truth (CLEAR MOT and identity metrics via motmetrics).

Each frame gives the ground-truth people (ids, positions) and the tracks (ids, positions); a
track and a person can match only within `max_distance` metres (ground plane by default, since
ground truth is the pelvis and a track is the centroid of the visible points).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from rt_reid.errors import ReidError

FrameIds = Sequence[int] | npt.NDArray[np.integer]
FramePositions = npt.ArrayLike


@dataclass(frozen=True)
class MotFrame:
    """Ground truth and tracker output of one frame: ids (K,) and positions (K, 2 or 3)."""

    gt_ids: FrameIds
    gt_positions: FramePositions
    track_ids: FrameIds
    track_positions: FramePositions


@dataclass(frozen=True)
class TrackingMetrics:
    """MOTA, IDF1 and the counts behind them (motmetrics' definitions)."""

    mota: float
    idf1: float
    motp: float  # mean distance (metres) of matched pairs
    precision: float
    recall: float
    num_frames: int
    num_objects: int  # ground-truth person-frames
    num_misses: int
    num_false_positives: int
    num_switches: int
    num_fragmentations: int  # times a tracked person's coverage was interrupted
    mostly_tracked: int
    num_unique_objects: int


def tracking_metrics(
    frames: Iterable[MotFrame], *, max_distance: float = 0.5, planar: bool = True
) -> TrackingMetrics:
    """Score a tracker over frames; pairs farther than `max_distance` metres never match."""
    import motmetrics

    if max_distance <= 0:
        raise ReidError(f"max_distance must be > 0, got {max_distance}")
    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    dims = 2 if planar else 3
    for index, frame in enumerate(frames):
        gt = _positions(frame.gt_positions, len(frame.gt_ids), dims, f"frame {index} ground truth")
        hyp = _positions(frame.track_positions, len(frame.track_ids), dims, f"frame {index} tracks")
        distances = motmetrics.distances.norm2squared_matrix(gt, hyp, max_d2=max_distance**2)
        accumulator.update(
            [int(i) for i in frame.gt_ids], [int(i) for i in frame.track_ids], np.sqrt(distances)
        )
    summary = motmetrics.metrics.create().compute(
        accumulator, metrics=[f.name for f in fields(TrackingMetrics)], name="all"
    )
    row = summary.loc["all"]
    values: dict[str, Any] = {
        f.name: (float if f.type == "float" else int)(np.nan_to_num(row[f.name]))
        for f in fields(TrackingMetrics)
    }
    return TrackingMetrics(**values)


DISTANCE_BANDS = (0.0, 3.0, 6.0, 12.0, 25.0)  # metres from the sensor (ground plane)
MOVING_SPEED = 0.3  # m/s; slower people count as still


def no_track_breakdown(
    distance: npt.ArrayLike,
    speed: npt.ArrayLike,
    tracked: npt.ArrayLike,
    *,
    bands: Sequence[float] = DISTANCE_BANDS,
    moving_speed: float = MOVING_SPEED,
) -> dict[str, float]:
    """Share of person-frames without a track, overall, per distance band and moving/still.

    One entry per person-frame: ground-plane distance from the sensor (m), ground-truth speed
    (m/s) and whether a track matched it. Keys `no_track_rate[_<band>|_moving|_still]` hold the
    rates (NaN for an empty group) and `person_frames[_...]` the counts behind them.
    """
    dist = np.asarray(distance, dtype=np.float64).reshape(-1)
    spd = np.asarray(speed, dtype=np.float64).reshape(-1)
    hit = np.asarray(tracked, dtype=bool).reshape(-1)
    if not len(dist) == len(spd) == len(hit):
        raise ReidError(
            f"no_track_breakdown: {len(dist)} distances, {len(spd)} speeds, {len(hit)} flags"
        )
    groups: dict[str, npt.NDArray[np.bool_]] = {"": np.ones(len(hit), dtype=bool)}
    edges = [*bands, math.inf]
    for low, high in itertools.pairwise(edges):
        name = f"{low:g}-{high:g}m" if math.isfinite(high) else f"{low:g}m+"
        groups[f"_{name}"] = (dist >= low) & (dist < high)
    groups["_moving"] = spd >= moving_speed
    groups["_still"] = spd < moving_speed
    out: dict[str, float] = {}
    for suffix, mask in groups.items():
        count = int(mask.sum())
        out[f"no_track_rate{suffix}"] = float((~hit[mask]).mean()) if count else math.nan
        out[f"person_frames{suffix}"] = float(count)
    return out


def no_track_rates(
    people: Iterable[tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]],
    *,
    warmup_s: float,
    reentry_gap_s: float = 1.0,
) -> dict[str, float]:
    """`no_track_breakdown` over people given as (stamps (T,), xy (T, 2), tracked (T,)) each.

    A person counts from `warmup_s` after each entry (an absence longer than `reentry_gap_s` is
    a new entry), as the identity metrics do; speeds are central differences of the positions.
    """
    distance, speed, tracked = [], [], []
    for stamps_like, xy_like, hit_like in people:
        stamps = np.asarray(stamps_like, dtype=np.float64).reshape(-1)
        xy = np.asarray(xy_like, dtype=np.float64).reshape(-1, 2)
        hit = np.asarray(hit_like, dtype=bool).reshape(-1)
        entry = np.r_[True, np.diff(stamps) > reentry_gap_s]
        entered = stamps[np.flatnonzero(entry)[np.cumsum(entry) - 1]]
        scored = stamps - entered >= warmup_s
        velocity = np.zeros_like(xy)
        if len(stamps) > 1:
            velocity[:] = np.gradient(xy, stamps, axis=0)
        distance.append(np.hypot(xy[scored, 0], xy[scored, 1]))
        speed.append(np.hypot(velocity[scored, 0], velocity[scored, 1]))
        tracked.append(hit[scored])
    if not distance:
        return no_track_breakdown([], [], [])
    return no_track_breakdown(
        np.concatenate(distance), np.concatenate(speed), np.concatenate(tracked)
    )


def _positions(values: FramePositions, count: int, dims: int, what: str) -> npt.NDArray[np.float64]:
    """(count, dims) float64 positions, or ReidError naming the frame when shapes disagree."""
    array = np.asarray(values, dtype=np.float64)
    if count == 0 and array.size == 0:
        return np.zeros((0, dims))
    if array.ndim != 2 or array.shape[0] != count or array.shape[1] < dims:
        raise ReidError(f"{what}: {count} ids but positions of shape {array.shape}")
    return array[:, :dims]
