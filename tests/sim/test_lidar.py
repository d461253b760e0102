"""LiDAR physics: returns lie on surfaces, occlusion, beam tables, per-person labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import open3d as o3d
import pytest

from rt_reid_sim import SceneConfig, simulate_scene
from rt_reid_sim.body import body_mesh, euler_matrices, forward_kinematics, random_shape
from rt_reid_sim.lidar import PRESETS, Lidar
from rt_reid_sim.world import Room, _structure

EXACT: dict[str, Any] = {"range_noise_m": 0.0, "dropout": 0.0, "mixed_pixels": 0.0}


@pytest.fixture(scope="module")
def exact_scene():
    return simulate_scene(
        SceneConfig(people=5, duration_s=1.0, columns=256, lidar="os1-64", seed=11, **EXACT)
    )


def _distance_to(vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor.from_numpy(vertices.astype(np.float32)),
        o3d.core.Tensor.from_numpy(triangles.astype(np.uint32)),
    )
    distance: np.ndarray = scene.compute_distance(
        o3d.core.Tensor.from_numpy(points.astype(np.float32))
    ).numpy()
    return distance


def test_every_return_lies_on_a_body_or_room_surface(exact_scene):
    room_vertices, room_triangles = exact_scene.room_mesh()
    checked_people = 0
    for t in (0, 5, 9):
        points = exact_scene.frame_points(t)
        assert len(points) > 0.9 * 64 * 256  # a closed room returns almost every ray
        vertices, triangles = [room_vertices], [room_triangles]
        count = len(room_vertices)
        for _, body_vertices, body_triangles in exact_scene.body_meshes(t):
            vertices.append(body_vertices)
            triangles.append(body_triangles + count)
            count += len(body_vertices)
        distance = _distance_to(np.concatenate(vertices), np.concatenate(triangles), points)
        assert distance.max() < 2e-3, f"frame {t}: a return {distance.max():.4f} m off any surface"
        # each person's labelled returns lie on that person's own body
        meshes = {pid: (v, tri) for pid, v, tri in exact_scene.body_meshes(t)}
        for person in exact_scene.people:
            own = person.points[t]
            if person.present[t] and len(own):
                d = _distance_to(*meshes[person.person_id], own)
                assert d.max() < 2e-3
                checked_people += 1
    assert checked_people >= 6


def test_noise_moves_returns_off_the_surface_by_about_sigma():
    cfg = SceneConfig(people=2, duration_s=0.5, columns=256, seed=11, range_noise_m=0.02)
    scene = simulate_scene(cfg)
    vertices, triangles = scene.room_mesh()
    points = scene.frame_points(0)
    labels = scene.frame_returns(0).labels
    room_points = points[labels[np.isfinite(scene.frame_returns(0).xyz[:, 0])] < 0]
    distance = _distance_to(vertices, triangles, room_points)
    assert 0.005 < np.median(distance) < 0.03


def _person_at(x: float, y: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Body mesh (room frame) of a person standing upright at (x, y) facing the sensor."""
    shape = random_shape(np.random.default_rng(seed))
    yaw = np.arctan2(-y, -x)
    root = euler_matrices(np.array([[0.0, 0.0, yaw]]))
    rotations, positions = forward_kinematics(
        shape.offsets, root, np.tile(np.eye(3), (1, 24, 1, 1))
    )
    positions += np.array([x, y, shape.pelvis_height])
    mesh = body_mesh(shape)
    return mesh.pose(rotations[0], positions[0]), mesh.triangles


def test_an_occluded_person_gets_fewer_returns():
    pose = np.eye(4)
    pose[:3, 3] = (0.0, 0.0, 1.2)
    lidar = Lidar(PRESETS["os1-64"], 1024, pose)
    room = Room(12.0, 9.0, 3.0, 0.0, _structure(12.0, 9.0, 3.0, 0.0), [], [])
    lidar.set_room(*room.mesh())
    far = _person_at(4.5, 0.0, seed=1)
    near = _person_at(2.0, 0.1, seed=2)
    alone = lidar.scan([(far[0], far[1], 0.3)])
    together = lidar.scan([(far[0], far[1], 0.3), (near[0], near[1], 0.3)])
    visible_alone = int((alone.labels == 0).sum())
    visible_behind = int((together.labels == 0).sum())
    assert visible_alone > 300
    assert visible_behind < 0.5 * visible_alone, (visible_alone, visible_behind)
    assert int((together.labels == 1).sum()) > visible_alone  # the near person is seen large
    # moving the near person aside removes the occlusion again
    aside = _person_at(2.0, 2.5, seed=2)
    apart = lidar.scan([(far[0], far[1], 0.3), (aside[0], aside[1], 0.3)])
    assert int((apart.labels == 0).sum()) == visible_alone


