"""Tracker metrics (MOTA / IDF1 via motmetrics) on hand-made frames with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from rt_reid.errors import ReidError
from rt_reid.evaluation.mot import MotFrame, no_track_rates, tracking_metrics

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


def test_fragmentation_is_counted():
    gap = [MotFrame([1], GT[:1], [], np.zeros((0, 3)))]
    metrics = tracking_metrics(frames(5, [7, 8]) + gap + frames(5, [7, 8]))
    assert metrics.num_fragmentations == 1
    assert metrics.num_switches == 0


def test_no_track_rates_by_distance_and_motion():
    stamps = np.arange(60) / 10.0  # 6 s at 10 Hz; scored from 3 s: 30 frames each
    walker = np.c_[1.0 + stamps, np.zeros(60)]  # 1 m/s from x = 1 m
    walker_tracked = np.ones(60, dtype=bool)
    walker_tracked[40:43] = False  # 3 of the 30 scored frames lost, at 5.0-5.2 m
    stander = np.tile([[8.0, 0.0]], (60, 1))
    stander_tracked = np.arange(60) % 2 == 0  # half of its frames
    rates = no_track_rates(
        [(stamps, walker, walker_tracked), (stamps, stander, stander_tracked)], warmup_s=3.0
    )
    assert rates["person_frames"] == 60
    assert rates["no_track_rate"] == pytest.approx((3 + 15) / 60)
    assert rates["no_track_rate_moving"] == pytest.approx(3 / 30)
    assert rates["no_track_rate_still"] == pytest.approx(0.5)
    # The walker is scored at 4.0-6.9 m: 20 frames below 6 m (the 3 lost ones among them).
    assert rates["person_frames_3-6m"] == 20
    assert rates["no_track_rate_3-6m"] == pytest.approx(3 / 20)
    assert rates["person_frames_6-12m"] == 10 + 30
    assert rates["no_track_rate_6-12m"] == pytest.approx(15 / 40)
    assert np.isnan(rates["no_track_rate_25m+"])
    # Leaving for more than a second restarts the warm-up.
    back = np.r_[stamps, stamps + 10.0]
    rerun = no_track_rates(
        [(back, np.tile([[2.0, 0.0]], (120, 1)), np.ones(120, dtype=bool))], warmup_s=3.0
    )
    assert rerun["person_frames"] == 60
