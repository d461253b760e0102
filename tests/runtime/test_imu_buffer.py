"""IMU buffers: reordering, duplicates, NaN, gaps, unknown devices, clock jumps, offsets."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from rt_reid.runtime.features import GRAVITY, imu_features, resample_imu
from rt_reid.runtime.imu_buffer import PENDING_FLUSH, DeviceBuffer, ImuStore, ImuStoreParams
from rt_reid.runtime.imu_sample import ImuBatch, ImuSample

PARAMS = ImuStoreParams(
    buffer_s=5.0, max_rate_hz=400.0, max_gap_s=0.15, clock_jump_s=1.0, silence_s=1.0
)
SITES = ("left_wrist",)
FRAMES = np.arange(1.0, 3.4, 0.1)  # 24 frame stamps


def _stream(rate: float = 100.0, t0: float = 0.0, t1: float = 4.0, seed: int = 0):
    """Random smooth motion: stamps, quaternions, specific force, gyro."""
    rng = np.random.default_rng(seed)
    stamps = np.arange(t0, t1, 1.0 / rate)
    angles = np.cumsum(rng.normal(0, 0.05, size=(len(stamps), 3)), axis=0)
    quats = Rotation.from_euler("xyz", angles).as_quat()
    force = rng.normal(0, 1.0, size=(len(stamps), 3)) + np.array([0.0, 0.0, GRAVITY])
    gyro = rng.normal(0, 0.1, size=(len(stamps), 3))
    return stamps, quats, force, gyro


def _store(**offsets: float) -> ImuStore:
    return ImuStore(
        identities={"alice": SITES},
        params=PARAMS,
        clock_offsets_s={("alice", site): value for site, value in offsets.items()},
    )


def _sample(name: str, stamp: float, q, f, w) -> ImuSample:
    return ImuSample(name, SITES[0], float(stamp), tuple(q), tuple(f), tuple(w))


def _feed(store: ImuStore, stamps, quats, force, gyro, *, order=None, name: str = "alice") -> None:
    for i in order if order is not None else range(len(stamps)):
        store.add(_sample(name, stamps[i], quats[i], force[i], gyro[i]))


def _reference(stamps, quats, force) -> np.ndarray:
    r = resample_imu(stamps, quats, force, FRAMES, frame_period=0.1)
    return imu_features(r.orientation_xyzw[:, None], r.world_acceleration[:, None])


def test_features_equal_the_shared_preprocessing() -> None:
    stamps, quats, force, gyro = _stream()
    store = _store()
    _feed(store, stamps, quats, force, gyro)
    out = store.features("alice", FRAMES, frame_period=0.1, acc_unit=GRAVITY)
    assert not isinstance(out, str)
    assert out.shape == (24, 12)
    np.testing.assert_allclose(out, _reference(stamps, quats, force), atol=1e-5)


def test_reordered_and_duplicated_samples_give_the_same_features() -> None:
    stamps, quats, force, gyro = _stream()
    rng = np.random.default_rng(1)
    order = np.arange(len(stamps))
    for start in range(0, len(order) - 5, 5):  # shuffle within blocks of 5 samples (50 ms)
        rng.shuffle(order[start : start + 5])
    order = np.repeat(order, np.where(order % 7 == 0, 2, 1))  # every 7th sample delivered twice
    store = _store()
    _feed(store, stamps, quats, force, gyro, order=order)
    out = store.features("alice", FRAMES, frame_period=0.1, acc_unit=GRAVITY)
    assert not isinstance(out, str)
    np.testing.assert_allclose(out, _reference(stamps, quats, force), atol=1e-5)
    stats = store.stats()[("alice", SITES[0])]
    assert stats.rejected["duplicate"] == len(np.arange(len(stamps))[::7])
    assert stats.resets == 0


def test_nan_and_zero_quaternion_are_rejected_and_counted() -> None:
    store = _store()
    q, f, w = (0, 0, 0, 1), (0, 0, GRAVITY), (0, 0, 0)
    store.add(_sample("alice", 1.0, q, (np.nan, 0, 0), w))
    store.add(_sample("alice", float("nan"), q, f, w))
    store.add(_sample("alice", 1.0, (0, 0, 0, 0), f, w))
    store.add(_sample("alice", 1.0, q, f, (0, 0)))
    stats = store.stats()[("alice", SITES[0])]
    assert stats.rejected == {"non_finite": 2, "zero_quaternion": 1, "bad_shape": 1}
    assert stats.accepted == 0
    batch = ImuBatch(
        "alice",
        SITES[0],
        np.array([1.0, np.nan, 1.0, 2.0]),
        np.array([q, q, (0, 0, 0, 0), q], dtype=np.float64),
        np.array([(np.nan, 0, 0), f, f, f], dtype=np.float64),
        np.zeros((4, 3)),
    )
    assert store.add_batch(batch) == {"non_finite": 2, "zero_quaternion": 1}
    wrong = ImuBatch(
        "alice", SITES[0], np.zeros(2), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3))
    )
    assert store.add_batch(wrong) == {"bad_shape": 2}
    stats = store.stats()[("alice", SITES[0])]
    assert stats.rejected == {"non_finite": 4, "zero_quaternion": 2, "bad_shape": 3}
    assert stats.accepted == 1


def test_unknown_device_is_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rt_reid.runtime.imu_buffer")
    store = _store()
    for k in range(5):
        store.add(
            ImuSample("mallory", "left_wrist", k * 0.01, (0, 0, 0, 1), (0, 0, 9.8), (0, 0, 0))
        )
    batch = ImuBatch(
        "mallory", "left_wrist", np.zeros(3), np.zeros((3, 4)), np.zeros((3, 3)), np.zeros((3, 3))
    )
    assert store.add_batch(batch) == {"unknown_device": 3}
    empty = ImuBatch(
        "eve", "left_wrist", np.zeros(0), np.zeros((0, 4)), np.zeros((0, 3)), np.zeros((0, 3))
    )
    assert store.add_batch(empty) == {}
    assert store.unknown_devices == {("mallory", "left_wrist"): 8}
    assert caplog.text.count("mallory/left_wrist") == 1


def test_gap_makes_window_incomplete_until_data_cover_it() -> None:
    stamps, quats, force, gyro = _stream(t1=5.4)
    keep = (stamps < 2.0) | (stamps > 2.3)  # 300 ms of lost packets inside the window
    store = _store()
    _feed(store, stamps[keep], quats[keep], force[keep], gyro[keep])
    assert store.features("alice", FRAMES, frame_period=0.1, acc_unit=GRAVITY) == "left_wrist:gap"
    late = FRAMES + 1.5  # a later window after the gap is complete again
    assert not isinstance(store.features("alice", late, frame_period=0.1, acc_unit=GRAVITY), str)


def test_window_not_covered_yet() -> None:
    stamps, quats, force, gyro = _stream(t1=3.0)
    store = _store()
    assert (
        store.features("alice", FRAMES, frame_period=0.1, acc_unit=GRAVITY)
        == "left_wrist:no_samples"
    )
    _feed(store, stamps, quats, force, gyro)
    assert (
        store.features("alice", FRAMES, frame_period=0.1, acc_unit=GRAVITY)
        == "left_wrist:ends_early"
    )
    assert (
        store.features("alice", FRAMES - 1.5, frame_period=0.1, acc_unit=GRAVITY)
        == "left_wrist:starts_late"
    )


def test_clock_jump_backwards_resets_the_buffer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rt_reid.runtime.imu_buffer")
    stamps, quats, force, gyro = _stream()
    store = _store()
    _feed(store, stamps + 100.0, quats, force, gyro)  # old clock
    _feed(store, stamps, quats, force, gyro)  # device rebooted: clock starts again
    stats = store.stats()[("alice", SITES[0])]
    assert stats.resets == 1
    assert "clock jumped back" in caplog.text
    out = store.features("alice", FRAMES, frame_period=0.1, acc_unit=GRAVITY)
    assert not isinstance(out, str)
    np.testing.assert_allclose(out, _reference(stamps, quats, force), atol=1e-5)


def test_configured_clock_offset_is_removed() -> None:
    stamps, quats, force, gyro = _stream()
    store = _store(left_wrist=0.037)
    _feed(store, stamps + 0.037, quats, force, gyro)  # device clock runs 37 ms ahead
    out = store.features("alice", FRAMES, frame_period=0.1, acc_unit=GRAVITY)
    assert not isinstance(out, str)
    np.testing.assert_allclose(out, _reference(stamps, quats, force), atol=1e-5)


def test_memory_is_bounded_and_old_samples_expire() -> None:
    buffer = DeviceBuffer(horizon_s=2.0, max_rate_hz=100.0, clock_jump_s=1.0)
    for k in range(5000):  # 50 s at 100 Hz
        buffer.queue(k * 0.01, (0, 0, 0, 1, 0, 0, 9.8, 0, 0, 0))
    assert len(buffer) <= 201 + 1024
    assert buffer.samples(0.0, 1.0, max_gap_s=0.1) == "starts_late"
    assert not isinstance(buffer.samples(48.0, 49.0, max_gap_s=0.1), str)
    assert len(buffer) <= 201
    assert buffer.stats.rejected["too_old"] == 0  # expiry is not a rejection
    stale = DeviceBuffer(horizon_s=2.0, max_rate_hz=100.0, clock_jump_s=10.0)
    for k in range(500):
        stale.queue(k * 0.01, (0, 0, 0, 1, 0, 0, 9.8, 0, 0, 0))
    # 4.5 s late: beyond the 2 s horizon but not a clock jump (10 s)
    late = stale.add(np.array([0.505]), np.array([[0, 0, 0, 1, 0, 0, 9.8, 0, 0, 0]], float))
    assert late == {"too_old": 1}
    assert stale.stats.rejected["too_old"] == 1


def test_overflow_beyond_max_rate_is_counted() -> None:
    buffer = DeviceBuffer(horizon_s=1.0, max_rate_hz=50.0, clock_jump_s=1.0)
    for k in range(300):  # 300 Hz for 1 s into a 50 Hz buffer
        buffer.queue(k / 300.0, (0, 0, 0, 1, 0, 0, 9.8, 0, 0, 0))
    buffer.samples(0.5, 0.9, max_gap_s=0.5)
    assert buffer.stats.rejected["overflow"] > 0
    assert len(buffer) <= 51


def test_silence_is_relative_to_the_frame_stamp() -> None:
    store = _store()
    assert store.is_silent("alice", 0.0)
    store.add(_sample("alice", 10.0, (0, 0, 0, 1), (0, 0, GRAVITY), (0, 0, 0)))
    assert not store.is_silent("alice", 10.5)
    assert store.is_silent("alice", 11.5)


def test_concurrent_ingestion_from_threads() -> None:
    names = ("alice", "bob")
    streams = {name: _stream(seed=k) for k, name in enumerate(names)}
    store = ImuStore(identities=dict.fromkeys(names, SITES), params=PARAMS, clock_offsets_s={})

    def feed(name: str) -> None:
        _feed(store, *streams[name], name=name)

    threads = [threading.Thread(target=feed, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for _ in range(20):  # the processing thread reads while samples arrive
        store.features("alice", FRAMES, frame_period=0.1, acc_unit=GRAVITY)
    for thread in threads:
        thread.join()
    for name in names:
        stamps, quats, force, _ = streams[name]
        out = store.features(name, FRAMES, frame_period=0.1, acc_unit=GRAVITY)
        assert not isinstance(out, str)
        np.testing.assert_allclose(out, _reference(stamps, quats, force), atol=1e-5)
        assert store.stats()[(name, SITES[0])].accepted == len(stamps)


def test_sliding_windows_reuse_resampled_frames_exactly() -> None:
    stamps, quats, force, gyro = _stream(t1=5.0)
    store = _store()
    _feed(store, stamps, quats, force, gyro)
    for shift in range(12):  # the pipeline's sliding windows: one new frame each time
        frames = FRAMES + 0.1 * shift
        out = store.features("alice", frames, frame_period=0.1, acc_unit=GRAVITY)
        assert not isinstance(out, str)
        r = resample_imu(stamps, quats, force, frames, frame_period=0.1)
        expected = imu_features(r.orientation_xyzw[:, None], r.world_acceleration[:, None])
        np.testing.assert_allclose(out, expected, atol=1e-5)
    # The device restarts its clock (jump back to 0) and sends other data for the same stamps:
    # the cached resamples of the old samples must not be reused.
    other_q, other_f = quats[::-1].copy(), force[::-1].copy()
    _feed(store, stamps, other_q, other_f, gyro)
    assert store.stats()[("alice", SITES[0])].resets == 1
    out = store.features("alice", FRAMES, frame_period=0.1, acc_unit=GRAVITY)
    assert not isinstance(out, str)
    np.testing.assert_allclose(out, _reference(stamps, other_q, other_f), atol=1e-5)


def test_many_identities_resampled_together_equal_one_by_one() -> None:
    names = ("alice", "bob", "carol")
    streams = {name: _stream(seed=k + 3) for k, name in enumerate(names)}
    store = ImuStore(identities=dict.fromkeys(names, SITES), params=PARAMS, clock_offsets_s={})
    for name in names[:2]:
        _feed(store, *streams[name], name=name)
    store.features("alice", FRAMES, frame_period=0.1, acc_unit=GRAVITY)  # alice partly cached
    frames = FRAMES + 0.3
    out = store.features_many(names, frames, frame_period=0.1, acc_unit=GRAVITY)
    assert out["carol"] == "left_wrist:no_samples"
    for name in names[:2]:
        stamps, quats, force, _ = streams[name]
        r = resample_imu(stamps, quats, force, frames, frame_period=0.1)
        expected = imu_features(r.orientation_xyzw[:, None], r.world_acceleration[:, None])
        window = out[name]
        assert not isinstance(window, str)
        np.testing.assert_allclose(window, expected, atol=1e-5)


def _messy_stream(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3000 readings: reordered, duplicated, NaN and zero quaternions, a stale reading (too old
    but no clock jump) and a clock jump back, so every decision of `DeviceBuffer` occurs."""
    stamps, quats, force, gyro = _stream(t1=30.0, seed=seed)
    values = np.column_stack([quats, force, gyro])
    rng = np.random.default_rng(seed)
    order = np.arange(len(stamps))
    for start in range(0, len(order) - 5, 5):
        rng.shuffle(order[start : start + 5])
    order = np.repeat(order, np.where(rng.random(len(order)) < 0.02, 2, 1))
    stamps, values = stamps[order].copy(), values[order].copy()
    values[rng.random(len(values)) < 0.01, 5] = np.nan
    values[rng.random(len(values)) < 0.01, 0:4] = 0.0
    stamps[rng.random(len(stamps)) < 0.005] = np.inf
    stamps[1200] -= 3.0  # older than the 2 s horizon, within the 4 s clock-jump threshold
    stamps[2000:] -= 15.0  # the device clock jumps back
    return stamps, values


