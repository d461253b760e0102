"""LiDAR perception stages on small synthetic scenes: background, ground, clustering, tracking."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rt_reid.errors import MessageError
from rt_reid.runtime.perception import (
    BackgroundParams,
    ClusterParams,
    GroundParams,
    LidarPerception,
    PerceptionParams,
    RoiParams,
    TrackerParams,
)
from rt_reid.runtime.perception.cluster import Clusterer
from rt_reid.runtime.perception.frontend import GroundModel, roi_mask
from tests.runtime.perception.scenes import (
    FLOOR,
    body,
    body_points,
    box,
    cast,
    frame,
    head_and_shoulders,
)

RATE = 10.0


def params(**groups):
    """Test parameters: a small room, short absorb times, explicit groups overridden."""
    base = PerceptionParams(
        roi=RoiParams(x_min=-6, x_max=6, y_min=-6, y_max=6, z_min=-2, z_max=2, min_range=0.3),
        ground=GroundParams(mode="cells", plane=(0, 0, 1, 1.5), cell_size=0.5, margin=0.1),
        background=BackgroundParams(warmup_s=1.0, absorb_s=3.0, forget_s=20.0),
    )
    return dataclasses.replace(base, **groups)


def warmed_up(perception, start=0.0, frames=12):
    """Feed empty-room frames until the background model is ready; returns the next stamp."""
    for i in range(frames):
        perception.process(frame(seed=i), start + i / RATE)
    assert perception.background.ready
    return start + frames / RATE


def walk(perception, path, start, *, seed=100):
    """Run frames with one person per path (list of (x, y) or None per frame)."""
    results = []
    for k, positions in enumerate(zip(*path, strict=True)):
        people = [body(*p) for p in positions if p is not None]
        results.append(perception.process(frame(*people, seed=seed + k), start + k / RATE))
    return results


def confirmed(result):
    return [t for t in result.tracks if t.confirmed]


def line(a, b, frames):
    return [tuple(v) for v in np.linspace(a, b, frames)]


def test_static_scene_is_learned_and_yields_nothing():
    perception = LidarPerception(params=params())
    first = perception.process(frame(seed=0), 0.0)
    assert not first.ready
    assert first.tracks == []
    stamp = warmed_up(perception)
    for i in range(10):
        result = perception.process(frame(seed=50 + i), stamp + i / RATE)
        assert result.foreground_points < 20  # a few range-noise outliers at most
        assert result.tracks == []
    assert set(result.timings) == {"background", "cluster", "track"}


def test_walking_person_is_tracked_with_points():
    perception = LidarPerception(params=params())
    stamp = warmed_up(perception)
    results = walk(perception, [line((-3, -2), (3, -2), 40)], stamp)
    tracks = confirmed(results[-1])
    assert len(tracks) == 1
    track = tracks[0]
    assert np.hypot(*(track.position[:2] - (3.0, -2.0))) < 0.3
    assert track.velocity[0] == pytest.approx(6.0 / 3.9, abs=0.3)  # 6 m in 39 frames
    assert track.points is not None
    assert len(track.points) > 300
    assert track.extent[2] > 1.5
    assert {t.track_id for r in results[5:] for t in confirmed(r)} == {track.track_id}


def test_moved_chair_becomes_background_after_absorb_time():
    perception = LidarPerception(params=params())
    stamp = warmed_up(perception)
    chair = box(2.0, 1.0, size=(0.5, 0.5, 0.9))
    counts = []
    for i in range(60):  # 6 s; absorb_s = 3 s
        counts.append(perception.process(frame(chair, seed=i), stamp + i / RATE).foreground_points)
    assert min(counts[:20]) > 150  # still foreground during the first 2 s
    assert max(counts[40:]) < 20  # background after 4 s


def _standing_person(protect_min_travel, protect_min_top=1.2):
    background = dataclasses.replace(
        params().background,
        protect_min_travel=protect_min_travel,
        protect_min_top=protect_min_top,
    )
    perception = LidarPerception(params=params(background=background))
    stamp = warmed_up(perception)
    path = line((-3, 2), (-1, 2), 20) + [(-1.0, 2.0)] * 100  # walk 2 s, stand 10 s
    return walk(perception, [path], stamp)


def test_standing_person_is_not_absorbed_while_tracked():
    results = _standing_person(protect_min_travel=0.5)
    ids = {t.track_id for t in confirmed(results[-1])}
    assert len(ids) == 1
    assert all(
        {t.track_id for t in confirmed(r) if t.points is not None} == ids for r in results[10:]
    )


def test_without_track_feedback_a_standing_person_is_absorbed():
    """The failure the feedback prevents: with protection off the person fades into background."""
    results = _standing_person(protect_min_travel=1e9, protect_min_top=1e9)
    assert results[-1].foreground_points < 50
    assert not any(t.points is not None for t in results[-1].tracks)


def _ghost_crossing(free_s, mode="voxel"):
    """Someone stands at (2, 0) through the warm-up and leaves; 2 s later another walks past."""
    background = dataclasses.replace(params().background, free_s=free_s, mode=mode)
    perception = LidarPerception(params=params(background=background))
    for i in range(12):
        perception.process(frame(body(2.0, 0.0), seed=i), i / RATE)
    assert perception.background.ready
    for i in range(20):  # the stander has left: the room is empty again
        perception.process(frame(seed=20 + i), 1.2 + i / RATE)
    path = line((2.0, -2.0), (2.0, 2.0), 30)
    results = walk(perception, [path], 3.2)
    return [
        any(t.points is not None for t in confirmed(r))
        for r, (_, y) in zip(results, path, strict=True)
        if abs(y) < 0.3
    ]


def test_range_image_reveals_what_a_warmup_stander_hid():
    """Range image: returns behind where the stander was are background, the place is free."""
    observed = _ghost_crossing(free_s=1e6, mode="range_image")
    assert len(observed) >= 4
    assert all(observed)


def test_voxels_seen_through_are_freed():
    """Voxel fallback: free-space evidence clears what the warm-up learned from a stander."""
    observed = _ghost_crossing(free_s=1.0)
    assert len(observed) >= 4
    assert all(observed)


def test_without_free_space_clearing_the_warmup_ghost_hides_people():
    observed = _ghost_crossing(free_s=1e6)
    assert sum(observed) <= len(observed) // 2  # lost right where the stander was


def test_roi_and_minimum_range():
    roi = RoiParams(x_min=-1, x_max=1, y_min=-1, y_max=1, z_min=-1, z_max=1, min_range=0.5)
    points = np.array(
        [[0.1, 0, 0], [0.7, 0, 0], [1.5, 0, 0], [0, 0, -1.2], [0, 0.9, 0.9]], np.float32
    )
    ranges = np.linalg.norm(points, axis=1)
    np.testing.assert_array_equal(roi_mask(points, ranges, roi), [False, True, False, False, True])


def test_ground_plane_height():
    roi = params().roi
    model = GroundModel(params=GroundParams(mode="plane", plane=(0, 0, 2, 3), margin=0.1), roi=roi)
    heights = model.height(np.array([[1, 1, -1.5], [0, 2, 0.25]], np.float32))
    np.testing.assert_allclose(heights, [0.0, 1.75], atol=1e-6)


def test_ground_cells_learn_a_stepped_floor():
    roi = params().roi
    model = GroundModel(params=GroundParams(mode="cells", plane=(0, 0, 1, 1.5)), roi=roi)
    rng = np.random.default_rng(0)
    low = np.c_[rng.uniform(-5, 0, (2000, 2)), np.full(2000, -1.5)]
    high = np.c_[rng.uniform(0.01, 5, (2000, 2)), np.full(2000, -1.0)]  # a 0.5 m platform
    model.learn(np.vstack([low, high]).astype(np.float32))
    probe = np.array([[-2, -2, -1.4], [2, 2, -0.9], [2, 2, 0.0]], np.float32)
    np.testing.assert_allclose(model.height(probe), [0.1, 0.1, 1.0], atol=1e-5)
    plane = GroundModel(params=GroundParams(mode="plane", plane=(0, 0, 1, 1.5)), roi=roi)
    assert plane.height(probe)[1] == pytest.approx(0.6)  # the plane cannot see the platform
    model.reset()
    assert model.height(probe)[1] == pytest.approx(0.6)  # back to the configured plane


def test_ground_cells_ignore_bodies_where_the_floor_is_out_of_view():
    """Near the sensor the lowest beam misses the floor: a cell there that only saw a body's
    legs during the warm-up must not take them for its floor."""
    roi = params().roi
    model = GroundModel(params=GroundParams(mode="cells", plane=(0, 0, 1, 1.5)), roi=roi)
    rng = np.random.default_rng(1)
    angle, radius = rng.uniform(0, 2 * np.pi, 4000), rng.uniform(3.0, 5.5, 4000)
    floor = np.c_[radius * np.cos(angle), radius * np.sin(angle), np.full(4000, -1.8)]
    legs = np.c_[rng.uniform(0.8, 1.2, (200, 2)), rng.uniform(-0.9, 0.2, 200)]  # no floor here
    model.learn(np.vstack([floor, legs]).astype(np.float32))
    probe = np.array([[1.0, 1.0, -1.0], [4.0, 0.0, -1.7]], np.float32)
    np.testing.assert_allclose(model.height(probe), [0.8, 0.1], atol=1e-5)


def test_clusterer_splits_touching_people_only_with_predictions():
    clusterer = Clusterer(params=ClusterParams(), roi=params().roi)
    a, b = body_points(2.0, 0.0, seed=1), body_points(2.0, 0.42, seed=2)
    points = np.vstack([a, b])
    heights = (points[:, 2] - FLOOR).astype(np.float32)
    merged = clusterer.detect(points, heights, np.zeros((0, 2)))
    assert len(merged) == 1
    split = clusterer.detect(points, heights, np.array([[2.0, -0.05], [2.0, 0.47]]))
    assert len(split) == 2
    centres = sorted(d.position[1] for d in split)
    assert centres == pytest.approx([0.0, 0.42], abs=0.08)
    # two predictions closer than split_min_separation are one person: no split
    assert (
        len(
            clusterer.detect(
                a, (a[:, 2] - FLOOR).astype(np.float32), np.array([[2.0, 0.0], [2.0, 0.1]])
            )
        )
        == 1
    )


def test_oversized_untracked_cluster_is_split_at_heads():
    clusterer = Clusterer(params=ClusterParams(), roi=params().roi)
    row = np.vstack([head_and_shoulders(3.0, y, seed=i) for i, y in enumerate((-0.45, 0.0, 0.45))])
    detections = clusterer.detect(row, (row[:, 2] - FLOOR).astype(np.float32), np.zeros((0, 2)))
    assert sorted(d.position[1] for d in detections) == pytest.approx([-0.45, 0.0, 0.45], abs=0.1)
    panel = cast(box(3.0, 0.0, size=(0.3, 1.4, 1.8)), seed=0, room=False)  # flat top: no heads
    assert clusterer.detect(panel, (panel[:, 2] - FLOOR).astype(np.float32), np.zeros((0, 2))) == []


def test_two_people_touching_keep_their_ids():
    perception = LidarPerception(params=params())
    stamp = warmed_up(perception)
    # approach from 1.6 m apart to 0.42 m apart (shoulder to shoulder), walk together, part
    gap = np.r_[np.linspace(1.6, 0.42, 20), np.full(30, 0.42), np.linspace(0.42, 1.6, 20)]
    x = np.linspace(-3, 3, len(gap))
    left = [(xi, -1.0 - g / 2) for xi, g in zip(x, gap, strict=True)]
    right = [(xi, -1.0 + g / 2) for xi, g in zip(x, gap, strict=True)]
    results = walk(perception, [left, right], stamp)
    ids_by_side: dict[str, set[int]] = {"left": set(), "right": set()}
    for r, (_, yl), (_, yr) in zip(results[5:], left[5:], right[5:], strict=True):
        tracks = confirmed(r)
        assert len(tracks) == 2
        for t in tracks:
            side = "left" if abs(t.position[1] - yl) < abs(t.position[1] - yr) else "right"
            ids_by_side[side].add(t.track_id)
    assert len(ids_by_side["left"]) == 1
    assert len(ids_by_side["right"]) == 1
    assert ids_by_side["left"] != ids_by_side["right"]


def test_person_behind_pillar_keeps_id():
    perception = LidarPerception(params=params())
    stamp = warmed_up(perception)
    path = line((-3, 3), (3, 3), 50)  # 1.2 m/s; the pillar hides x in [-0.6, 0.6]: 1 s
    hidden = [None if -0.6 <= p[0] <= 0.6 else p for p in path]
    assert hidden.count(None) >= 9
    results = walk(perception, [hidden], stamp)
    ids = {t.track_id for r in results[5:] for t in confirmed(r)}
    assert len(ids) == 1
    coasting = [t for r in results for t in confirmed(r) if t.points is None]
    assert coasting
    assert all(t.missed_frames > 0 for t in coasting)
    final = confirmed(results[-1])[0]
    assert final.points is not None
    assert np.hypot(*(final.position[:2] - (3.0, 3.0))) < 0.3


def test_lost_track_is_dropped_after_max_coast():
    perception = LidarPerception(params=params(tracker=TrackerParams(max_coast_s=1.0)))
    stamp = warmed_up(perception)
    path = line((-3, -3), (-1, -3), 20) + [None] * 20
    results = walk(perception, [path], stamp)
    assert len(confirmed(results[20])) == 1
    assert results[-1].tracks == []


def test_clutter_is_rejected_and_a_bystander_is_not():
    perception = LidarPerception(params=params())
    stamp = warmed_up(perception)
    results = []
    for k in range(30):
        x = -3 + 0.1 * k
        cart = box(x, -3.0, size=(0.6, 0.4, 0.5))  # too low
        panel = box(x, 3.0, size=(2.0, 0.3, 1.8))  # too wide, no track to split it
        board = box(-x, 2.0, size=(0.02, 0.6, 1.7))  # person-sized but flat: too thin
        blip = box(2.0, -2.0, size=(0.04, 0.04, 0.04))  # too few points
        person = body(x, 1.0, height=1.6)  # a short bystander
        results.append(
            perception.process(frame(cart, panel, board, blip, person, seed=k), stamp + k / RATE)
        )
    tracks = {t.track_id for r in results for t in r.tracks}
    assert len(tracks) == 1
    assert confirmed(results[-1])[0].position[1] == pytest.approx(1.0, abs=0.25)


def test_single_frame_blip_never_confirms():
    perception = LidarPerception(params=params())
    stamp = warmed_up(perception)
    results = walk(perception, [[(1.0, 1.0), None, None, None]], stamp)
    assert len(results[0].tracks) == 1
    assert not results[0].tracks[0].confirmed
    assert results[-1].tracks == []


def test_reset_restarts_warmup_and_never_reuses_ids():
    perception = LidarPerception(params=params())
    stamp = warmed_up(perception)
    before = walk(perception, [line((-3, 0.5), (-2, 0.5), 10)], stamp)
    old_ids = {t.track_id for t in before[-1].tracks}
    perception.reset()
    after = perception.process(frame(seed=1), 0.0)  # clock jumped back
    assert not after.ready
    assert after.tracks == []
    stamp = warmed_up(perception, start=0.1, frames=11)
    again = walk(perception, [line((-3, 0.5), (-2, 0.5), 10)], stamp)
    new_ids = {t.track_id for t in again[-1].tracks}
    assert new_ids
    assert not new_ids & old_ids


def test_bad_input_shape_raises_message_error():
    perception = LidarPerception(params=params())
    with pytest.raises(MessageError, match=r"\(N, 3\)"):
        perception.process(np.zeros((10, 4), np.float32), 0.0)


def test_nan_points_are_ignored():
    perception = LidarPerception(params=params())
    stamp = warmed_up(perception)
    noisy = np.vstack([frame(seed=3), np.full((50, 3), np.nan, np.float32)])
    assert perception.process(noisy, stamp).foreground_points < 20


def test_empty_and_all_nan_frames_let_tracks_coast():
    perception = LidarPerception(params=params())
    stamp = warmed_up(perception)
    results = walk(perception, [line((-3, -1), (-2, -1), 10)], stamp)
    track_id = confirmed(results[-1])[0].track_id
    empty = perception.process(np.zeros((0, 3), np.float32), stamp + 1.0)
    nans = perception.process(np.full((100, 3), np.nan, np.float32), stamp + 1.1)
    for result in (empty, nans):
        assert result.foreground_points == 0
        assert [t.track_id for t in confirmed(result)] == [track_id]
        assert confirmed(result)[0].points is None
