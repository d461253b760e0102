"""Per-device IMU buffers: tolerant ingestion of out-of-order, duplicated, gappy wearable streams.

Samples arrive from any thread, a batch at a time (`ImuStore.add_batch`: a frame's worth of
messages, a wearable packet) or one by one (`ImuStore.add`: queued, validated with the next batch
or read); they are validated with numpy and merged into a time-sorted, bounded numpy buffer per
(identity, site) when a window is read.
Windows are resampled onto LiDAR frame stamps with the shared `rt_reid.runtime.features` code, so
the encoder sees exactly the features it was trained on.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rt_reid.arrays import F64Array, FloatArray
from rt_reid.runtime.features import imu_features, resample_imu
from rt_reid.runtime.imu_sample import SAMPLE_WIDTH, ImuBatch, ImuSample

LOG = logging.getLogger(__name__)

PENDING_FLUSH = 1024  # queued samples merged eagerly beyond this, so memory stays bounded
RING_MIN_ROWS = 64  # initial room of a device's merged samples; grows by doubling
STREAM_SPACING_S = 1000.0  # time-axis spacing of devices resampled together (>> a window)

# orientation (T, S, 4) xyzw and gravity-free world acceleration (T, S, 3) on frame stamps
ResampledMotion = tuple[F64Array, F64Array]


@dataclass
class DeviceStats:
    """Counters of one device's stream, for diagnostics."""

    accepted: int = 0  # passed validation; merging may still drop them as duplicate/too_old
    rejected: Counter[str] = field(default_factory=Counter)
    resets: int = 0
    newest_stamp: float | None = None


