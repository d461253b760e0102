"""`ReidPipeline`: one LiDAR frame plus buffered IMU samples in, identity tracks out.

Per frame: perception (tracks with their points) -> track windows -> IMU windows of every
identity on the same frame stamps -> one batched call per encoder -> cosine similarities ->
evidence and gated assignment. Tracks are encoded every `encoding_stride` frames, spread over
the stride's phases by track id, so the per-frame cost stays flat. `add_imu` and `add_imu_batch`
may be called from any thread. A LiDAR stamp that jumps backwards by more than `imu.clock_jump_s`
resets the pipeline (logged); a repeated or slightly late one is dropped and counted.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from rt_reid.arrays import F64Array, FloatArray
from rt_reid.config import ReidConfig
from rt_reid.errors import ConfigError
from rt_reid.names import ModalityType
from rt_reid.runtime.continuity import TrackContinuity
from rt_reid.runtime.identity import Assignment, IdentityAssigner, TrackEvidence
from rt_reid.runtime.imu_buffer import DeviceStats, ImuStore
from rt_reid.runtime.imu_sample import ImuBatch, ImuSample
from rt_reid.runtime.inference import Backend, EncoderSet
from rt_reid.runtime.perception import LidarPerception, PerceptionResult, TrackObservation
from rt_reid.runtime.physics import MotionEvidence, PairStats, physics_llr
from rt_reid.runtime.windows import TrackWindows

LOG = logging.getLogger(__name__)

STAGES = ("perception", "windows", "imu", "inference", "physics", "identity", "total")
Handover = tuple[TrackEvidence | None, PairStats | None]  # what a broken track passes on


class Perception(Protocol):
    """What the pipeline needs from the LiDAR front end (`LidarPerception`)."""

    def process(self, xyz: FloatArray, stamp_s: float) -> PerceptionResult:
        """Tracks of one frame."""
        ...

    def reset(self) -> None:
        """Drop tracks and background."""
        ...


@dataclass(frozen=True)
class IdentityTrack:
    """One confirmed LiDAR track with its identity (None = "unknown") and confidence in [0, 1].

    `candidate` is the best-supported identity even when not assigned, `margin` its evidence
    margin over every competitor (the input of the confidence calibration).
    """

    track_id: int
    position: F64Array
    extent: F64Array
    identity: str | None
    score: float
    candidate: str | None = None
    margin: float = 0.0


@dataclass(frozen=True)
class FrameResult:
    """Output of one frame. Matrices have one row per entry of `tracks`, one column per identity.

    `similarity` holds the cosines scored this frame (NaN where a track or identity was not
    encoded this frame); `evidence` the fused evidence after this frame; `physics` the physics
    channel's test statistics (tracks, identities, `MotionEvidence.feature_names`).
    """

    stamp_s: float
    tracks: list[IdentityTrack]
    timings: dict[str, float]  # seconds per stage in STAGES
    similarity: F64Array
    evidence: F64Array
    identities: tuple[str, ...]
    physics: F64Array = field(default_factory=lambda: np.zeros((0, 0, 0)))
    perception_timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineDiagnostics:
    """Counters for the diagnostics topic and replay reports."""

    backend: str
    frames: int
    dropped_frames: int
    resets: int
    encoded_windows: int
    imu_devices: dict[tuple[str, str], DeviceStats]
    unknown_imu_devices: dict[tuple[str, str], int]
    imu_incomplete: dict[str, int]  # "identity/site:reason" -> windows not scored
    silent_identities: tuple[str, ...]
    dropped_by_reason: dict[str, int] = field(default_factory=dict)  # "out_of_order", ...
    warnings: tuple[str, ...] = ()  # degradations the shell detected (frame id, empty clouds...)


class ReidPipeline:
    """The whole re-identification pipeline for one LiDAR and the configured identities.

    `model_dir` and `backend` default to the config's values; `perception` defaults to a
    `LidarPerception` built from the config (pass another front end to reuse one).
    """

    def __init__(
        self,
        *,
        config: ReidConfig,
        model_dir: Path | None = None,
        backend: Backend | None = None,
        perception: Perception | None = None,
    ) -> None:
        self.config = config
        layouts = {layout.name for layout in config.layouts.values()}
        if len(layouts) != 1:
            raise ConfigError(
                f"identities wear several layouts {sorted(layouts)}; one model serves one layout"
            )
        self.encoders = EncoderSet(
            model_dir=model_dir if model_dir is not None else config.model_path(),
            backend=backend if backend is not None else config.inference.backend,
            layout=layouts.pop(),
            intra_op_threads=config.inference.intra_op_threads,
        )
        manifest = self.encoders.manifest
        self.frame_period = 1.0 / manifest.frame_rate_hz
        self.windows = TrackWindows(
            window_frames=manifest.window_frames,
            points_per_frame=manifest.points_per_frame,
            centring=manifest.centring,
            lag_frames=config.windows.lag_frames,
            min_observed_fraction=config.windows.min_observed_fraction,
            min_points=config.windows.min_points,
        )
        self.imu = ImuStore(
            identities=config.identity_sites(),
            params=config.imu.store,
            clock_offsets_s=config.imu.clock_offsets_s,
        )
        self.assigner = IdentityAssigner(identities=config.identities, params=config.identity)
        self.physics = MotionEvidence(
            identities=config.identities,
            sites=len(next(iter(config.layouts.values())).sites),  # one layout (checked above)
            params=config.physics,
            frame_period=self.frame_period,
        )
        self.continuity: TrackContinuity[Handover] = TrackContinuity(
            max_gap_s=config.continuity.max_gap_s, speed_mps=config.continuity.speed_mps
        )
        self._learned = config.identity.learned_weight > 0
        self._physical = config.identity.physics_weight > 0
        self.perception: Perception = (
            perception if perception is not None else LidarPerception(params=config.perception)
        )
        self.identities = config.identities
        self._stride = config.inference.encoding_stride
        self._max_windows = config.inference.max_windows_per_frame
        self._last_encoded: dict[int, int] = {}  # track id -> frame of its last encoded window
        self._lag = config.windows.lag_frames
        self._stamps: deque[float] = deque(maxlen=manifest.window_frames + self._lag)
        self._frame_index = 0
        self._last: FrameResult | None = None
        self._lock = threading.Lock()  # process_frame / reset against each other
        self._frames = self._dropped = self._resets = self._encoded = 0
        self._incomplete: Counter[str] = Counter()
        self._drops: Counter[str] = Counter()  # dropped LiDAR frames by reason
        self._empty_frames = 0  # LiDAR frames without a single finite point
        self._silent: tuple[str, ...] = ()
        self._rate_warned = False

    @property
    def backend_name(self) -> str:
        """Inference backend that actually runs, e.g. "cpu (CPUExecutionProvider)"."""
        return self.encoders.backend_name

    def add_imu(self, sample: ImuSample) -> None:
        """Buffer one IMU sample (any thread; an append, validated with the next read)."""
        self.imu.add(sample)

    def add_imu_batch(self, batch: ImuBatch) -> Counter[str]:
        """Buffer consecutive samples of one IMU (any thread); returns the rejections by reason."""
        return self.imu.add_batch(batch)

    def reset(self, reason: str) -> None:
        """Clean restart (clock jump, bag loop): tracks, windows, IMU buffers and evidence."""
        with self._lock:
            self._reset(reason)

    def _reset(self, reason: str) -> None:
        LOG.warning("pipeline reset: %s", reason)
        self.perception.reset()
        self.windows.clear()
        self.imu.reset()
        self.assigner.reset()
        self.physics.reset()
        self.continuity.reset()
        self._stamps.clear()
        self._last_encoded.clear()
        self._last = None
        self._resets += 1

    def process_frame(self, stamp_s: float, xyz: FloatArray) -> FrameResult:
        """Run one LiDAR frame (N, 3) points in the `lidar` frame stamped `stamp_s` seconds.

        A frame with the same stamp as the previous one, or an earlier one by at most
        `imu.clock_jump_s`, is dropped (counted) and the previous result returned; a stamp earlier
        than that is a clock jump backwards (bag loop) and resets the pipeline first.
        """
        with self._lock:
            start = time.perf_counter()
            if self._last is not None and stamp_s <= self._last.stamp_s:
                behind = self._last.stamp_s - stamp_s
                if behind <= self.config.imu.store.clock_jump_s:  # repeated or slightly late
                    self._dropped += 1
                    self._drops["duplicate_stamp" if behind == 0 else "out_of_order"] += 1
                    return self._last
                self._reset(
                    f"LiDAR stamp went backwards from {self._last.stamp_s:.3f} s to {stamp_s:.3f} s"
                )
            self._check_rate(stamp_s)
            if len(xyz) == 0:
                if self._empty_frames == 0:
                    LOG.warning("LiDAR frame at %.3f s has no points (more are counted)", stamp_s)
                self._empty_frames += 1
            perceived = self.perception.process(xyz, stamp_s)
            timings = {"perception": time.perf_counter() - start}
            result = self._step(stamp_s, perceived, timings)
            timings["total"] = time.perf_counter() - start
            self._frames += 1
            self._last = result
            return result

    def _check_rate(self, stamp_s: float) -> None:
        """Warn once when LiDAR frames do not come at the model's frame rate."""
        if self._stamps and not self._rate_warned:
            period = stamp_s - self._stamps[-1]
            if abs(period - self.frame_period) > 0.25 * self.frame_period and len(self._stamps) > 2:
                LOG.warning(
                    "LiDAR frame period %.3f s differs from the model's %.3f s; windows will "
                    "span a different time than in training",
                    period,
                    self.frame_period,
                )
                self._rate_warned = True

    def _step(
        self, stamp_s: float, perceived: PerceptionResult, timings: dict[str, float]
    ) -> FrameResult:
        """Windows, IMU, inference, physics and identity for one perceived frame."""
        tic = time.perf_counter()
        frame = self._frame_index
        self._frame_index += 1
        self._stamps.append(stamp_s)
        tracks = perceived.tracks
        self.windows.update(frame, {t.track_id: t.points for t in tracks})
        due = self._due_tracks(tracks, frame)
        point_windows = self.windows.windows(due, frame - self._lag)
        toc = time.perf_counter()
        timings["windows"] = toc - tic

        active = np.array([not self.imu.is_silent(n, stamp_s) for n in self.identities], bool)
        self._silent = tuple(n for n, a in zip(self.identities, active, strict=True) if not a)
        imu_windows, imu_columns = self._imu_windows(due, active)
        tic = time.perf_counter()
        timings["imu"] = tic - toc

        similarity = np.full((len(due), len(self.identities)), np.nan)
        if due and imu_columns:
            track_emb = self.encoders.encode(ModalityType.POINTCLOUD, point_windows)
            imu_emb = self.encoders.encode(ModalityType.IMU, np.stack(imu_windows))
            similarity[:, imu_columns] = track_emb.astype(np.float64) @ imu_emb.T.astype(np.float64)
            self._encoded += len(due)
        toc = time.perf_counter()
        timings["inference"] = toc - tic

        self._continue_broken_tracks(stamp_s, tracks)
        features = self._physics_step(stamp_s, frame, tracks, active)
        physics = (
            None
            if features is None
            else dict(
                zip(
                    [t.track_id for t in tracks],
                    physics_llr(features, self.config.physics),
                    strict=True,
                )
            )
        )
        tic = time.perf_counter()
        timings["physics"] = tic - toc

        end = frame - self._lag
        scored = {
            track_id: (similarity[row], self.windows.observed_fraction(track_id, end))
            for row, track_id in enumerate(due)
            if imu_columns
        }
        assignments = self.assigner.update(
            stamp_s,
            live={t.track_id: t.confirmed for t in tracks},
            similarity=scored,
            active=active,
            physics=physics,
        )
        result = self._frame_result(
            stamp_s, tracks, assignments, due, similarity, features, timings
        )
        timings["identity"] = time.perf_counter() - tic
        return dataclasses.replace(result, perception_timings=dict(perceived.timings))

    def _due_tracks(self, tracks: Sequence[TrackObservation], frame: int) -> list[int]:
        """Confirmed tracks whose window is encoded this frame (stride phase, readiness, cap)."""
        if not self._learned or len(self._stamps) < (self._stamps.maxlen or 0):
            return []
        end = frame - self._lag
        due = [
            t.track_id
            for t in tracks
            if t.confirmed
            and t.track_id % self._stride == frame % self._stride
            and self.windows.ready(t.track_id, end)
        ]
        if 0 < self._max_windows < len(due):  # least recently encoded first
            due = sorted(due, key=lambda tid: self._last_encoded.get(tid, -1))[: self._max_windows]
        live_ids = {t.track_id for t in tracks}
        self._last_encoded = {k: v for k, v in self._last_encoded.items() if k in live_ids}
        self._last_encoded.update(dict.fromkeys(due, frame))
        return due

    def _imu_windows(
        self, due: Sequence[int], active: npt.NDArray[np.bool_]
    ) -> tuple[list[FloatArray], list[int]]:
        """Encoder input of every active identity with a complete window, and their columns."""
        imu_windows: list[FloatArray] = []
        imu_columns: list[int] = []
        if not due:
            return imu_windows, imu_columns
        window_stamps = np.array(self._stamps, dtype=np.float64)[: -self._lag or None]
        features = self.imu.features_many(
            [name for name, a in zip(self.identities, active, strict=True) if a],
            window_stamps,
            frame_period=self.frame_period,
            acc_unit=self.encoders.manifest.acc_unit,
        )
        for column, name in enumerate(self.identities):
            window = features.get(name)
            if isinstance(window, str):
                self._incomplete[f"{name}/{window}"] += 1
            elif window is not None:
                imu_windows.append(window)
                imu_columns.append(column)
        return imu_windows, imu_columns

    def _continue_broken_tracks(self, stamp_s: float, tracks: Sequence[TrackObservation]) -> None:
        """Hand the evidence and label of a track that ended to the young track continuing it."""
        observed = {
            t.track_id: (None if t.points is None else np.asarray(t.position, np.float64))
            for t in tracks
        }

        def handover(track_id: int) -> Handover | None:
            evidence, stats = self.assigner.handover(track_id), self.physics.statistics(track_id)
            return None if evidence is None and stats is None else (evidence, stats)

        for track_id, (evidence, stats) in self.continuity.step(
            stamp_s, observed, handover
        ).items():
            LOG.debug("track %d continues a track that ended nearby", track_id)
            if evidence is not None:
                self.assigner.inherit(track_id, evidence)
            if stats is not None:
                self.physics.inherit(track_id, stats)

    def _physics_step(
        self,
        stamp_s: float,
        frame: int,
        tracks: Sequence[TrackObservation],
        active: npt.NDArray[np.bool_],
    ) -> F64Array | None:
        """Track clusters and IMU motion into the physics channel; its statistics per track.

        Rows follow `tracks`; None when the channel is switched off.
        """
        if not self._physical:
            return None
        self.physics.observe(
            frame,
            {t.track_id: None if t.points is None else np.asarray(t.points) for t in tracks},
        )
        span = self.physics.frames
        if len(self._stamps) >= span + self._lag:
            stamps = np.array(self._stamps, dtype=np.float64)
            stamps = stamps[len(stamps) - self._lag - span : len(stamps) - self._lag]
            names = [name for name, a in zip(self.identities, active, strict=True) if a]
            motion = self.imu.motion_many(names, stamps, frame_period=self.frame_period)
            last = frame - self._lag
            self.physics.update(
                range(last - span + 1, last + 1),
                stamp_s,
                {name: m for name, m in motion.items() if not isinstance(m, str)},
                frame_stamps=stamps,
            )
        return self.physics.features([t.track_id for t in tracks])

    def _frame_result(  # noqa: PLR0917 - private, one call site
        self,
        stamp_s: float,
        tracks: Sequence[TrackObservation],
        assignments: Sequence[Assignment],
        due: Sequence[int],
        similarity: F64Array,
        features: F64Array | None,
        timings: dict[str, float],
    ) -> FrameResult:
        """The published tracks (confirmed ones) with identities, similarities and evidence.

        `features`: the physics statistics per entry of `tracks` (None: channel off, zeros).
        """
        by_id = {a.track_id: a for a in assignments}
        out = [t for t in tracks if t.confirmed]
        identity_tracks = [
            IdentityTrack(
                track_id=t.track_id,
                position=np.asarray(t.position, np.float64),
                extent=np.asarray(t.extent, np.float64),
                identity=by_id[t.track_id].identity,
                score=by_id[t.track_id].score,
                candidate=by_id[t.track_id].candidate,
                margin=by_id[t.track_id].margin,
            )
            for t in out
        ]
        rows = {track_id: row for row, track_id in enumerate(due)}
        frame_similarity = np.full((len(out), len(self.identities)), np.nan)
        for row, t in enumerate(out):
            if t.track_id in rows:
                frame_similarity[row] = similarity[rows[t.track_id]]
        return FrameResult(
            stamp_s=stamp_s,
            tracks=identity_tracks,
            timings=timings,
            similarity=frame_similarity,
            evidence=self.assigner.evidence([t.track_id for t in out]),
            identities=self.identities,
            physics=(
                np.zeros((len(out), len(self.identities), len(self.physics.feature_names)))
                if features is None
                else features[[t.confirmed for t in tracks]]
            ),
        )

    def _warnings(self) -> tuple[str, ...]:
        """Why identity may be degraded: empty clouds, IMU clocks far from LiDAR time, drops."""
        warnings = []
        if self._empty_frames:
            warnings.append(f"{self._empty_frames} of {self._frames} LiDAR frames had no points")
        if self._drops:
            drops = ", ".join(f"{n} {reason}" for reason, n in sorted(self._drops.items()))
            warnings.append(f"LiDAR frames dropped: {drops}")
        now = None if self._last is None else self._last.stamp_s
        horizon = self.config.imu.store.buffer_s
        for (identity, site), stats in sorted(self.imu.stats().items()):
            if now is None or stats.newest_stamp is None:
                continue
            ahead = stats.newest_stamp - now
            if abs(ahead) > horizon:
                warnings.append(
                    f"IMU {identity}/{site} stamps are {abs(ahead):.1f} s "
                    f"{'ahead of' if ahead > 0 else 'behind'} LiDAR time (more than imu.buffer_s "
                    f"{horizon:g} s): clocks not synchronised? set imu.clock_offsets_s"
                )
        return tuple(warnings)

    def diagnostics(self) -> PipelineDiagnostics:
        """Counters since start-up (frames, drops, resets, IMU stream health, backend)."""
        return PipelineDiagnostics(
            backend=self.backend_name,
            frames=self._frames,
            dropped_frames=self._dropped,
            resets=self._resets,
            dropped_by_reason=dict(self._drops),
            warnings=self._warnings(),
            encoded_windows=self._encoded,
            imu_devices=self.imu.stats(),
            unknown_imu_devices=dict(self.imu.unknown_devices),
            imu_incomplete=dict(self._incomplete),
            silent_identities=self._silent,
        )
