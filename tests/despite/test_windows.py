"""Training windows are built with the shared preprocessing; shards, batches, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from despite.windows import (
    Augmentation,
    DataError,
    FrameStore,
    WindowSpec,
    make_batch,
    person_frames,
    scene_frames,
    window_labels,
)
from rt_reid.runtime.features import assemble_window, imu_features, resample_imu, sample_frame
from tests.despite.fakes import fake_scene


@pytest.fixture(scope="module")
def store() -> FrameStore:
    return scene_frames(fake_scene(), WindowSpec(), scene_index=7)


def test_scene_frames_skip_bystanders_and_fill_gaps(store: FrameStore) -> None:
    assert sorted(set(store.person.tolist())) == [0, 1, 2]  # the bystander (3) has no IMU
    assert len(store) == 3 * 40
    assert set(store.scene.tolist()) == {7}
    assert store.points.shape == (120, 256, 3)
    assert store.orientation.shape == (120, 4, 4)
    # frames 5 and 6 had no points: filled from frame 4, centroid included
    assert not store.observed[5]
    assert not store.observed[6]
    np.testing.assert_array_equal(store.points[5], store.points[4])
    np.testing.assert_array_equal(store.centroids[6], store.centroids[4])


def test_frames_match_shared_preprocessing(store: FrameStore) -> None:
    scene = fake_scene()
    person = scene.people[1]
    sampled, centroid = sample_frame(person.points[10], 256)
    np.testing.assert_array_equal(store.points[40 + 10], sampled)
    np.testing.assert_allclose(store.centroids[40 + 10], centroid)
    site = "left_forearm"
    stream = person.imu[site]
    ref = resample_imu(
        stream.stamps,
        stream.orientation_xyzw,
        stream.specific_force,
        scene.frame_stamps,
        frame_period=0.1,
    )
    block = 2  # left_forearm is the third lipd4 block (official order)
    np.testing.assert_allclose(store.acceleration[40:80, block], ref.world_acceleration)


def test_window_starts_respect_tracks_and_stride(store: FrameStore) -> None:
    starts = store.window_starts(24)
    assert len(starts) > 0
    assert np.all(store.track[starts] == store.track[starts + 23])
    assert np.all(store.observed[starts])
    strided = store.window_starts(24, stride=4)
    assert set(strided.tolist()) <= set(starts.tolist())
    assert len(strided) < len(starts)


def test_batch_uses_shared_functions_and_is_heading_invariant(store: FrameStore) -> None:
    starts = store.window_starts(24)[:3]
    spec = WindowSpec(centring="window")
    batch = make_batch(store, starts, spec, ["pointcloud", "imu", "skeleton"])
    assert batch["pointcloud"].shape == (3, 24, 256, 3)
    assert batch["imu"].shape == (3, 24, 48)
    assert batch["skeleton"].shape == (3, 24, 24, 3)
    idx = starts[0] + np.arange(24)
    np.testing.assert_array_equal(
        batch["pointcloud"][0], assemble_window(store.points[idx], store.centroids[idx], "window")
    )
    # a different unknown heading per device does not change the encoder input
    yaw = Rotation.from_euler("z", [[0.7], [-2.0], [1.1], [3.0]])  # one per site
    orient = store.orientation[idx]
    rotated_q = np.stack(
        [(yaw[s] * Rotation.from_quat(orient[:, s])).as_quat() for s in range(4)], 1
    )
    rotated_a = np.stack([yaw[s].apply(store.acceleration[idx][:, s]) for s in range(4)], 1)
    np.testing.assert_allclose(imu_features(rotated_q, rotated_a), batch["imu"][0], atol=1e-5)
    assert window_labels(store, starts, spec).shape == (3,)


def test_augmentation_is_seeded_and_official_ranges(store: FrameStore) -> None:
    starts = store.window_starts(24)[:4]
    spec = WindowSpec()
    plain = make_batch(store, starts, spec, ["pointcloud", "imu"])
    aug = Augmentation()
    a = make_batch(
        store, starts, spec, ["pointcloud", "imu"], augment=aug, rng=np.random.default_rng(1)
    )
    b = make_batch(
        store, starts, spec, ["pointcloud", "imu"], augment=aug, rng=np.random.default_rng(1)
    )
    np.testing.assert_array_equal(a["pointcloud"], b["pointcloud"])
    assert not np.allclose(a["pointcloud"], plain["pointcloud"])
    ratio = np.abs(a["imu"]).mean() / np.abs(plain["imu"]).mean()
    assert 0.9 < ratio < 1.15
    with pytest.raises(DataError, match="random generator"):
        make_batch(store, starts, spec, ["imu"], augment=aug)


def test_shard_round_trip_and_spec_check(store: FrameStore, tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    store.save(path, WindowSpec())
    loaded = FrameStore.load(path, WindowSpec(centring="window"))  # centring is applied later
    np.testing.assert_array_equal(loaded.points, store.points)
    with pytest.raises(DataError, match="built for"):
        FrameStore.load(path, WindowSpec(points_per_frame=128))
    with pytest.raises(DataError, match="cannot read"):
        FrameStore.load(tmp_path / "missing.npz", WindowSpec())


def test_watch_layout_and_bad_specs() -> None:
    scene = fake_scene(people=1, layout="watch", bystander=False)
    store = person_frames(scene, scene.people[0], WindowSpec(layout="watch"), scene_index=0)
    assert store is not None
    assert store.orientation.shape[1] == 1
    with pytest.raises(DataError, match="lacks IMU sites"):
        person_frames(scene, scene.people[0], WindowSpec(layout="lipd4"), scene_index=0)
    with pytest.raises(DataError, match="even"):
        WindowSpec(window_frames=23)
    with pytest.raises(DataError, match="centring"):
        WindowSpec(centring="track")  # type: ignore[arg-type]
