"""The scene interface (ARCHITECTURE.md), determinism, crowd behaviour and configuration errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rt_reid.errors import ConfigError
from rt_reid.layouts import get_layout
from rt_reid_sim import ACTIVITIES, SceneConfig, simulate_scene
from rt_reid_sim.body import random_shape
from rt_reid_sim.motion import random_style
from rt_reid_sim.world import PLANNER_DT, Planner, make_room


@pytest.fixture(scope="module")
def scene():
    return simulate_scene(
        SceneConfig(people=6, duration_s=4.0, columns=256, lidar="os1-32", seed=9)
    )


def test_scene_follows_the_contract(scene):
    cfg = scene.config
    frames = cfg.frames
    assert frames == 40
    np.testing.assert_allclose(np.diff(scene.frame_stamps), 0.1, atol=1e-6)
    assert scene.lidar_pose.shape == (4, 4)
    assert scene.lidar_pose.dtype == np.float64
    assert len(scene.people) == 6
    assert sum(p.identity is None for p in scene.people) == cfg.bystander_count == 2
    identities = [p.identity for p in scene.people if p.identity is not None]
    assert len(set(identities)) == 4
    for p in scene.people:
        assert isinstance(p.person_id, int)
        assert p.present.shape == (frames,)
        assert p.present.dtype == bool
        assert len(p.points) == frames
        assert all(x.dtype == np.float32 and x.shape[1] == 3 for x in p.points)
        assert p.skeleton.shape == (frames, 24, 3)
        assert p.skeleton.dtype == np.float32
        assert p.activity.shape == (frames,)
        assert p.activity.dtype == np.int64
        assert ((p.activity >= 0) & (p.activity < len(ACTIVITIES))).all()
        if p.identity is None:
            assert p.imu == {}
            continue
        assert re.fullmatch(r"w[0-9a-f]{8}", p.identity)
        assert tuple(p.imu) == get_layout(cfg.layout).sites
        for stream in p.imu.values():
            assert np.all(np.diff(stream.stamps) > 0)
            assert stream.stamps[0] < scene.frame_stamps[0]
            assert stream.stamps[-1] > scene.frame_stamps[-1]
            assert abs(stream.true_offset_s) <= cfg.clock_offset_max_s
            assert np.median(np.diff(stream.stamps)) == pytest.approx(1 / cfg.imu_rate_hz, rel=0.01)
            np.testing.assert_allclose(np.linalg.norm(stream.orientation_xyzw, axis=1), 1.0)
            assert (
                stream.specific_force.shape
                == stream.angular_velocity.shape
                == (len(stream.stamps), 3)
            )
    frame = scene.frame_points(3)
    assert frame.dtype == np.float32
    assert np.isfinite(frame).all()
    person_points = sum(len(p.points[3]) for p in scene.people)
    assert person_points < len(frame)
    # every person's points are part of the full frame
    full = {tuple(x) for x in frame.tolist()}
    for p in scene.people:
        assert all(tuple(x) in full for x in p.points[3].tolist())


def test_skeleton_stands_on_the_floor_and_has_realistic_height(scene):
    floor_z = -scene.lidar_pose[2, 3]
    for p in scene.people:
        feet = p.skeleton[:, [7, 8, 10, 11], 2].min(axis=1)
        np.testing.assert_array_less(np.abs(feet - floor_z), 0.15)
        head = p.skeleton[:, 15, 2] - floor_z
        assert 1.2 < np.median(head) < 1.95


def test_same_seed_gives_the_same_scene_and_another_seed_does_not():
    cfg = SceneConfig(people=3, duration_s=1.0, columns=128, lidar="vlp-16", seed=42)
    a, b = simulate_scene(cfg), simulate_scene(cfg)
    c = simulate_scene(SceneConfig(people=3, duration_s=1.0, columns=128, lidar="vlp-16", seed=43))
    for pa, pb in zip(a.people, b.people, strict=True):
        assert pa.identity == pb.identity
        np.testing.assert_array_equal(pa.skeleton, pb.skeleton)
        for xa, xb in zip(pa.points, pb.points, strict=True):
            np.testing.assert_array_equal(xa, xb)
        for site in pa.imu:
            np.testing.assert_array_equal(pa.imu[site].specific_force, pb.imu[site].specific_force)
    np.testing.assert_array_equal(a.frame_points(5), b.frame_points(5))
    assert not np.array_equal(a.people[0].skeleton, c.people[0].skeleton)


def _plan(people: int, duration: float, seed: int):
    cfg = SceneConfig(people=people, duration_s=duration, seed=seed)
    rng = np.random.default_rng(seed)
    room = make_room(cfg, rng)
    shapes = [random_shape(rng) for _ in range(people)]
    styles = [random_style(rng, s) for s in shapes]
    planner = Planner(cfg, room, styles, rng)
    return cfg, room, planner, planner.run()


def test_crowd_paths_avoid_people_and_furniture_and_cover_the_activity_library():
    _cfg, room, planner, plan = _plan(people=10, duration=120.0, seed=3)
    times = np.arange(0.0, 120.0, 0.1)
    xy = np.stack([np.stack([tr.x(times), tr.y(times)], 1) for tr in plan.trajectories], 1)
    distance = np.linalg.norm(xy[:, :, None] - xy[:, None], axis=-1)
    distance[:, np.arange(10), np.arange(10)] = np.inf
    assert distance.min() > 0.4, f"two people overlap: {distance.min():.2f} m"
    close = (distance < 0.8).any(axis=(1, 2)).mean()
    assert close > 0.01, "people never pass close to each other"
    for x0, y0, x1, y1 in room.footprints:
        inside = (xy[..., 0] > x0 + 0.05) & (xy[..., 0] < x1 - 0.05)
        inside &= (xy[..., 1] > y0 + 0.05) & (xy[..., 1] < y1 - 0.05)
        assert not inside.any(), "someone walked through furniture"
    kinds = {seg.kind for segments in plan.segments for seg in segments}
    names = {"sit_down", "sitting", "stand_up"} if "sit" in kinds else set()
    names |= kinds - {"sit"}
    assert len(names) >= 12, sorted(names)
    # several people do the same non-trivial activity at the same time
    overlaps = 0
    for i, a in enumerate(plan.segments):
        for b in plan.segments[i + 1 :]:
            for sa in a:
                for sb in b:
                    if (
                        sa.kind == sb.kind
                        and sa.kind not in ("stand", "walk")
                        and (min(sa.end, sb.end) - max(sa.start, sb.start) > 1.0)
                    ):
                        overlaps += 1
    assert overlaps >= 3
    # pairs walk side by side, in step
    follower = next(i for i, a in enumerate(planner.agents) if a.leader >= 0)
    leader = planner.agents[follower].leader
    walking = np.hypot(plan.trajectories[leader].x(times, 1), plan.trajectories[leader].y(times, 1))
    together = walking > 0.5
    assert together.mean() > 0.1
    gap = np.linalg.norm(xy[together, follower] - xy[together, leader], axis=1)
    assert np.median(gap) < 1.0
    phase = plan.trajectories[follower].phase(times) - plan.trajectories[leader].phase(times)
    wrapped = np.angle(np.exp(1j * phase[together]))
    assert np.median(np.abs(wrapped)) < 0.5
    assert PLANNER_DT == 0.05


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"people": 0}, "people"), ({"lidar": "hdl-64"}, "lidar"), ({"columns": 10}, "columns"),
     ({"bystanders": 9}, "bystanders"), ({"layout": "glove"}, "layout"),
     ({"dropout": 0.9}, "dropout"), ({"lidar_position": (9.0, 0.0, 1.0)}, "lidar_position"),
     ({"cloud_layout": "spiral"}, "cloud_layout"), ({"seed": -1}, "seed")],
)  # fmt: skip
def test_bad_configuration_is_rejected_naming_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SceneConfig(**kwargs)


def test_scene_does_not_depend_on_python_hash_randomisation():
    code = (
        "import hashlib, numpy as np\n"
        "from rt_reid_sim import SceneConfig, simulate_scene\n"
        "s = simulate_scene(SceneConfig(people=4, duration_s=0.5, columns=128, lidar='vlp-16',"
        " seed=3))\n"
        "h = hashlib.sha256()\n"
        "for p in s.people:\n"
        "    h.update(str(p.identity).encode()); h.update(p.skeleton.tobytes())\n"
        "    for x in p.points: h.update(x.tobytes())\n"
        "    for st in p.imu.values(): h.update(st.specific_force.tobytes())\n"
        "print(h.hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
        digests.add(out.stdout.strip())
    assert len(digests) == 1