def _device() -> DeviceBuffer:
    return DeviceBuffer(horizon_s=2.0, max_rate_hz=200.0, clock_jump_s=4.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batches_of_any_size_decide_like_one_reading_at_a_time(seed: int) -> None:
    stamps, values = _messy_stream(seed)
    single, queued, chunked, whole = _device(), _device(), _device(), _device()
    counts: list[Counter[str]] = []
    for i in range(len(stamps)):  # one reading per call: no state carried within a batch
        counts.append(single.add(stamps[i : i + 1], values[i : i + 1]))
        queued.queue(float(stamps[i]), values[i].tolist())
    rng = np.random.default_rng(seed)
    cuts = np.unique(rng.integers(0, len(stamps), 40))
    chunk_counts = [
        chunked.add(s, v)
        for s, v in zip(np.split(stamps, cuts), np.split(values, cuts), strict=True)
    ]
    whole_counts = whole.add(stamps, values)
    expected = sum(counts, start=type(whole_counts)())
    assert sum(chunk_counts, start=type(whole_counts)()) == expected == whole_counts
    assert set(expected) == {"non_finite", "zero_quaternion", "too_old"}
    assert len(stamps) > PENDING_FLUSH
    reference = single.stats
    assert reference.resets == 1
    assert [b.stats for b in (queued, chunked, whole)] == [reference] * 3  # queue validated
    assert [len(b) for b in (queued, chunked, whole)] == [len(single)] * 3
    for buffer in (queued, chunked, whole):
        for t0, t1 in ((13.0, 14.0), (14.0, 14.9)):
            got, want = buffer.samples(t0, t1, max_gap_s=1.0), single.samples(t0, t1, max_gap_s=1.0)
            assert not isinstance(want, str)
            assert not isinstance(got, str)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
        assert buffer.stats == single.stats  # duplicates and overflow counted alike on merging
    assert single.stats.rejected["duplicate"] > 0


def _delivered(seed: int) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """Readings of 2 identities x 2 sites as they arrive: random latency (reordered, also across
    frames; within the pipeline's lag), duplicates, drops, a 0.4 s burst loss and a clock glitch
    (100 s ahead, then back).

    Returns (identity, site, arrival (N,), rows (N, 1 + SAMPLE_WIDTH)) per device.
    """
    rng = np.random.default_rng(seed)
    devices = []
    for k, (name, site) in enumerate(
        (n, s) for n in ("alice", "bob") for s in ("left_wrist", "right_wrist")
    ):
        stamps, quats, force, gyro = _stream(rate=100.0, t1=9.0, seed=seed * 10 + k)
        stamps = stamps + rng.uniform(0.0, 0.01)
        rows = np.column_stack([stamps, quats * rng.uniform(0.9, 1.1), force, gyro])
        rows = rows[rng.random(len(rows)) > 0.02]  # dropped packets
        if k == 1:
            rows = rows[(rows[:, 0] < 4.0) | (rows[:, 0] > 4.4)]  # burst loss: a gap
        if k == 2:
            rows[(rows[:, 0] > 5.0) & (rows[:, 0] < 5.3), 0] += 100.0  # clock glitch
        arrival = rows[:, 0] % 100.0 + rng.uniform(0.0, 0.03, len(rows))  # latency
        twice = rng.random(len(rows)) < 0.03  # duplicates, arriving later
        arrival = np.concatenate([arrival, arrival[twice] + rng.uniform(0.0, 0.2, twice.sum())])
        rows = np.concatenate([rows, rows[twice]])
        order = np.argsort(arrival, kind="stable")
        devices.append((name, site, arrival[order], rows[order]))
    return devices


def _deliver(store: ImuStore, name: str, site: str, rows: np.ndarray, *, one_by_one: bool) -> None:
    if one_by_one:
        for row in rows:
            store.add(ImuSample(name, site, row[0], tuple(row[1:5]), tuple(row[5:8]), row[8:]))
    else:
        batch = ImuBatch(name, site, rows[:, 0], rows[:, 1:5], rows[:, 5:8], rows[:, 8:])
        store.add_batch(batch)


def _from_scratch(
    devices: list[tuple[str, str, np.ndarray, np.ndarray]], name: str, now: float, stamps
) -> tuple[np.ndarray, np.ndarray] | str:
    """Motion of `name` on `stamps` from every reading delivered by `now`, merged at once into
    fresh buffers and resampled in one `resample_imu` call per site (no store, no reuse)."""
    orientation, acceleration = [], []
    for identity, site, arrival, rows in devices:
        if identity != name:
            continue
        buffer = DeviceBuffer(
            horizon_s=PARAMS.buffer_s, max_rate_hz=PARAMS.max_rate_hz, clock_jump_s=1.0
        )
        buffer.add(rows[arrival <= now, 0], rows[arrival <= now, 1:])
        span = buffer.samples(stamps[0] - 0.05, stamps[-1] + 0.05, max_gap_s=PARAMS.max_gap_s)
        if isinstance(span, str):
            return f"{site}:{span}"
        r = resample_imu(span[0], span[1][:, 0:4], span[1][:, 4:7], stamps, frame_period=0.1)
        orientation.append(r.orientation_xyzw)
        acceleration.append(r.world_acceleration)
    return np.stack(orientation, axis=1), np.stack(acceleration, axis=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_incremental_motion_equals_motion_from_scratch(seed: int) -> None:
    """Frame by frame, as the pipeline reads: the buffers merged a frame at a time and the
    resampled frames kept across windows give what fresh buffers and one resampling per site
    compute from every reading delivered so far (including why a window is incomplete)."""
    names, sites = ("alice", "bob"), ("left_wrist", "right_wrist")
    devices = _delivered(seed)
    identities = dict.fromkeys(names, sites)
    store = ImuStore(identities=identities, params=PARAMS, clock_offsets_s={})
    frames = np.arange(0.05, 9.0, 0.1) + np.random.default_rng(seed).normal(0.0, 1e-3, 90)
    span, lag, reasons, complete = 21, 1, set(), 0
    for k, now in enumerate(frames):
        for j, (name, site, arrival, rows) in enumerate(devices):
            fresh = (arrival > (frames[k - 1] if k else -np.inf)) & (arrival <= now)
            if fresh.any():
                _deliver(store, name, site, rows[fresh], one_by_one=j == 3)
        if k + 1 < span + lag:
            continue
        stamps = frames[k + 1 - lag - span : k + 1 - lag]
        got = store.motion_many(names, stamps, frame_period=0.1)
        assert got.keys() == set(names)
        for name in names:
            mine, reference = got[name], _from_scratch(devices, name, now, stamps)
            if isinstance(reference, str):
                assert mine == reference, (k, name)
                reasons.add(reference.split(":")[1])
                continue
            assert not isinstance(mine, str), (k, name, mine)
            complete += 1
            np.testing.assert_allclose(mine[0], reference[0], rtol=0, atol=1e-9)
            np.testing.assert_allclose(mine[1], reference[1], rtol=0, atol=1e-9)
    assert {"gap", "starts_late"} <= reasons  # the burst loss and the restart after the glitch
    assert complete > 80
    scratch = ImuStore(identities=identities, params=PARAMS, clock_offsets_s={})
    for name, site, arrival, rows in devices:
        _deliver(scratch, name, site, rows[arrival <= frames[-1]], one_by_one=False)
    stats, merged = store.stats(), scratch.stats()
    glitch = ("bob", "left_wrist")  # a reset drops unmerged readings: fewer duplicates counted
    assert stats.pop(glitch).resets == merged.pop(glitch).resets >= 1
    assert stats == merged  # the same decisions: duplicates, too old
    assert all(device.rejected["duplicate"] > 0 for device in stats.values())
