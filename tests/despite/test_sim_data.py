"""The real simulator (its scene interface, ARCHITECTURE.md) feeds training windows, cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from despite.train import scene_store, sim_store
from despite.windows import WindowSpec, make_batch

SCENE = {
    "people": 3,
    "duration_s": 4.0,
    "lidar": "os1-32",
    "columns": 512,
    "bystanders": 1,
    "enter_leave": False,
}


def test_simulated_scene_to_windows_and_cache(tmp_path: Path) -> None:
    spec = WindowSpec(layout="watch")
    store = scene_store(3, spec, scene_options=SCENE, cache_dir=tmp_path)
    shards = list(tmp_path.glob("*.npz"))
    assert len(shards) == 1
    assert sorted(set(store.person.tolist())) == [0, 1]  # two wearers, the bystander left out
    assert store.orientation.shape[1:] == (1, 4)
    starts = store.window_starts(24)
    assert len(starts) > 10
    batch = make_batch(store, starts[:4], spec, ["pointcloud", "imu", "skeleton"])
    assert batch["imu"].shape == (4, 24, 12)
    assert np.isfinite(batch["imu"]).all()
    # frame-centred (raw centroid, before sampling) clouds sit around the origin
    assert np.abs(batch["pointcloud"].mean(axis=2)).max() < 0.3
    assert np.abs(batch["pointcloud"]).max() < 2.5
    cached = sim_store(range(3, 4), spec, scene_options=SCENE, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(cached.points, store.points)
    np.testing.assert_array_equal(cached.orientation, store.orientation)