class DeviceBuffer:
    """Time-sorted samples of one IMU (stamps already in the LiDAR clock), bounded in time and size.

    Input: readings in any order, a batch at a time (`add`) or one by one (`queue`, validated
    with the next batch or read, so a reading costs an append). Output: `samples(t0, t1)`
    covering [t0, t1] or the reason it cannot. Rejections are counted by reason: "non_finite",
    "zero_quaternion", "duplicate", "too_old" (older than the newest sample by more than the
    horizon; only possible when `clock_jump_s` exceeds it) and "overflow" (rate above
    max_rate_hz). A sample older than the newest one by more than `clock_jump_s` is a clock jump
    backwards: the buffer is cleared and restarts from that sample. Samples older than the
    horizon expire silently. Every decision is taken per reading in arrival order.
    """

    def __init__(self, *, horizon_s: float, max_rate_hz: float, clock_jump_s: float) -> None:
        self._horizon_s = horizon_s
        self._capacity = math.ceil(horizon_s * max_rate_hz) + 1
        self._clock_jump_s = clock_jump_s
        # merged samples: rows [start, end) of a growing array of (stamp, SAMPLE_WIDTH values)
        self._rows: F64Array = np.empty((RING_MIN_ROWS, 1 + SAMPLE_WIDTH), dtype=np.float64)
        self._start = 0
        self._end = 0
        self._unexpired = 0  # rows appended since the last expiry
        self._queued: list[tuple[float, ...]] = []  # readings not validated yet (`queue`)
        self._pending: list[F64Array] = []  # validated (k, 1 + SAMPLE_WIDTH) rows, not merged
        self._pending_rows = 0
        self._stats = DeviceStats()
        self._generation = 0  # bumped by clear(), so cached resamples of old samples are dropped

    @property
    def stats(self) -> DeviceStats:
        """The counters, with every reading validated and merged (duplicates and overflow are
        counted on merging, so they do not depend on when the buffer was last read)."""
        self._validate_queued()
        self._flush()
        return self._stats

    @property
    def newest_stamp(self) -> float | None:
        """The newest accepted stamp (queued readings validated first)."""
        self._validate_queued()
        return self._stats.newest_stamp

    @property
    def generation(self) -> int:
        """How often the buffer was cleared (queued readings validated first)."""
        self._validate_queued()
        return self._generation

    def queue(self, stamp_s: float, values: Sequence[float]) -> None:
        """Queue one reading (stamp, SAMPLE_WIDTH values) for validation with the next batch."""
        self._queued.append((stamp_s, *values))
        if len(self._queued) >= PENDING_FLUSH:
            self._validate_queued()

    def add(self, stamps_s: F64Array, values: F64Array) -> Counter[str]:
        """Validate and keep readings (N,), (N, SAMPLE_WIDTH) in arrival order; rejections.

        The same decisions as one reading at a time: a reading is judged against the newest
        stamp of the readings accepted before it.
        """
        self._validate_queued()
        return self._add(stamps_s, values)

    def reject(self, reason: str, count: int) -> None:
        """Count `count` readings refused before they reached the buffer (e.g. "bad_shape")."""
        self._stats.rejected[reason] += count

    def _validate_queued(self) -> None:
        """Validate the readings `queue` collected, in their order."""
        if self._queued:
            rows = np.array(self._queued, dtype=np.float64)
            self._queued.clear()
            self._add(rows[:, 0], rows[:, 1:])

    def _add(self, stamps: F64Array, values: F64Array) -> Counter[str]:
        """`add` without the queued readings: value checks at once, then stamps in order."""
        rejected: Counter[str] = Counter()
        if not len(stamps):
            return rejected
        q = values[:, 0:4]
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite rows are rejected anyway
            square = q * q
            norm2 = ((square[:, 0] + square[:, 1]) + square[:, 2]) + square[:, 3]
        if not (np.isfinite(stamps).all() and np.isfinite(values).all() and norm2.min() >= 1e-12):
            finite = np.isfinite(stamps) & np.isfinite(values).all(axis=1)
            zero = finite & (norm2 < 1e-12)
            for reason, mask in (("non_finite", ~finite), ("zero_quaternion", zero)):
                count = int(np.count_nonzero(mask))
                if count:
                    rejected[reason] += count
            keep = finite & ~zero
            stamps, values = stamps[keep], values[keep]
        self._accept(stamps, values, rejected)
        self._stats.rejected.update(rejected)
        return rejected

    def _accept(self, stamps: F64Array, values: F64Array, rejected: Counter[str]) -> None:
        """Judge valid readings by stamp in arrival order: keep, too old, or clock jump back."""
        newest = self._stats.newest_stamp
        if len(stamps):  # the usual case: nothing reaches back far enough to matter
            high = float(stamps.max())
            top = high if newest is None else max(newest, high)
            if stamps.min() >= top - min(self._clock_jump_s, self._horizon_s):
                self._keep(stamps, values)
                self._stats.newest_stamp = top
                return
        while len(stamps):
            # newest accepted stamp before each reading; a reading older by more than
            # clock_jump_s ends the run: the buffer restarts from it
            newest = self._stats.newest_stamp
            before = np.empty_like(stamps)
            before[0] = -math.inf if newest is None else newest
            np.maximum(before[0], np.maximum.accumulate(stamps[:-1]), out=before[1:])
            jumps = np.flatnonzero(stamps < before - self._clock_jump_s)
            end = int(jumps[0]) if len(jumps) else len(stamps)
            if end:
                old = stamps[:end] < before[:end] - self._horizon_s
                if old.any():
                    rejected["too_old"] += int(np.count_nonzero(old))
                self._keep(stamps[:end][~old], values[:end][~old])
                top = float(stamps[:end].max())
                if newest is None or top > newest:
                    self._stats.newest_stamp = top
            if end < len(stamps):
                newest = self._stats.newest_stamp
                assert newest is not None  # a jump is relative to an accepted stamp
                LOG.warning(
                    "IMU clock jumped back %.3f s (%.3f -> %.3f): device buffer reset",
                    newest - stamps[end],
                    newest,
                    stamps[end],
                )
                self.clear()
                self._stats.resets += 1
            stamps, values = stamps[end:], values[end:]

    def _keep(self, stamps: F64Array, values: F64Array) -> None:
        """Merge accepted readings: at once when they only extend the merged samples (the usual
        case), else queued for a full merge with the next read or every PENDING_FLUSH readings.
        """
        self._stats.accepted += len(stamps)
        rows = np.column_stack([stamps, values])
        if len(rows) and not self._pending and self._extends(stamps):
            rows[:, 1:5] /= np.linalg.norm(rows[:, 1:5], axis=1, keepdims=True)
            self._append(rows)
            if self._unexpired >= PENDING_FLUSH:
                self._expire()
            return
        while len(rows):
            take = PENDING_FLUSH - self._pending_rows
            self._pending.append(rows[:take])
            self._pending_rows += len(rows[:take])
            rows = rows[take:]
            if self._pending_rows >= PENDING_FLUSH:
                self._flush()

    def clear(self) -> None:
        """Drop every sample (clock jump or pipeline reset); counters are kept."""
        self._validate_queued()
        self._start = self._end = self._unexpired = 0
        self._pending.clear()
        self._pending_rows = 0
        self._stats.newest_stamp = None
        self._generation += 1

    def __len__(self) -> int:
        """Number of merged plus queued samples."""
        return self._end - self._start + self._pending_rows + len(self._queued)

    def _merged(self) -> F64Array:
        """The merged rows (stamp, SAMPLE_WIDTH values), oldest first: a view."""
        return self._rows[self._start : self._end]

    def _extends(self, stamps: F64Array) -> bool:
        """True when readings (N >= 1,) are increasing and newer than the merged samples, each
        by more than the duplicate tolerance: appending them equals a merge."""
        newer = self._end == self._start or stamps[0] > self._rows[self._end - 1, 0] + 1e-9
        return newer and bool((np.diff(stamps) > 1e-9).all())

    def _flush(self) -> None:
        """Merge queued samples (sort, drop duplicates, normalise quaternions), then expire.

        The usual batch (sorted, no duplicates, newer than every merged sample) is appended
        with one slice assignment; anything else is sorted and merged in full.
        """
        if self._pending:
            new = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
            self._pending.clear()
            self._pending_rows = 0
            new[:, 1:5] /= np.linalg.norm(new[:, 1:5], axis=1, keepdims=True)
            if not self._extends(new[:, 0]):
                new = self._merge(new)
            self._append(new)
        if self._unexpired:
            self._expire()

    def _expire(self) -> None:
        """Drop samples older than the horizon, then the oldest beyond the capacity (counted)."""
        stamps = self._merged()[:, 0]
        expired = int(np.searchsorted(stamps, stamps[-1] - self._horizon_s, side="left"))
        overflow = max(0, len(stamps) - expired - self._capacity)
        if overflow:
            self._stats.rejected["overflow"] += overflow
        self._start += expired + overflow
        self._unexpired = 0

    def _merge(self, new: F64Array) -> F64Array:
        """Sort `new` (stable), merge it with the merged rows if it reaches back, drop duplicates.

        Returns the rows to append after the merged rows, which are emptied on a full merge.
        """
        new = new[np.argsort(new[:, 0], kind="stable")]
        if self._end > self._start and new[0, 0] <= self._rows[self._end - 1, 0]:
            rows = np.concatenate([self._merged(), new])
            rows = rows[np.argsort(rows[:, 0], kind="stable")]
            self._start = self._end = 0
        else:
            rows = new
        keep = np.ones(len(rows), dtype=bool)
        keep[1:] = np.diff(rows[:, 0]) > 1e-9
        if not keep.all():
            self._stats.rejected["duplicate"] += int(len(keep) - keep.sum())
            rows = rows[keep]
        return rows

    def _append(self, rows: F64Array) -> None:
        """Append rows after the merged ones: compact to the front or grow when out of room."""
        count = self._end - self._start
        if self._end + len(rows) > len(self._rows):
            needed = count + len(rows)
            if 2 * needed > len(self._rows):
                grown = np.empty((2 * needed, 1 + SAMPLE_WIDTH), dtype=np.float64)
                grown[:count] = self._merged()
                self._rows = grown
            else:
                self._rows[:count] = self._merged()
            self._start, self._end = 0, count
        self._rows[self._end : self._end + len(rows)] = rows
        self._end += len(rows)
        self._unexpired += len(rows)

    def window(self, t0: float, t1: float, *, max_gap_s: float) -> tuple[int, int] | str:
        """Merged-row range [lo, hi) spanning [t0, t1] with one neighbour either side, or why not.

        Reasons: "no_samples", "starts_late" (first sample after t0), "ends_early" (newest sample
        before t1: not yet arrived) and "gap" (consecutive samples further apart than max_gap_s).
        The range is valid until the next ingestion.
        """
        self._validate_queued()
        self._flush()
        stamps = self._merged()[:, 0]
        if len(stamps) < 2:
            return "no_samples"
        if stamps[0] > t0:
            return "starts_late"
        if stamps[-1] < t1:
            return "ends_early"
        lo = max(int(np.searchsorted(stamps, t0, side="right")) - 1, 0)
        hi = min(int(np.searchsorted(stamps, t1, side="left")) + 1, len(stamps))
        if hi - lo > 1 and float(np.max(np.diff(stamps[lo:hi]))) > max_gap_s:
            return "gap"
        return lo, hi

    def span(self, lo: int, hi: int) -> tuple[F64Array, F64Array]:
        """Copies of the stamps (N,) and values (N, SAMPLE_WIDTH) of merged rows [lo, hi)."""
        rows = self._merged()[lo:hi]
        return rows[:, 0].copy(), rows[:, 1:].copy()

    def covering(self, window: tuple[int, int], t0: float, t1: float) -> tuple[F64Array, F64Array]:
        """Copies of the samples of `window` that resampling on stamps within [t0, t1] needs.

        Those within [t0, t1] and one neighbour either side, as far as the window reaches.
        """
        lo, hi = window
        stamps = self._merged()[lo:hi, 0]
        first = max(int(np.searchsorted(stamps, t0, side="right")) - 1, 0)
        last = int(np.searchsorted(stamps, t1, side="left")) + 1
        return self.span(lo + first, min(lo + last, hi))

    def samples(self, t0: float, t1: float, *, max_gap_s: float) -> tuple[F64Array, F64Array] | str:
        """Samples spanning [t0, t1] with one neighbour either side, or why not (`window`)."""
        found = self.window(t0, t1, max_gap_s=max_gap_s)
        return found if isinstance(found, str) else self.span(*found)


