"""IMU physics: gravity at rest, gyro integration, accelerometer = second derivative of the site."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation

from rt_reid.runtime.features import GRAVITY, resample_imu, world_linear_acceleration
from rt_reid_sim import SceneConfig, simulate_scene
from rt_reid_sim.body import J, random_shape
from rt_reid_sim.imu import device_stream, ideal_imus, make_mount
from rt_reid_sim.motion import PersonMotion, Segment, Trajectory, random_style

IDEAL: dict[str, Any] = {
    "imu_noise_scale": 0.0, "clock_jitter_s": 0.0, "packet_loss": 0.0, "range_noise_m": 0.0,
    "dropout": 0.0, "mixed_pixels": 0.0,
}  # fmt: skip


@pytest.fixture(scope="module")
def scene():
    cfg = SceneConfig(people=3, bystanders=0, duration_s=6.0, columns=128, lidar="vlp-16", seed=7,
                      **IDEAL)  # fmt: skip
    return simulate_scene(cfg)


def _still_motion(seed: int) -> PersonMotion:
    """A person standing perfectly still (no sway, no idle oscillations) at (1, 2), yaw 0.7."""
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    style = dataclasses.replace(random_style(rng, shape), sway_amp=0.0, freqs=np.zeros(6))
    times = np.linspace(-5.0, 5.0, 11)
    const = [CubicSpline(times, np.full(11, v)) for v in (1.0, 2.0, 0.7, 0.0)]
    return PersonMotion(shape, style, [Segment("stand", -5.0, 5.0)], Trajectory(*const))


@pytest.mark.parametrize("site", ["left_forearm", "right_lower_leg", "left_wrist"])
def test_imu_at_rest_reads_plus_g_on_the_up_axis(site: str):
    motion = _still_motion(3)
    rng = np.random.default_rng(0)
    mount = make_mount(site, motion.shape, rng)
    times = np.arange(0.0, 1.0, 0.01)
    ideal = ideal_imus(motion, [mount], times)[0]
    cfg = SceneConfig(duration_s=1.0, **IDEAL)
    stream = device_stream(ideal, times, cfg, rng)
    rotation = Rotation.from_quat(stream.orientation_xyzw).as_matrix()
    up_in_sensor = rotation[:, 2, :]  # R^T e_z: the world's up axis in sensor coordinates
    # only the breathing of the upper body moves (a few mm/s^2 at the arms)
    np.testing.assert_allclose(stream.specific_force, GRAVITY * up_in_sensor, atol=0.03)
    axis = int(np.argmax(np.abs(up_in_sensor[0])))
    sign = np.sign(up_in_sensor[0, axis])
    assert sign * stream.specific_force[:, axis].mean() > 0.9 * GRAVITY
    np.testing.assert_allclose(stream.angular_velocity, 0.0, atol=0.05)  # breathing: 0.024 rad/s


def test_integrating_the_gyro_reproduces_orientation(scene):
    person = next(p for p in scene.people if p.identity is not None)
    for site, stream in person.imu.items():
        rotations = Rotation.from_quat(stream.orientation_xyzw)
        current = rotations[0]
        dt = np.diff(stream.stamps)
        errors = []
        for k in range(len(dt)):
            omega = 0.5 * (stream.angular_velocity[k] + stream.angular_velocity[k + 1])
            current = current * Rotation.from_rotvec(omega * dt[k])  # body-frame rate
            errors.append(np.degrees((current.inv() * rotations[k + 1]).magnitude()))
        assert len(errors) > 500
        assert max(errors) < 2.0, f"{site}: gyro integration drifts {max(errors):.2f} deg"
        total = np.degrees((rotations[0].inv() * rotations[-1]).magnitude())
        turned = np.degrees(np.abs(stream.angular_velocity).sum(axis=0).max() * dt.mean())
        assert turned > 30.0, f"{site} barely rotates ({turned:.1f} deg): a weak test ({total})"


def true_site_acceleration(person, site, stream, cfg):
    """Sample times on the motion's clock and the mounted site's acceleration there.

    An independent derivative: positions on a 4 ms grid, second differences via np.gradient,
    linearly interpolated to the sample times.
    """
    mount = person.mounts[site]
    true_times = stream.stamps - cfg.start_time_s - stream.true_offset_s
    step = 0.004
    grid = np.arange(true_times[0] - 0.02, true_times[-1] + 0.02, step)
    rotations, positions = person.motion.evaluate(grid)
    site_pos = positions[:, mount.joint] + rotations[:, mount.joint] @ mount.position
    accel = np.gradient(np.gradient(site_pos, step, axis=0), step, axis=0)
    return true_times, np.stack([np.interp(true_times, grid, accel[:, k]) for k in range(3)], 1)


def test_accelerometer_matches_second_derivative_of_the_mounted_site(scene):
    person = next(p for p in scene.people if p.identity is not None)
    cfg = scene.config
    for site, stream in person.imu.items():
        mount = person.mounts[site]
        true_times, accel_at = true_site_acceleration(person, site, stream, cfg)
        rotations, _ = person.motion.evaluate(true_times)
        sensor_rot = rotations[:, mount.joint] @ mount.rotation
        expected = np.einsum("nji,nj->ni", sensor_rot, accel_at + np.array([0.0, 0.0, GRAVITY]))
        got = stream.specific_force
        error = np.linalg.norm(got - expected, axis=1)
        dynamic = np.linalg.norm(got, axis=1) - GRAVITY
        assert np.abs(dynamic).max() > 1.0, f"{site}: no motion, a weak test"
        assert np.median(error) < 0.03, f"{site}: median error {np.median(error):.3f} m/s^2"
        assert np.percentile(error, 99) < 0.3, f"{site}: 99th pct {np.percentile(error, 99):.3f}"
        # the reported orientation differs from the true one only by a constant heading
        reported = Rotation.from_quat(stream.orientation_xyzw).as_matrix()
        offset = reported @ np.swapaxes(sensor_rot, 1, 2)
        np.testing.assert_allclose(offset[:, 2, :], np.tile([0.0, 0.0, 1.0], (len(offset), 1)),
                                   atol=1e-6)  # fmt: skip
        heading = np.unwrap(np.arctan2(offset[:, 1, 0], offset[:, 0, 0]))
        assert np.ptp(heading) < 1e-6


def test_shared_preprocessing_recovers_the_sites_true_acceleration(scene):
    """features.world_linear_acceleration (R f - g) gives the site's acceleration, heading aside."""
    person = next(p for p in scene.people if p.identity is not None)
    cfg = scene.config
    for site, stream in person.imu.items():
        _, truth = true_site_acceleration(person, site, stream, cfg)
        world = world_linear_acceleration(stream.orientation_xyzw, stream.specific_force)
        vertical_error = np.abs(world[:, 2] - truth[:, 2])
        horizontal_error = np.abs(np.hypot(*world[:, :2].T) - np.hypot(*truth[:, :2].T))
        assert np.median(vertical_error) < 0.03, site
        assert np.median(horizontal_error) < 0.03, site
        assert np.abs(truth).max() > 1.0


