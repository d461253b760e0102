"""Shared preprocessing: heading invariance, resampling, frame sampling and centring."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from rt_reid.runtime.features import (
    GRAVITY,
    PreprocessError,
    assemble_window,
    fill_missing_frames,
    imu_features,
    resample_imu,
    sample_frame,
    world_linear_acceleration,
)


def _random_stream(rng, frames=24, sites=4):
    quats = Rotation.random(frames * sites, random_state=rng.integers(1 << 31)).as_quat()
    return quats.reshape(frames, sites, 4), rng.normal(size=(frames, sites, 3))


def test_imu_features_cancel_per_device_heading():
    rng = np.random.default_rng(0)
    quats, acc = _random_stream(rng)
    headings = Rotation.from_euler("z", rng.uniform(-np.pi, np.pi, size=(4, 1)))
    turned_q = np.stack(
        [(headings[s] * Rotation.from_quat(quats[:, s])).as_quat() for s in range(4)], 1
    )
    turned_a = np.stack([headings[s].apply(acc[:, s]) for s in range(4)], 1)
    np.testing.assert_allclose(
        imu_features(turned_q, turned_a), imu_features(quats, acc), atol=1e-6
    )


def test_imu_features_channel_order_is_rotations_then_accelerations():
    quats = np.tile(np.array([0.0, 0.0, 0.0, 1.0]), (24, 4, 1))
    acc = np.zeros((24, 4, 3))
    acc[:, 2] = [0.0, 0.0, GRAVITY]  # third site accelerates upwards by 1 g
    features = imu_features(quats, acc)
    assert features.shape == (24, 48)
    np.testing.assert_allclose(features[0, :9], np.eye(3).ravel())
    np.testing.assert_allclose(features[0, 36:48], [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], atol=1e-6)


def test_imu_features_reject_mismatched_shapes():
    with pytest.raises(PreprocessError, match="must be"):
        imu_features(np.zeros((24, 4, 4)), np.zeros((24, 3, 3)))


def test_world_acceleration_of_device_at_rest_is_zero():
    tilted = Rotation.from_euler("xy", [0.4, -0.7])
    force_in_sensor = tilted.inv().apply([0.0, 0.0, GRAVITY])  # REP-145: +g along world up
    acc = world_linear_acceleration(tilted.as_quat()[None], force_in_sensor[None])
    np.testing.assert_allclose(acc, 0.0, atol=1e-9)


def test_resample_averages_over_one_frame_period():
    stamps = np.arange(0.0, 2.0, 0.01)
    quats = np.tile([0.0, 0.0, 0.0, 1.0], (len(stamps), 1))
    force = np.zeros((len(stamps), 3))
    square_wave = np.where(np.arange(len(stamps)) % 2 == 0, 1.0, -1.0)  # 50 Hz
    force[:, 2] = GRAVITY + square_wave
    frames = np.arange(0.5, 1.5, 0.1)
    resampled = resample_imu(stamps, quats, force, frames, frame_period=0.1)
    assert np.abs(resampled.world_acceleration[:, 2]).max() < 0.15  # aliasing averaged away
    np.testing.assert_allclose(resampled.orientation_xyzw, quats[: len(frames)])


@pytest.mark.parametrize(
    ("stamps", "frames", "message"),
    [
        (np.array([0.0]), np.array([0.0]), "at least 2"),
        (np.array([0.0, 0.2, 0.1]), np.array([0.1]), "strictly increasing"),
        (np.array([0.0, 0.1, 0.2]), np.array([0.5]), "not covered"),
    ],
)
def test_resample_rejects_bad_streams(stamps, frames, message):
    quats = np.tile([0.0, 0.0, 0.0, 1.0], (len(stamps), 1))
    with pytest.raises(PreprocessError, match=message):
        resample_imu(stamps, quats, np.zeros((len(stamps), 3)), frames, frame_period=0.1)


def test_sample_frame_fps_and_tiling():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(1000, 3))
    sampled, centroid = sample_frame(points, 256)
    assert sampled.shape == (256, 3)
    assert len(np.unique(sampled, axis=0)) == 256
    np.testing.assert_allclose(sampled[0], points[0], rtol=1e-6)  # deterministic start at index 0
    np.testing.assert_allclose(centroid, points.mean(0))
    few = rng.normal(size=(100, 3))
    tiled, _ = sample_frame(few, 256)
    np.testing.assert_allclose(tiled, np.concatenate([few, few, few[:56]]).astype(np.float32))
    with pytest.raises(PreprocessError):
        sample_frame(np.zeros((0, 3)), 256)


def test_fill_missing_and_assemble_window():
    a, b = np.ones((4, 3), np.float32), 2 * np.ones((4, 3), np.float32)
    filled = fill_missing_frames([None, a, None, b])
    assert [f[0, 0] for f in filled] == [1, 1, 1, 2]
    with pytest.raises(PreprocessError):
        fill_missing_frames([None, None])
    sampled = np.stack(filled)
    centroids = np.array([[1.0, 0, 0], [1, 0, 0], [1, 0, 0], [3, 0, 0]])
    per_frame = assemble_window(sampled, centroids, "frame")
    np.testing.assert_allclose(per_frame[:, 0, 0], [0, 0, 0, -1])
    per_window = assemble_window(sampled, centroids, "window")
    np.testing.assert_allclose(per_window[:, 0, 0], [-0.5, -0.5, -0.5, 0.5])
    with pytest.raises(PreprocessError, match="centring"):
        assemble_window(sampled, centroids, "world")  # type: ignore[arg-type]
