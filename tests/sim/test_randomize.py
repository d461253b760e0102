"""Domain randomisation: every drawn knob stays in its documented range, draws are seeded, and the
spread knobs really widen bodies, gaits and IMU mounts beyond the defaults."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rt_reid.errors import ConfigError
from rt_reid_sim import SceneConfig
from rt_reid_sim.body import J, random_shape, spread_range
from rt_reid_sim.imu import make_mount
from rt_reid_sim.motion import random_style
from rt_reid_sim.randomize import RANGES, randomized_config

CONFIGS = [randomized_config(seed, layout="lipd4") for seed in range(300)]


def _values(name: str) -> np.ndarray:
    return np.array([getattr(c, name) for c in CONFIGS], dtype=object)


@pytest.mark.parametrize(
    "name",
    ["range_noise_m", "dropout", "mixed_pixels", "imu_noise_scale", "imu_mount_error_deg",
     "clock_offset_max_s", "packet_loss", "device_outages", "body_spread", "motion_spread"],
)  # fmt: skip
def test_uniform_knobs_stay_in_their_range_and_cover_it(name: str) -> None:
    lo, hi = getattr(RANGES, name)
    values = _values(name).astype(float)
    assert values.min() >= lo
    assert values.max() <= hi
    span = hi - lo
    assert values.min() < lo + 0.1 * span  # the whole range is used, not just its middle
    assert values.max() > hi - 0.1 * span


def test_sensor_room_and_crowd_draws_stay_in_range() -> None:
    lidars = {c.lidar for c in CONFIGS}
    assert lidars == {name for name, _ in RANGES.lidar}
    assert {c.columns for c in CONFIGS} == {n for n, _ in RANGES.columns}
    assert {c.cloud_layout for c in CONFIGS} == {"organized", "unorganized"}
    assert {c.imu_rate_hz for c in CONFIGS} == {r for r, _ in RANGES.imu_rate_hz}
    assert {c.behaviour for c in CONFIGS} == {"mixed", "standing"}
    standing = np.mean([c.behaviour == "standing" for c in CONFIGS])
    assert abs(standing - RANGES.standing_share) < 0.08
    for c in CONFIGS:
        assert RANGES.people[0] <= c.people <= RANGES.people[1]
        assert c.bystanders is not None
        assert c.bystanders <= RANGES.bystander_share[1] * c.people + 0.5
        assert RANGES.room_x_m[0] <= c.room_size[0] <= RANGES.room_x_m[1]
        assert RANGES.room_y_m[0] <= c.room_size[1] <= RANGES.room_y_m[1]
        assert RANGES.room_height_m[0] <= c.room_height <= RANGES.room_height_m[1]
        x, y, z = c.lidar_position
        assert RANGES.mount_height_m[0] <= z <= min(RANGES.mount_height_m[1], c.room_height - 0.3)
        assert abs(x) <= RANGES.mount_offset_share[1] * (c.room_size[0] / 2 - 1.0) + 1e-3
        assert abs(y) <= RANGES.mount_offset_share[1] * (c.room_size[1] / 2 - 1.0) + 1e-3
        roll, pitch, yaw = c.lidar_rpy_deg
        assert RANGES.roll_deg[0] <= roll <= RANGES.roll_deg[1]
        assert RANGES.pitch_deg[0] <= pitch <= RANGES.pitch_deg[1]
        assert RANGES.yaw_deg[0] <= yaw <= RANGES.yaw_deg[1]
        assert 0.0 <= c.clock_jitter_s <= 0.15 / c.imu_rate_hz
    heights = [c.lidar_position[2] for c in CONFIGS]
    assert min(heights) < 1.0  # low mounts (on a shelf) ...
    assert max(heights) > 2.3  # ... and ceiling-near ones occur


def test_draws_are_seeded_and_fixed_fields_win() -> None:
    assert randomized_config(7) == randomized_config(7)
    assert randomized_config(7) != randomized_config(8)
    fixed = randomized_config(7, people=5, duration_s=12.0, layout="watch")
    assert (fixed.people, fixed.duration_s, fixed.layout) == (5, 12.0, "watch")
    assert fixed.bystanders is not None
    assert fixed.bystanders <= 5
    drawn = randomized_config(7)
    same = {f.name for f in dataclasses.fields(SceneConfig)} - {"people", "bystanders", "layout"}
    same -= {"duration_s"}
    assert all(getattr(fixed, n) == getattr(drawn, n) for n in same)


def test_spread_widens_bodies_gaits_and_mounts() -> None:
    assert spread_range(0.85, 1.25, 1.0) == (0.85, 1.25)
    lo, hi = spread_range(0.85, 1.25, 1.5)
    assert lo == pytest.approx(0.75)
    assert hi == pytest.approx(1.35)
    rng = np.random.default_rng(0)
    default = [random_shape(rng) for _ in range(400)]
    wide = [random_shape(rng, 1.5) for _ in range(400)]
    for attr, (d_lo, d_hi) in (("height", (1.50, 1.95)), ("girth", (0.85, 1.25))):
        d = np.array([getattr(s, attr) for s in default])
        w = np.array([getattr(s, attr) for s in wide])
        assert d.min() >= d_lo
        assert d.max() <= d_hi
        w_lo, w_hi = spread_range(d_lo, d_hi, 1.5)
        assert w.min() >= w_lo
        assert w.max() <= w_hi
        assert ((w < d_lo) | (w > d_hi)).mean() > 0.15  # beyond the default range
    gait = np.array([random_style(rng, s).gait_freq for s in default])
    wide_gait = np.array([random_style(rng, s, 1.6).gait_freq for s in wide])
    assert 0.82 <= gait.min() <= gait.max() <= 1.05
    assert wide_gait.min() < 0.8
    assert wide_gait.max() > 1.07
    sway = np.array([random_style(rng, s, 1.6).sway_amp for s in wide])
    assert sway.min() >= 0.0
    assert sway.max() > 0.02
    shape = default[0]
    small = make_mount("left_forearm", shape, np.random.default_rng(1), error_deg=0.0)
    base = make_mount("left_forearm", shape, np.random.default_rng(1), error_deg=15.0)
    angle = np.degrees(np.arccos((np.trace(small.rotation.T @ base.rotation) - 1) / 2))
    assert angle > 1.0
    assert small.joint == base.joint == J["left_elbow"]


def test_spread_knobs_are_validated() -> None:
    with pytest.raises(ConfigError, match="body_spread"):
        SceneConfig(body_spread=3.0)
    with pytest.raises(ConfigError, match="motion_spread"):
        SceneConfig(motion_spread=-1.0)
    with pytest.raises(ConfigError, match="imu_mount_error_deg"):
        SceneConfig(imu_mount_error_deg=45.0)