def test_devices_have_their_own_heading_clock_offset_and_losses():
    cfg = SceneConfig(people=2, bystanders=0, duration_s=4.0, columns=128, lidar="vlp-16", seed=8,
                      packet_loss=0.1, clock_offset_max_s=0.05)  # fmt: skip
    scene = simulate_scene(cfg)
    offsets, headings = [], []
    expected = int((cfg.duration_s + 1.2) * cfg.imu_rate_hz)
    for person in scene.people:
        rotations, _ = person.motion.evaluate(np.array([1.0]))
        for site, stream in person.imu.items():
            offsets.append(stream.true_offset_s)
            lost = 1.0 - len(stream.stamps) / expected
            assert 0.02 < lost < 0.25, f"{site}: {lost:.3f} of the samples lost"
            true_times = stream.stamps - cfg.start_time_s - stream.true_offset_s
            period = 1.0 / cfg.imu_rate_hz
            jitter = (true_times - true_times[0]) / period
            residual = jitter - np.round(jitter)
            residual = (
                residual - np.median(residual)
            ) * period  # jitter of +-3 sigma around the grid
            assert 0.0 < np.abs(residual).max() <= 3 * cfg.clock_jitter_s + 1e-4
            index = int(np.argmin(np.abs(true_times - 1.0)))
            reported = Rotation.from_quat(stream.orientation_xyzw[index]).as_matrix()
            true_rot = rotations[0, person.mounts[site].joint] @ person.mounts[site].rotation
            offset = reported @ true_rot.T
            headings.append(np.arctan2(offset[1, 0], offset[0, 0]))
    assert len(set(np.round(offsets, 6))) == len(offsets)
    assert max(np.abs(offsets)) <= 0.05
    spread = np.ptp(np.unwrap(np.sort(headings)))
    assert spread > 1.0, "device headings should be unrelated"


