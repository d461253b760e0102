"""Physics evidence: heading invariance, clock-offset tolerance, still people, separation, fit."""

from __future__ import annotations

import numpy as np
import pytest

from rt_reid.errors import ReidError
from rt_reid.runtime.continuity import TrackContinuity
from rt_reid.runtime.physics import (
    MotionEvidence,
    PhysicsFitError,
    PhysicsParams,
    acceleration_kernels,
    feature_names,
    fit_physics_llr,
    physics_llr,
    uneven_kernels,
)

RATE = 10.0
PERIOD = 1.0 / RATE
PARAMS = PhysicsParams(
    smoothing_frames=(7, 21),
    half_life_s=20.0,
    min_points=8,
    weights=(0.02, 0.01, 0.06, 0.03, 0.05),
    bias=-1.7,
    max_llr=40.0,
)
HORIZONTAL_SLOW = feature_names(PARAMS.smoothing_frames).index("horizontal_21")
ACTIVITY = feature_names(PARAMS.smoothing_frames).index("activity")
BODY = np.random.default_rng(7).normal(0.0, 0.2, (30, 3))  # a cloud around the centroid
BODY -= BODY.mean(axis=0)
IDENTITY_QUATERNION = np.array([0.0, 0.0, 0.0, 1.0])


def walk(seed: int, duration: float = 20.0, fine: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """A wandering walk with gait bob: positions (fine rate) and their second derivative."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, duration, 1.0 / fine)
    position = np.zeros((len(t), 3))
    for axis in range(2):
        for _ in range(4):
            f, amp, ph = rng.uniform(0.05, 0.6), rng.uniform(0.3, 1.5), rng.uniform(0, 2 * np.pi)
            position[:, axis] += amp * np.sin(2 * np.pi * f * t + ph)
    step = rng.uniform(1.6, 2.1)
    position[:, 2] = 1.0 + 0.03 * np.sin(2 * np.pi * step * t + rng.uniform(0, 6))
    acceleration = np.gradient(np.gradient(position, t, axis=0), t, axis=0)
    return t, np.concatenate([position, acceleration], axis=1)


def frame_signals(
    seed: int, *, heading: float = 0.0, offset_s: float = 0.0, still: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Track centroids (T, 3) with LiDAR noise and IMU world accelerations (T, 1, 3) at 10 Hz.

    The IMU box-averages over one frame period around each (offset) stamp and reports in a world
    frame rotated by `heading` about gravity, as a device with an unknown heading would.
    """
    t, signal = walk(seed)
    if still:
        signal[:, :3] = signal[0, :3]
        signal[:, 3:] = 0.0
    stamps = np.arange(1.0, t[-1] - 1.0, PERIOD)
    rng = np.random.default_rng(seed + 100)
    centroids = np.stack([np.interp(stamps, t, signal[:, k]) for k in range(3)], 1)
    centroids += rng.normal(0.0, 0.01, centroids.shape)
    acc = np.empty((len(stamps), 3))
    for k, stamp in enumerate(stamps + offset_s):
        inside = np.abs(t - stamp) <= PERIOD / 2
        acc[k] = signal[inside, 3:].mean(axis=0)
    acc += rng.normal(0.0, 0.05, acc.shape)
    c, s = np.cos(heading), np.sin(heading)
    rotated = acc @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T
    return centroids, rotated[:, None, :]


def run(
    tracks: dict[int, np.ndarray],
    imu: dict[str, np.ndarray],
    *,
    shapes: dict[int, np.ndarray] | None = None,
    orientations: dict[str, np.ndarray] | None = None,
) -> MotionEvidence:
    """Feed whole sequences through MotionEvidence frame by frame.

    `tracks`: centroids (T, 3) per track, whose clouds are BODY stretched along x by `shapes`
    (T,) per frame (1 when not given); `imu`: accelerations (T, 1, 3) per identity, with
    orientations (T, 1, 4) (no rotation when not given).
    """
    evidence = MotionEvidence(identities=list(imu), sites=1, params=PARAMS, frame_period=PERIOD)
    frames = min(len(v) for v in tracks.values())
    span = evidence.frames
    for f in range(frames):
        clouds = {}
        for k, centroids in tracks.items():
            scale = 1.0 if shapes is None else shapes[k][f]
            clouds[k] = centroids[f] + BODY * np.array([scale, 1.0, 1.0])
        evidence.observe(f, clouds)
        if f >= span - 1:
            window = slice(f - span + 1, f + 1)
            motion = {}
            for name, acc in imu.items():
                quats = (
                    np.tile(IDENTITY_QUATERNION, (span, 1, 1))
                    if orientations is None
                    else orientations[name][window]
                )
                motion[name] = (quats, acc[window])
            evidence.update(range(f - span + 1, f + 1), f * PERIOD, motion)
    return evidence


def test_kernels_recover_a_quadratic_and_agree() -> None:
    position_kernel, acceleration_kernel = acceleration_kernels(9, PERIOD)
    t = np.arange(9) * PERIOD
    assert position_kernel @ (0.5 * 3.0 * t**2 + 2.0 * t + 1.0) == pytest.approx(3.0)
    assert acceleration_kernel @ np.full(9, 3.0) == pytest.approx(3.0)
    with pytest.raises(ReidError, match="odd"):
        acceleration_kernels(8, PERIOD)


def test_uneven_kernels_match_the_even_ones_and_follow_drops() -> None:
    even = np.arange(9, dtype=np.float64) * PERIOD
    position, acceleration = uneven_kernels(even)
    reference_position, _ = acceleration_kernels(9, PERIOD)
    np.testing.assert_allclose(position, reference_position, atol=1e-9)
    assert acceleration @ np.full(9, 3.0) == pytest.approx(3.0)
    dropped = np.array([0.0, 0.1, 0.3, 0.4, 0.5, 0.8, 0.9, 1.0, 1.2])  # frames lost in between
    position, acceleration = uneven_kernels(dropped)
    assert position @ (0.5 * 2.0 * dropped**2 - dropped + 4.0) == pytest.approx(2.0)
    assert acceleration @ np.full(9, 2.0) == pytest.approx(2.0)


def test_true_pair_beats_false_pair() -> None:
    track_a, imu_a = frame_signals(1)
    track_b, imu_b = frame_signals(2)
    evidence = run({1: track_a, 2: track_b}, {"a": imu_a, "b": imu_b})
    features = evidence.features([1, 2])[..., HORIZONTAL_SLOW]
    assert features[0, 0] > 10 * max(features[0, 1], 1.0)
    assert features[1, 1] > 10 * max(features[1, 0], 1.0)
    llr = physics_llr(evidence.features([1, 2]), PARAMS)
    assert llr[0, 0] > llr[0, 1] + 2.0
    assert llr[1, 1] > llr[1, 0] + 2.0


def test_imu_heading_does_not_change_the_evidence() -> None:
    track, imu = frame_signals(3)
    _, turned = frame_signals(3, heading=2.1)
    plain = run({1: track}, {"a": imu}).features([1])
    rotated = run({1: track}, {"a": turned}).features([1])
    assert plain[0, 0, HORIZONTAL_SLOW] > 20.0
    np.testing.assert_allclose(rotated, plain, rtol=1e-9, atol=1e-9)


def test_a_50_ms_clock_offset_changes_the_evidence_little() -> None:
    track, imu = frame_signals(4)
    _, late = frame_signals(4, offset_s=0.05)
    aligned = run({1: track}, {"a": imu}).features([1])[0, 0]
    shifted = run({1: track}, {"a": late}).features([1])[0, 0]
    assert shifted[HORIZONTAL_SLOW] == pytest.approx(aligned[HORIZONTAL_SLOW], rel=0.25)


def test_a_still_person_is_uninformative_not_a_mismatch() -> None:
    still_track, still_imu = frame_signals(5, still=True)
    evidence = run({1: still_track}, {"a": still_imu})
    features = evidence.features([1])
    # chance level (a few units of the statistic, whatever the noise), not a mismatch
    assert np.all(np.abs(features) < 10.0)
    moving_track, moving_imu = frame_signals(5)
    moving = run({1: moving_track}, {"a": moving_imu}).features([1])
    assert moving[0, 0, HORIZONTAL_SLOW] > features[0, 0, HORIZONTAL_SLOW] + 20.0


def test_missing_identity_contributes_nothing_and_forgetting_decays() -> None:
    track, imu = frame_signals(6)
    evidence = run({1: track}, {"a": imu})
    before = evidence.features([1])[0, 0, HORIZONTAL_SLOW]
    evidence.update([], 1e3, {})  # 1000 s later, nothing observed: statistics decay
    assert evidence.features([1])[0, 0, HORIZONTAL_SLOW] < 1e-6 * before
    evidence.observe(0, {})
    assert evidence.features([1]).shape == (1, 1, len(evidence.feature_names))
    assert np.all(evidence.features([1]) == 0.0)  # dropped with its track


def test_statistics_follow_a_continued_track() -> None:
    track, imu = frame_signals(7)
    evidence = run({1: track}, {"a": imu})
    stats = evidence.statistics(1)
    assert stats is not None
    evidence.observe(500, {2: track[0] + BODY})  # track 1 ended, track 2 is new
    assert evidence.features([2])[0, 0, HORIZONTAL_SLOW] == 0.0
    evidence.inherit(2, stats)
    assert evidence.features([2])[0, 0, HORIZONTAL_SLOW] > 20.0


def test_many_tracks_each_get_what_they_would_get_alone() -> None:
    """The shared statistics table: rows do not leak into each other, and it grows past its
    initial size; a track's numbers are bit-identical to the same track processed alone."""
    signals = {k: frame_signals(20 + k % 6) for k in range(70)}
    tracks = {k: track + 0.01 * k for k, (track, _) in signals.items()}
    imu = {"a": signals[0][1], "b": signals[1][1]}
    crowd = run(tracks, imu).features(list(tracks))
    for k in (0, 1, 33, 69):
        alone = run({k: tracks[k]}, imu).features([k])
        np.testing.assert_array_equal(crowd[k], alone[0])
    assert crowd[0, 0, HORIZONTAL_SLOW] > 20.0


def test_a_new_track_in_a_freed_row_starts_from_nothing() -> None:
    track, imu = frame_signals(8)
    evidence = run({1: track}, {"a": imu})
    assert evidence.statistics(1) is not None
    evidence.observe(500, {})  # track 1 ends: its row is freed
    assert evidence.statistics(1) is None
    evidence.observe(501, {2: track[0] + BODY})
    assert evidence.statistics(2) is None
    assert np.all(evidence.features([1, 2]) == 0.0)


def test_continuity_pairs_a_young_track_with_the_one_that_ended_nearby() -> None:
    continuity: TrackContinuity[str] = TrackContinuity(max_gap_s=4.0, speed_mps=1.5)
    here, there, far = np.array([1.0, 2.0]), np.array([1.8, 2.0]), np.array([8.0, 2.0])
    assert continuity.step(0.0, {1: here, 5: far}, lambda _: "x") == {}
    assert continuity.step(0.1, {1: None, 5: far}, lambda _: "x") == {}  # track 1 coasts
    assert continuity.step(1.0, {1: None, 5: far, 2: there, 3: far + 1.0}, str) == {}
    # Track 1 ends: track 2 (born after 1 was last seen, 0.8 m away after 0.9 s) continues it;
    # track 3 is too far to have walked there.
    assert continuity.step(1.5, {2: there, 5: far, 3: far + 1.0}, lambda t: f"state {t}") == {
        2: "state 1"
    }
    assert continuity.continued == 1
    # Two young tracks that could both continue an ended one: ambiguous, nobody continues it.
    assert continuity.step(3.0, {2: there, 3: far + 1.0, 5: far}, str) == {}
    crowd = {2: there, 3: far + 1.0, 8: far + 0.2, 9: far + 0.4}
    assert continuity.step(3.2, crowd, lambda t: f"state {t}") == {}
    # A track that ended too long ago is forgotten.
    assert continuity.step(2.0, {2: there, 3: far + 1.0}, lambda t: f"state {t}") == {}
    assert continuity.step(9.0, {2: there, 3: far + 1.0, 7: far}, str) == {}


def gestures(seed: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A standing person's bursts of arm movement: cloud width (T,) and forearm quaternions."""
    rng = np.random.default_rng(seed)
    active = np.repeat(rng.random(frames // 10 + 1) < 0.4, 10)[:frames]
    width = 1.0 + 0.5 * active * np.abs(np.sin(np.arange(frames) * 1.3))
    width += rng.normal(0.0, 0.01, frames)
    angle = np.cumsum(active * rng.normal(0.0, 0.3, frames))
    quats = np.stack([np.zeros(frames), np.sin(angle / 2), np.zeros(frames), np.cos(angle / 2)], 1)
    return width, quats[:, None, :]


def test_gesturing_while_standing_is_evidence_through_activity() -> None:
    frames = 300
    still = np.tile([2.0, 1.0, 1.0], (frames, 1))
    width_a, quats_a = gestures(11, frames)
    width_b, quats_b = gestures(12, frames)
    no_acc = np.zeros((frames, 1, 3))
    evidence = run(
        {1: still, 2: still + 1.5},
        {"a": no_acc, "b": no_acc},
        shapes={1: width_a, 2: width_b},
        orientations={"a": quats_a, "b": quats_b},
    )
    activity = evidence.features([1, 2])[..., ACTIVITY]
    assert activity[0, 0] > 10.0
    assert activity[1, 1] > 10.0
    assert activity[0, 0] > 5 * abs(activity[0, 1])
    assert activity[1, 1] > 5 * abs(activity[1, 0])


def test_weights_must_fit_the_features() -> None:
    with pytest.raises(ReidError, match=r"weights has 2 values"):
        PhysicsParams(
            smoothing_frames=(7, 21),
            half_life_s=20.0,
            min_points=8,
            weights=(1.0, 2.0),
            bias=0.0,
            max_llr=1.0,
        )


def test_fit_recovers_a_separating_log_likelihood_ratio() -> None:
    rng = np.random.default_rng(0)
    same = [([rng.gamma(6.0, 3.0), rng.normal(4.0, 2.0), rng.gamma(3.0)], True) for _ in range(400)]
    other = [([rng.gamma(1.0), rng.normal(0.0, 2.0), rng.gamma(1.0)], False) for _ in range(1200)]
    weights, bias = fit_physics_llr(same + other)
    assert weights[0] > 0
    assert weights[1] > 0
    params = PhysicsParams(
        smoothing_frames=(21,), half_life_s=20.0, min_points=8, weights=weights, bias=bias,
        max_llr=40.0,
    )  # fmt: skip
    llr_same = physics_llr(np.array([f for f, _ in same]), params)
    llr_other = physics_llr(np.array([f for f, _ in other]), params)
    assert (llr_same > 0).mean() > 0.9
    assert (llr_other < 0).mean() > 0.9
    with pytest.raises(PhysicsFitError):
        fit_physics_llr(same)