@dataclass
class ResampledFrames:
    """One identity's motion resampled on frame stamps so far, kept to reuse across windows.

    stamps (N,) strictly increasing; orientation (N, S, 4) xyzw; acceleration (N, S, 3).
    """

    stamps: F64Array
    orientation: F64Array
    acceleration: F64Array

    @classmethod
    def empty(cls, sites: int) -> ResampledFrames:
        """No frames yet, for an identity with `sites` devices."""
        return cls(np.empty(0), np.empty((0, sites, 4)), np.empty((0, sites, 3)))

    def expire(self, oldest: float) -> None:
        """Forget the frames stamped before `oldest`."""
        cut = int(np.searchsorted(self.stamps, oldest, side="left"))
        if cut:
            self.stamps = self.stamps[cut:]
            self.orientation = self.orientation[cut:]
            self.acceleration = self.acceleration[cut:]

    def missing(self, frame_stamps: F64Array) -> F64Array:
        """The distinct `frame_stamps` (sorted) not resampled yet."""
        if not len(self.stamps):
            return np.unique(frame_stamps)
        at = np.minimum(np.searchsorted(self.stamps, frame_stamps), len(self.stamps) - 1)
        return np.unique(frame_stamps[self.stamps[at] != frame_stamps])

    def insert(self, stamps: F64Array, orientation: F64Array, acceleration: F64Array) -> None:
        """Add frames not present yet: stamps (K,) sorted, orientation (K, S, 4), acc (K, S, 3)."""
        self.stamps = np.concatenate([self.stamps, stamps])
        self.orientation = np.concatenate([self.orientation, orientation])
        self.acceleration = np.concatenate([self.acceleration, acceleration])
        if len(self.stamps) > len(stamps) and stamps[0] < self.stamps[-len(stamps) - 1]:
            order = np.argsort(self.stamps, kind="stable")
            self.stamps = self.stamps[order]
            self.orientation = self.orientation[order]
            self.acceleration = self.acceleration[order]

    def take(self, frame_stamps: F64Array) -> ResampledMotion:
        """Orientation (T, S, 4) and acceleration (T, S, 3) on `frame_stamps`, all present."""
        at = np.searchsorted(self.stamps, frame_stamps)
        return self.orientation[at], self.acceleration[at]


