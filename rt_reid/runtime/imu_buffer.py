"""Per-device IMU buffers: tolerant ingestion of out-of-order, duplicated, gappy wearable streams.

Samples arrive one at a time from any thread (`ImuStore.add`), are validated cheaply and queued;
they are merged into a time-sorted, bounded numpy buffer per (identity, site) when a window is read.
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

LOG = logging.getLogger(__name__)

SAMPLE_WIDTH = 10  # per sample besides its stamp: quaternion xyzw, specific force, gyro
PENDING_FLUSH = 1024  # queued samples merged eagerly beyond this, so memory stays bounded
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

    Input: samples in any order via `add`. Output: `samples(t0, t1)` covering [t0, t1] or the
    reason it cannot. Rejections are counted by reason: "non_finite", "zero_quaternion",
    "duplicate", "too_old" (older than the newest sample by more than the horizon; only possible
    when `clock_jump_s` exceeds it) and "overflow" (rate above max_rate_hz). A sample older than
    the newest one by more than `clock_jump_s` is a clock jump backwards: the buffer is cleared
    and restarts from that sample. Samples older than the horizon expire silently.
    """

    def __init__(self, *, horizon_s: float, max_rate_hz: float, clock_jump_s: float) -> None:
        self._horizon_s = horizon_s
        self._capacity = math.ceil(horizon_s * max_rate_hz) + 1
        self._clock_jump_s = clock_jump_s
        self._stamps: F64Array = np.empty(0, dtype=np.float64)
        self._data: F64Array = np.empty((0, SAMPLE_WIDTH), dtype=np.float64)
        self._pending: list[tuple[float, ...]] = []
        self.stats = DeviceStats()
        self.generation = 0  # bumped by clear(), so cached resamples of old samples are dropped

    def add(self, stamp_s: float, values: Sequence[float]) -> str | None:
        """Queue one sample (stamp, 10 values); return the rejection reason, or None if queued."""
        if not (math.isfinite(stamp_s) and all(map(math.isfinite, values))):
            self.stats.rejected["non_finite"] += 1
            return "non_finite"
        qx, qy, qz, qw = values[0], values[1], values[2], values[3]
        if qx * qx + qy * qy + qz * qz + qw * qw < 1e-12:
            self.stats.rejected["zero_quaternion"] += 1
            return "zero_quaternion"
        newest = self.stats.newest_stamp
        if newest is not None and stamp_s < newest - self._clock_jump_s:
            LOG.warning(
                "IMU clock jumped back %.3f s (%.3f -> %.3f): device buffer reset",
                newest - stamp_s,
                newest,
                stamp_s,
            )
            self.clear()
            self.stats.resets += 1
            newest = None
        elif newest is not None and stamp_s < newest - self._horizon_s:
            self.stats.rejected["too_old"] += 1
            return "too_old"
        if newest is None or stamp_s > newest:
            self.stats.newest_stamp = stamp_s
        self._pending.append((stamp_s, *values))
        self.stats.accepted += 1
        if len(self._pending) >= PENDING_FLUSH:
            self._flush()
        return None

    def clear(self) -> None:
        """Drop every sample (clock jump or pipeline reset); counters are kept."""
        self._stamps = np.empty(0, dtype=np.float64)
        self._data = np.empty((0, SAMPLE_WIDTH), dtype=np.float64)
        self._pending.clear()
        self.stats.newest_stamp = None
        self.generation += 1

    def __len__(self) -> int:
        """Number of merged plus queued samples."""
        return len(self._stamps) + len(self._pending)

    def _flush(self) -> None:
        """Merge queued samples: sort, drop duplicates and too-old ones, normalise quaternions."""
        if not self._pending:
            return
        new = np.asarray(self._pending, dtype=np.float64)
        self._pending.clear()
        new[:, 1:5] /= np.linalg.norm(new[:, 1:5], axis=1, keepdims=True)
        new = new[np.argsort(new[:, 0], kind="stable")]
        if len(self._stamps) and new[0, 0] <= self._stamps[-1]:  # reaches back: full merge
            stamps = np.concatenate([self._stamps, new[:, 0]])
            data = np.concatenate([self._data, new[:, 1:]])
            order = np.argsort(stamps, kind="stable")
            stamps, data = stamps[order], data[order]
            first = 0
        else:  # the usual case: everything new is newer than the merged samples
            stamps, data, first = new[:, 0], new[:, 1:], len(self._stamps)
        keep = np.ones(len(stamps), dtype=bool)
        keep[1:] = np.diff(stamps) > 1e-9
        if not keep.all():
            self.stats.rejected["duplicate"] += int(len(keep) - keep.sum())
            stamps, data = stamps[keep], data[keep]
        if first:
            stamps = np.concatenate([self._stamps, stamps])
            data = np.concatenate([self._data, data])
        expired = int(np.searchsorted(stamps, stamps[-1] - self._horizon_s, side="left"))
        overflow = max(0, len(stamps) - expired - self._capacity)
        if overflow:
            self.stats.rejected["overflow"] += overflow
        start = expired + overflow
        self._stamps, self._data = stamps[start:], data[start:]

    def samples(self, t0: float, t1: float, *, max_gap_s: float) -> tuple[F64Array, F64Array] | str:
        """Samples spanning [t0, t1] with one neighbour either side, or why they are incomplete.

        Reasons: "no_samples", "starts_late" (first sample after t0), "ends_early" (newest sample
        before t1: not yet arrived) and "gap" (consecutive samples further apart than max_gap_s).
        """
        self._flush()
        stamps = self._stamps
        if len(stamps) < 2:
            return "no_samples"
        if stamps[0] > t0:
            return "starts_late"
        if stamps[-1] < t1:
            return "ends_early"
        lo = max(int(np.searchsorted(stamps, t0, side="right")) - 1, 0)
        hi = min(int(np.searchsorted(stamps, t1, side="left")) + 1, len(stamps))
        span = stamps[lo:hi]
        if len(span) > 1 and float(np.max(np.diff(span))) > max_gap_s:
            return "gap"
        return span.copy(), self._data[lo:hi].copy()


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
        self._lock = threading.Lock()
        self.unknown_devices: Counter[tuple[str, str]] = Counter()
        # Per identity: frame stamp -> resampled (orientation (S, 4), acceleration (S, 3)). Windows
        # overlap, so each frame stamp is resampled once (exact: the box average and slerp at a
        # stamp only use samples within half a frame period of it, which are all present).
        self._resampled: dict[str, dict[float, tuple[F64Array, F64Array]]] = {}
        self._generations: dict[str, tuple[int, ...]] = {}

    def add(  # noqa: PLR0917 - positional like ReidPipeline.add_imu (ARCHITECTURE.md, IMU samples)
        self,
        identity: str,
        site: str,
        stamp_s: float,
        orientation_xyzw: Sequence[float],
        specific_force: Sequence[float],
        angular_velocity: Sequence[float],
    ) -> str | None:
        """Ingest one sample from any thread; return the rejection reason, or None if accepted."""
        key = (identity, site)
        with self._lock:
            buffer = self._buffers.get(key)
            if buffer is None:
                if key not in self.unknown_devices:
                    LOG.warning("IMU samples from unconfigured device %s/%s are ignored", *key)
                self.unknown_devices[key] += 1
                return "unknown_device"
            values = (*orientation_xyzw, *specific_force, *angular_velocity)
            if len(values) != SAMPLE_WIDTH:
                buffer.stats.rejected["bad_shape"] += 1
                return "bad_shape"
            return buffer.add(stamp_s - self._offsets.get(key, 0.0), values)

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
            newest = [buffer.stats.newest_stamp for buffer in buffers]
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
        each frame stamp is resampled once per identity and cached; the new stamps of every
        device are resampled in one `resample_imu` call.
        """
        half = frame_period / 2.0
        t0, t1 = float(frame_stamps[0]) - half, float(frame_stamps[-1]) + half
        out: dict[str, ResampledMotion | str] = {}
        spans: dict[str, list[tuple[F64Array, F64Array]]] = {}
        with self._lock:
            for identity in identities:
                sites = self._sites[identity]
                generations = tuple(self._buffers[(identity, s)].generation for s in sites)
                if self._generations.get(identity) != generations:
                    self._resampled.pop(identity, None)
                    self._generations[identity] = generations
                spans[identity] = []
                for site in sites:
                    span = self._buffers[(identity, site)].samples(
                        t0, t1, max_gap_s=self._params.max_gap_s
                    )
                    if isinstance(span, str):
                        out[identity] = f"{site}:{span}"
                        del spans[identity]
                        break
                    spans[identity].append(span)
        missing: dict[str, F64Array] = {}
        oldest = float(frame_stamps[-1]) - self._params.buffer_s
        for identity in spans:
            cache = self._resampled.setdefault(identity, {})
            for stamp in [s for s in cache if s < oldest]:
                del cache[stamp]
            todo = [s for s in frame_stamps if float(s) not in cache]
            if todo:
                missing[identity] = np.array(todo, dtype=np.float64)
        if missing:
            self._resample_missing(spans, missing, frame_period=frame_period)
        for identity in spans:
            rows = [self._resampled[identity][float(s)] for s in frame_stamps]
            out[identity] = (
                np.array([r[0] for r in rows]),  # (T, S, 4)
                np.array([r[1] for r in rows]),  # (T, S, 3)
            )
        return out

    def _resample_missing(
        self,
        spans: Mapping[str, list[tuple[F64Array, F64Array]]],
        missing: Mapping[str, F64Array],
        *,
        frame_period: float,
    ) -> None:
        """Resample the missing frame stamps of every device with one `resample_imu` call.

        Each device's samples and stamps are moved onto their own disjoint stretch of a common
        time axis (offset STREAM_SPACING_S apart, relative to the earliest stamp), so one call
        equals one call per device: slerp and the box average at a stamp only use samples
        within half a frame period of it, all of which belong to the same device.
        """
        half = frame_period / 2.0
        base = min(float(m[0]) for m in missing.values()) - half
        stamps, quats, forces, frames = [], [], [], []
        order: list[tuple[str, int, int]] = []  # identity, site index, number of stamps
        for identity, todo in missing.items():
            for k, (sample_stamps, data) in enumerate(spans[identity]):
                lo = max(int(np.searchsorted(sample_stamps, todo[0] - half, side="right")) - 1, 0)
                hi = int(np.searchsorted(sample_stamps, todo[-1] + half, side="left")) + 1
                shift = len(order) * STREAM_SPACING_S - base
                stamps.append(sample_stamps[lo:hi] + shift)
                quats.append(data[lo:hi, 0:4])
                forces.append(data[lo:hi, 4:7])
                frames.append(todo + shift)
                order.append((identity, k, len(todo)))
        resampled = resample_imu(
            np.concatenate(stamps),
            np.concatenate(quats),
            np.concatenate(forces),
            np.concatenate(frames),
            frame_period=frame_period,
        )
        row = 0
        per_site: dict[str, list[tuple[F64Array, F64Array]]] = {}
        for identity, _, count in order:
            per_site.setdefault(identity, []).append(
                (
                    resampled.orientation_xyzw[row : row + count],
                    resampled.world_acceleration[row : row + count],
                )
            )
            row += count
        for identity, sites in per_site.items():
            cache = self._resampled[identity]
            for j, stamp in enumerate(missing[identity]):
                cache[float(stamp)] = (
                    np.stack([orientation[j] for orientation, _ in sites]),
                    np.stack([acceleration[j] for _, acceleration in sites]),
                )

    def stats(self) -> dict[tuple[str, str], DeviceStats]:
        """Snapshot of every device's counters."""
        with self._lock:
            return {
                key: DeviceStats(
                    buffer.stats.accepted,
                    Counter(buffer.stats.rejected),
                    buffer.stats.resets,
                    buffer.stats.newest_stamp,
                )
                for key, buffer in self._buffers.items()
            }