def test_imu_matches_its_wearer_not_others_through_the_shared_preprocessing():
    """Resampled IMU acceleration (features.resample_imu) follows the wearer's skeleton site."""
    cfg = SceneConfig(people=3, bystanders=0, duration_s=20.0, columns=128, lidar="vlp-16", seed=4)
    scene = simulate_scene(cfg)
    frames = scene.frame_stamps[1:-1]

    def site_acceleration(person, joints: tuple[str, str], fraction: float) -> np.ndarray:
        skeleton = person.skeleton.astype(np.float64)
        site = skeleton[:, J[joints[0]]] * (1 - fraction) + skeleton[:, J[joints[1]]] * fraction
        acceleration: np.ndarray = np.gradient(np.gradient(site, 0.1, axis=0), 0.1, axis=0)
        return acceleration[1:-1]

    sites = (
        ("left_lower_leg", ("left_knee", "left_ankle"), 0.4),
        ("right_forearm", ("right_elbow", "right_wrist"), 0.55),
    )
    for site, joints, fraction in sites:
        truth = [np.linalg.norm(site_acceleration(p, joints, fraction)[:, :2], axis=1)
                 for p in scene.people]  # fmt: skip
        for k, person in enumerate(scene.people):
            stream = person.imu[site]
            resampled = resample_imu(stream.stamps, stream.orientation_xyzw,
                                     stream.specific_force, frames, frame_period=0.1)  # fmt: skip
            horizontal = np.linalg.norm(resampled.world_acceleration[:, :2], axis=1)
            scores = [np.corrcoef(horizontal, other)[0, 1] for other in truth]
            assert scores[k] > 0.7, (site, k, scores)
            assert scores[k] == max(scores), (site, k, scores)


def test_a_device_can_go_silent_for_seconds_while_the_others_stream():
    cfg = SceneConfig(people=2, bystanders=0, duration_s=30.0, columns=128, lidar="vlp-16",
                      seed=12, device_outages=1.0)  # fmt: skip
    scene = simulate_scene(cfg)
    for person in scene.people:
        for site, stream in person.imu.items():
            gaps = np.diff(stream.stamps)
            assert 5.0 <= gaps.max() <= 15.1, f"{site}: longest gap {gaps.max():.2f} s"
            assert (
                stream.stamps[0]
                < scene.frame_stamps[0]
                < scene.frame_stamps[-1]
                < stream.stamps[-1]
            )
    quiet = SceneConfig(people=2, bystanders=0, duration_s=30.0, columns=128, lidar="vlp-16",
                        seed=12, packet_loss=0.0)  # fmt: skip
    for person in simulate_scene(quiet).people:
        for stream in person.imu.values():
            assert np.diff(stream.stamps).max() < 0.02
