"""Tracker metrics (MOTA / IDF1 via motmetrics) on hand-made frames with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from rt_reid.errors import ReidError
from rt_reid.mot import MotFrame, tracking_metrics

GT = np.array([[0.0, 0.0, -0.5], [2.0, 0.0, -0.5]])


def frames(n, track_ids, offset=(0.1, 0.0, 0.3)):
    return [MotFrame([1, 2], GT, track_ids, GT + np.array(offset)) for _ in range(n)]


def test_perfect_tracking():
    metrics = tracking_metrics(frames(20, [7, 8]))
    assert metrics.mota == pytest.approx(1.0)
    assert metrics.idf1 == pytest.approx(1.0)
    assert metrics.num_objects == 40
    assert metrics.num_switches == 0
    assert metrics.motp == pytest.approx(0.1)  # planar: the 0.3 m height offset is ignored


def test_identity_swap_halves_idf1_and_costs_switches():
    metrics = tracking_metrics(frames(10, [7, 8]) + frames(10, [8, 7]))
    assert metrics.num_switches == 2
    assert metrics.idf1 == pytest.approx(0.5)
    assert metrics.mota == pytest.approx(1 - 2 / 40)


def test_distance_gate_turns_far_tracks_into_misses_and_false_positives():
    far = tracking_metrics(frames(5, [7, 8], offset=(0.6, 0, 0)), max_distance=0.5)
    assert far.num_misses == 10
    assert far.num_false_positives == 10
    assert far.mota == pytest.approx(-1.0)
    near = tracking_metrics(frames(5, [7, 8], offset=(0.6, 0, 0)), max_distance=0.7)
    assert near.mota == pytest.approx(1.0)
    full = tracking_metrics(frames(5, [7, 8], offset=(0.0, 0, 0.6)), max_distance=0.5, planar=False)
    assert full.num_misses == 10


def test_empty_frames_and_bad_shapes():
    empty = [MotFrame([1], GT[:1], [], np.zeros((0, 3)))] * 4
    assert tracking_metrics(empty).num_misses == 4
    with pytest.raises(ReidError, match="frame 0 tracks: 2 ids"):
        tracking_metrics([MotFrame([1], GT[:1], [1, 2], GT[:1])])
    with pytest.raises(ReidError, match="max_distance"):
        tracking_metrics([], max_distance=0)
