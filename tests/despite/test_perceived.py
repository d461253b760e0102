"""Training on what the runtime sees: perception-cut frames equal the runtime's track windows,
and co-temporal batches (one window per person, pairs walking in step together)."""

from __future__ import annotations

import numpy as np
import pytest

from despite.perceived import (
    GATE_M,
    MIN_POINTS,
    perceive_scene,
    perceived_frames,
)
from despite.train import WindowSampler, validation_starts
from despite.windows import FrameStore, WindowSpec, make_batch, scene_frames
from rt_reid.runtime.windows import TrackWindows
from rt_reid_sim import SceneConfig, simulate_scene
from rt_reid_sim.scene import room_perception_params

SPEC = WindowSpec(window_frames=24, points_per_frame=64, centring="window", layout="lipd4")


@pytest.fixture(scope="module")
def scene():
    cfg = SceneConfig(people=4, bystanders=1, duration_s=7.0, columns=512, lidar="os1-32",
                      seed=21, enter_leave=False)  # fmt: skip
    return simulate_scene(cfg)


def test_perceived_windows_are_the_runtime_track_windows(scene) -> None:
    params = room_perception_params(scene)
    runs = perceive_scene(scene, params)
    assert runs, "the runtime perception found nobody"
    for (_track, person), frames in runs.items():
        for t in frames:  # every associated frame is within the gate of that person's pelvis
            assert scene.people[person].present[t]
    perceived, truth = perceived_frames(scene, SPEC, scene_index=3, params=params)
    assert perceived is not None
    assert truth is not None
    assert set(np.unique(perceived.person)) <= set(np.unique(truth.person))
    starts = perceived.window_starts(SPEC.window_frames)
    assert len(starts) > 0
    # rebuild one perceived track with the runtime's TrackWindows and compare a window
    start = int(starts[len(starts) // 2])
    person, first = int(perceived.person[start]), int(perceived.time[start])
    key = next(
        k for k, frames in runs.items()
        if k[1] == person and first in frames and first + SPEC.window_frames - 1 in frames
    )  # fmt: skip
    windows = TrackWindows(window_frames=SPEC.window_frames, points_per_frame=SPEC.points_per_frame,
                           centring=SPEC.centring, lag_frames=0, min_observed_fraction=0.5,
                           min_points=MIN_POINTS)  # fmt: skip
    end = first + SPEC.window_frames - 1
    for t in range(first, end + 1):
        windows.update(t, {key[0]: runs[key][t]})
    runtime = windows.windows([key[0]], end)[0]
    trained = make_batch(perceived, np.array([start]), SPEC, ["pointcloud"])["pointcloud"][0]
    np.testing.assert_allclose(trained, runtime, atol=1e-5)
    # the wearer's IMU and skeleton come with the perceived points
    row = int(np.flatnonzero((truth.person == person) & (truth.time == first))[0])
    np.testing.assert_array_equal(perceived.skeleton[start], truth.skeleton[row])
    np.testing.assert_array_equal(perceived.acceleration[start], truth.acceleration[row])
    assert GATE_M == 0.5


def _store(persons: int, times: int, perceived_copies: dict[int, int]) -> FrameStore:
    """A synthetic store: every person at every time, some with extra perceived tracks."""
    rows = []
    for p in range(persons):
        rows += [(p, t, False) for t in range(times)]
        for _ in range(perceived_copies.get(p, 0)):
            rows += [(p, t, True) for t in range(times)]
    n = len(rows)
    person = np.array([r[0] for r in rows])
    return FrameStore(
        points=np.zeros((n, 4, 3), np.float32), centroids=np.zeros((n, 3)),
        orientation=np.zeros((n, 1, 4)), acceleration=np.zeros((n, 1, 3)),
        skeleton=np.zeros((n, 24, 3), np.float32), activity=np.zeros(n, np.int64),
        observed=np.ones(n, bool), track=np.cumsum(np.r_[0, np.diff([r[1] for r in rows]) < 0]),
        scene=np.zeros(n, np.int64), person=person, time=np.array([r[1] for r in rows]),
        perceived=np.array([r[2] for r in rows]),
    )  # fmt: skip


def test_cotemporal_batches_hold_one_window_per_person_preferring_perceived() -> None:
    store = _store(persons=5, times=30, perceived_copies={0: 1, 1: 2})  # person 1 split in two
    starts = store.window_starts(4)
    for gt_share, want_perceived in ((0.0, True), (1.0, False)):
        sampler = WindowSampler(store, starts, batch_size=10, batching="scene",
                                rng=np.random.default_rng(0), gt_share=gt_share)  # fmt: skip
        for _ in range(20):
            batch = sampler.sample()
            assert len(batch) == 10
            assert len(set(batch.tolist())) == 10
            groups = {(int(store.scene[s]), int(store.time[s])) for s in batch}
            assert len(groups) == 2  # two co-temporal groups of 5 people fill 10 slots
            for group in groups:
                members = [s for s in batch if (store.scene[s], store.time[s]) == group]
                people = [int(store.person[s]) for s in members]
                assert sorted(people) == list(range(5))  # each person once
                for s in members:
                    if store.person[s] in (0, 1):
                        assert store.perceived is not None
                        assert bool(store.perceived[s]) is want_perceived
    assert store.perceived is not None
    val = validation_starts(store, WindowSpec(window_frames=4, layout="lipd4"), stride=5)
    assert bool(store.perceived[val].all())
    assert set((store.time[val] % 5).tolist()) == {0}
    keys = list(zip(store.time[val].tolist(), store.person[val].tolist(), strict=True))
    assert len(keys) == len(set(keys))  # a split person is validated once per start


def test_pairs_walking_in_step_are_batched_together() -> None:
    cfg = SceneConfig(people=8, bystanders=0, duration_s=4.0, columns=256, lidar="os1-32",
                      seed=5, enter_leave=False)  # fmt: skip
    scene = simulate_scene(cfg)
    pairs = {(p.person_id, p.partner) for p in scene.people if p.partner >= 0}
    assert len(pairs) == 2 * (cfg.people // 4)  # both directions of 2 pairs
    for a, b in pairs:
        assert scene.people[b].partner == a
    store = scene_frames(scene, SPEC, scene_index=0)
    starts = store.window_starts(SPEC.window_frames)
    sampler = WindowSampler(store, starts, batch_size=16, batching="scene",
                            rng=np.random.default_rng(1))  # fmt: skip
    present: dict[int, set[int]] = {}
    for s in starts:
        present.setdefault(int(store.time[s]), set()).add(int(store.person[s]))
    together = 0
    for _ in range(10):
        batch = sampler.sample()
        by_time: dict[int, set[int]] = {}
        for s in batch:
            by_time.setdefault(int(store.time[s]), set()).add(int(store.person[s]))
        for t, members in list(by_time.items())[:-1]:  # the last group may be cut off
            assert members == present[t]  # everyone with a window then, partners included
            together += sum(a in members and b in members for a, b in pairs)
    assert together > 0