@dataclass(frozen=True)
class ImuStoreParams:
    """Buffer parameters (from `ReidConfig.imu`)."""

    buffer_s: float
    max_rate_hz: float
    max_gap_s: float
    clock_jump_s: float
    silence_s: float


class ImuStore:
    """All wearable buffers of the configured identities; thread-safe ingestion, window features.

    `identities` maps identity -> its sites in the encoder's block order (`layout.sites`);
    `clock_offsets_s` maps (identity, site) -> seconds the device clock runs ahead of the LiDAR
    clock (subtracted on ingestion). Samples from unknown devices are counted and logged once.
    """

    def __init__(
        self,
        *,
        identities: Mapping[str, Sequence[str]],
        params: ImuStoreParams,
        clock_offsets_s: Mapping[tuple[str, str], float],
    ) -> None:
        self._params = params
        self._sites = {name: tuple(sites) for name, sites in identities.items()}
        self._offsets = dict(clock_offsets_s)
        self._buffers = {
            (name, site): DeviceBuffer(
                horizon_s=params.buffer_s,
                max_rate_hz=params.max_rate_hz,
                clock_jump_s=params.clock_jump_s,
            )
            for name, sites in self._sites.items()
            for site in sites
        }
        self._devices = {
            name: tuple(self._buffers[(name, site)] for site in sites)
            for name, sites in self._sites.items()
        }
        self._lock = threading.Lock()
        self.unknown_devices: Counter[tuple[str, str]] = Counter()
        # Per identity: frame stamp -> resampled (orientation (S, 4), acceleration (S, 3)). Windows
        # overlap, so each frame stamp is resampled once (exact: the box average and slerp at a
        # stamp only use samples within half a frame period of it, which are all present).
        self._resampled: dict[str, ResampledFrames] = {}
        self._generations: dict[str, tuple[int, ...]] = {}

    def add(self, sample: ImuSample) -> None:
        """Queue one reading from any thread: an append, validated with the next batch or read.

        Rejections are counted per device (`stats`), unknown devices in `unknown_devices`.
        """
        key = (sample.identity, sample.site)
        with self._lock:
            buffer = self._device(key, 1)
            if buffer is None:
                return
            values = sample.values()
            if len(values) != SAMPLE_WIDTH:
                buffer.reject("bad_shape", 1)
                return
            buffer.queue(sample.stamp_s - self._offsets.get(key, 0.0), values)

    def add_batch(self, batch: ImuBatch) -> Counter[str]:
        """Validate and buffer the readings of one device from any thread; rejections by reason."""
        count = len(batch)
        if not count:
            return Counter()
        key = (batch.identity, batch.site)
        with self._lock:
            buffer = self._device(key, count)
            if buffer is None:
                return Counter({"unknown_device": count})
            shapes = (
                batch.stamps_s.shape,
                batch.orientation_xyzw.shape,
                batch.specific_force.shape,
                batch.angular_velocity.shape,
            )
            if shapes != ((count,), (count, 4), (count, 3), (count, 3)):
                buffer.reject("bad_shape", count)
                return Counter({"bad_shape": count})
            return buffer.add(batch.stamps_s - self._offsets.get(key, 0.0), batch.values())

    def _device(self, key: tuple[str, str], count: int) -> DeviceBuffer | None:
        """The buffer of a configured device; None (counted, logged once) for any other."""
        buffer = self._buffers.get(key)
        if buffer is None:
            if key not in self.unknown_devices:
                LOG.warning("IMU samples from unconfigured device %s/%s are ignored", *key)
            self.unknown_devices[key] += count
        return buffer

    def reset(self) -> None:
        """Drop every buffered sample and cached resample (pipeline reset after a clock jump)."""
        with self._lock:
            for buffer in self._buffers.values():
                buffer.clear()
            self._resampled.clear()

    def is_silent(self, identity: str, now_s: float) -> bool:
        """True when no site of `identity` produced a sample within `silence_s` before `now_s`."""
        with self._lock:
            buffers = [self._buffers[(identity, site)] for site in self._sites[identity]]
            newest = [buffer.newest_stamp for buffer in buffers]
        known = [stamp for stamp in newest if stamp is not None]
        return not known or max(known) < now_s - self._params.silence_s

    def features(
        self, identity: str, frame_stamps: F64Array, *, frame_period: float, acc_unit: float
    ) -> FloatArray | str:
        """Encoder input (T, 12*S) of one identity, or "site:reason" (see `features_many`)."""
        return self.features_many(
            [identity], frame_stamps, frame_period=frame_period, acc_unit=acc_unit
        )[identity]

    def features_many(
        self,
        identities: Sequence[str],
        frame_stamps: F64Array,
        *,
        frame_period: float,
        acc_unit: float,
    ) -> dict[str, FloatArray | str]:
        """Encoder input (T, 12*S) per identity on `frame_stamps`, or "site:reason" if incomplete.

        Samples must cover half a frame period beyond both ends (the acceleration box average)
        without gaps.
        """
        motion = self.motion_many(identities, frame_stamps, frame_period=frame_period)
        out: dict[str, FloatArray | str] = {n: m for n, m in motion.items() if isinstance(m, str)}
        complete = {n: m for n, m in motion.items() if not isinstance(m, str)}
        if complete:
            orientation = np.array([m[0] for m in complete.values()])  # (I, T, S, 4)
            acceleration = np.array([m[1] for m in complete.values()])  # (I, T, S, 3)
            features = imu_features(orientation, acceleration, acc_unit=acc_unit)
            out.update(zip(complete, features, strict=True))
        return out

    def motion_many(
        self, identities: Sequence[str], frame_stamps: F64Array, *, frame_period: float
    ) -> dict[str, ResampledMotion | str]:
        """Per identity: orientation (T, S, 4) and world acceleration (T, S, 3) on `frame_stamps`.

        The acceleration is gravity-free and box-averaged over one frame period around each
        stamp; "site:reason" where a site's samples do not cover the stamps. Windows overlap, so
        each frame stamp is resampled once per identity and kept (`ResampledFrames`); a frame
        reads only the samples around its new stamps, and the new stamps of every device are
        resampled in one `resample_imu` call.
        """
        half = frame_period / 2.0
        t0, t1 = float(frame_stamps[0]) - half, float(frame_stamps[-1]) + half
        oldest = float(frame_stamps[-1]) - self._params.buffer_s
        out: dict[str, ResampledMotion | str] = {}
        complete: dict[str, ResampledFrames] = {}
        missing: dict[str, F64Array] = {}
        spans: dict[str, list[tuple[F64Array, F64Array]]] = {}
        with self._lock:
            for identity in identities:
                buffers = self._devices[identity]
                generations = tuple(buffer.generation for buffer in buffers)
                if self._generations.get(identity) != generations:
                    self._resampled.pop(identity, None)
                    self._generations[identity] = generations
                windows: list[tuple[int, int]] = []
                for site, buffer in zip(self._sites[identity], buffers, strict=True):
                    found = buffer.window(t0, t1, max_gap_s=self._params.max_gap_s)
                    if isinstance(found, str):
                        out[identity] = f"{site}:{found}"
                        break
                    windows.append(found)
                else:
                    cache = self._resampled.get(identity)
                    if cache is None:
                        cache = self._resampled[identity] = ResampledFrames.empty(len(buffers))
                    cache.expire(oldest)
                    complete[identity] = cache
                    todo = cache.missing(frame_stamps)
                    if len(todo):
                        missing[identity] = todo
                        spans[identity] = [
                            buffer.covering(window, float(todo[0]) - half, float(todo[-1]) + half)
                            for buffer, window in zip(buffers, windows, strict=True)
                        ]
        if missing:
            self._resample_missing(complete, spans, missing, frame_period=frame_period)
        out.update((identity, cache.take(frame_stamps)) for identity, cache in complete.items())
        return out

    @staticmethod
    def _resample_missing(
        caches: Mapping[str, ResampledFrames],
        spans: Mapping[str, list[tuple[F64Array, F64Array]]],
        missing: Mapping[str, F64Array],
        *,
        frame_period: float,
    ) -> None:
        """Resample the missing frame stamps of every device with one `resample_imu` call.

        `spans` holds each device's samples around its identity's missing stamps; the results go
        into `caches`, by identity. Samples and stamps of each device are moved onto their own
        disjoint stretch of a common time axis (offset STREAM_SPACING_S apart, relative to the
        earliest stamp), so one call equals one call per device: slerp and the box average at a
        stamp only use samples within half a frame period of it, all of which belong to the same
        device.
        """
        base = min(float(m[0]) for m in missing.values()) - frame_period / 2.0
        stamps: list[F64Array] = []
        quats: list[F64Array] = []
        forces: list[F64Array] = []
        frames: list[F64Array] = []
        for identity, todo in missing.items():
            for sample_stamps, data in spans[identity]:
                shift = len(frames) * STREAM_SPACING_S - base
                stamps.append(sample_stamps + shift)
                quats.append(data[:, 0:4])
                forces.append(data[:, 4:7])
                frames.append(todo + shift)
        resampled = resample_imu(
            np.concatenate(stamps),
            np.concatenate(quats),
            np.concatenate(forces),
            np.concatenate(frames),
            frame_period=frame_period,
        )
        row = 0
        for identity, todo in missing.items():
            sites, count = len(spans[identity]), len(todo)
            block = slice(row, row + sites * count)
            caches[identity].insert(
                todo,
                resampled.orientation_xyzw[block].reshape(sites, count, 4).transpose(1, 0, 2),
                resampled.world_acceleration[block].reshape(sites, count, 3).transpose(1, 0, 2),
            )
            row += sites * count

    def stats(self) -> dict[tuple[str, str], DeviceStats]:
        """Snapshot of every device's counters."""
        with self._lock:
            current = {key: buffer.stats for key, buffer in self._buffers.items()}
            return {
                key: DeviceStats(
                    stats.accepted, Counter(stats.rejected), stats.resets, stats.newest_stamp
                )
                for key, stats in current.items()
            }
