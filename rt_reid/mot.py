"""Tracker accuracy against ground truth (CLEAR MOT and identity metrics via motmetrics).

Each frame gives the ground-truth people (ids, positions) and the tracks (ids, positions); a
track and a person can match only within `max_distance` metres (ground plane by default, since
ground truth is the pelvis and a track is the centroid of the visible points).
"""

from __future__ import annotations

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


def _positions(values: FramePositions, count: int, dims: int, what: str) -> npt.NDArray[np.float64]:
    """(count, dims) float64 positions, or ReidError naming the frame when shapes disagree."""
    array = np.asarray(values, dtype=np.float64)
    if count == 0 and array.size == 0:
        return np.zeros((0, dims))
    if array.ndim != 2 or array.shape[0] != count or array.shape[1] < dims:
        raise ReidError(f"{what}: {count} ids but positions of shape {array.shape}")
    return array[:, :dims]