@pytest.mark.parametrize(
    ("preset", "beams", "top", "spacing"),
    [("vlp-16", 16, 15.0, 2.0), ("os1-32", 32, 22.5, 45 / 31), ("os1-64", 64, 22.5, 45 / 63),
     ("os1-128", 128, 22.5, 45 / 127)],
)  # fmt: skip
def test_beam_elevations_match_the_preset(preset: str, beams: int, top: float, spacing: float):
    cfg = SceneConfig(people=1, bystanders=1, duration_s=0.5, columns=128, lidar=preset, seed=2,
                      **EXACT)  # fmt: skip
    scene = simulate_scene(cfg)
    returns = scene.frame_returns(0)
    xyz = returns.xyz.reshape(beams, 128, 3)
    elevation = np.degrees(np.arctan2(xyz[..., 2], np.hypot(xyz[..., 0], xyz[..., 1])))
    measured = np.nanmedian(elevation, axis=1)
    expected = top - spacing * np.arange(beams)
    np.testing.assert_allclose(measured, expected, atol=1e-3)
    spread = np.nanmax(elevation, axis=1) - np.nanmin(elevation, axis=1)
    assert spread.max() < 1e-3  # every point of a row lies on its beam's cone
    azimuth = np.degrees(np.arctan2(xyz[0, :, 1], xyz[0, :, 0]))
    steps = np.diff(np.unwrap(np.radians(azimuth)))
    np.testing.assert_allclose(np.degrees(steps), -360.0 / 128, atol=1e-3)  # clockwise sweep


def test_people_outside_the_room_have_no_returns_and_present_people_are_seen():
    cfg = SceneConfig(people=8, duration_s=30.0, columns=256, lidar="os1-32", seed=5)
    scene = simulate_scene(cfg)
    counts = np.array([[len(p.points[t]) for t in range(cfg.frames)] for p in scene.people])
    present = np.array([p.present for p in scene.people])
    assert (counts[~present] == 0).all()
    assert (~present).any(), "this seed should have someone entering or leaving"
    assert np.mean(counts[present] > 0) > 0.8


def test_bodies_are_posed_when_the_sweep_passes_them(exact_scene):
    cfg = exact_scene.config
    column_period = 1.0 / (cfg.frame_rate_hz * cfg.columns)
    checked = 0
    for t in range(cfg.frames):
        returns = exact_scene.frame_returns(t)
        columns = np.flatnonzero(returns.labels >= 0) % cfg.columns
        labels = returns.labels[returns.labels >= 0]
        for person in exact_scene.people:
            mine = columns[labels == person.person_id]
            if len(mine) < 20 or np.ptp(mine) > cfg.columns / 2:  # skip the wrap-around column
                continue
            offset = person.scan_times[t] - t / cfg.frame_rate_hz
            assert 0.0 <= offset < 1.0 / cfg.frame_rate_hz
            assert abs(np.median(mine) * column_period - offset) < 6 * column_period
            checked += 1
    assert checked > 20


def test_mixed_pixels_float_between_a_silhouette_and_the_background():
    cfg = SceneConfig(people=5, duration_s=1.0, columns=512, lidar="os1-64", seed=11,
                      range_noise_m=0.0, dropout=0.0, mixed_pixels=0.5)  # fmt: skip
    scene = simulate_scene(cfg)
    room_vertices, room_triangles = scene.room_mesh()
    floating = 0
    for t in (0, 5):
        returns = scene.frame_returns(t)
        valid = np.isfinite(returns.ranges)
        vertices, triangles, count = [room_vertices], [room_triangles], len(room_vertices)
        for _, body_vertices, body_triangles in scene.body_meshes(t):
            vertices.append(body_vertices)
            triangles.append(body_triangles + count)
            count += len(body_vertices)
        distance = _distance_to(np.concatenate(vertices), np.concatenate(triangles),
                                returns.xyz[valid])  # fmt: skip
        off = distance > 0.02
        floating += int(off.sum())
        # floating returns sit next to a body return in the same beam (a silhouette edge)
        rays = np.flatnonzero(valid)[off]
        column = rays % cfg.columns
        neighbours = [rays - column + (column + d) % cfg.columns for d in (-1, 1)]
        static = scene.lidar.static_ranges
        beside_body = np.zeros(len(rays), dtype=bool)
        for n in neighbours:
            beside_body |= returns.ranges[n] < static[n] - 0.3
        assert beside_body.mean() > 0.9
        assert (returns.ranges[rays] < static[rays] + 1e-3).mean() > 0.5
        # labelled person points stay within 0.3 m of the body they belong to
        meshes = {pid: (v, tri) for pid, v, tri in scene.body_meshes(t)}
        for person in scene.people:
            if person.present[t] and len(person.points[t]):
                assert _distance_to(*meshes[person.person_id], person.points[t]).max() < 0.31
    assert floating > 20
