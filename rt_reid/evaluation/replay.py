"""Bag replay: run the pipeline on a recorded rosbag2 as fast as possible, deterministically.

IMU messages are fed to the pipeline in bag order (a frame's worth at a time, decoded in one
vectorised step per topic) and each LiDAR frame drives one pipeline step, exactly as the live node
would see them, but without waiting. Outputs go into an MCAP bag
(`/reid/identities`, `/reid/markers`, `/reid/latency`, `/diagnostics`). When the input carries
`/sim/ground_truth`, the stream identity metrics and the tracker's MOTA/IDF1 are computed.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rt_reid.config import ReidConfig
from rt_reid.errors import BagError, ConfigError, ManifestError, MessageError, ReidError
from rt_reid.evaluation.metrics import (
    GATE_M,
    WARMUP_S,
    Frame,
    IdentityMetrics,
    Labelled,
    calibration_records,
    expected_calibration_error,
    frame_from_detections,
    identity_metrics,
    latency_percentiles,
    match_frame,
)
from rt_reid.evaluation.mot import MotFrame, tracking_metrics
from rt_reid.io import ros_msgs
from rt_reid.io.bag import (
    BagMessage,
    BagWriter,
    RawMessage,
    bag_topics,
    deserialize,
    msg_class,
    read_stream,
)
from rt_reid.io.pointcloud import FrameIdCheck, FrameIdError, pointcloud2_to_xyz
from rt_reid.layouts import WearableLayout, get_layout
from rt_reid.names import MsgType, Topic, parse_imu_topic, stamp_ns
from rt_reid.runtime.manifest import load_manifest
from rt_reid.runtime.pipeline import FrameResult, ReidPipeline

LOG = logging.getLogger(__name__)

OUTPUT_TOPICS = (
    (Topic.IDENTITIES, MsgType.DETECTIONS),
    (Topic.MARKERS, MsgType.MARKERS),
    (Topic.LATENCY, MsgType.DIAGNOSTICS),
    (Topic.DIAGNOSTICS, MsgType.DIAGNOSTICS),
)
DIAGNOSTICS_EVERY = 10  # frames between /diagnostics messages (1 Hz at 10 Hz)
MAX_PENDING_IMU = 8192  # raw Imu messages decoded at once even without a LiDAR frame between


@dataclass
class ReplayResult:
    """Everything one replay produced: counts, timings, outputs and (with ground truth) scores."""

    in_bag: Path
    out_bag: Path
    model_dir: Path
    backend: str
    frame_rate_hz: float
    identities: tuple[str, ...]
    frames: int = 0
    imu_messages: int = 0
    points: int = 0  # finite LiDAR points over all processed frames
    resets: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)  # degradations: why identity may drop
    lost: Counter[str] = field(default_factory=Counter)  # topic -> messages missing from the file
    first_errors: dict[str, str] = field(default_factory=dict)  # skip kind -> its first error
    bag_duration_s: float = 0.0
    wall_s: float = 0.0
    timings: dict[str, list[float]] = field(default_factory=dict)
    outputs: list[Frame] = field(default_factory=list)
    truth: list[Frame] = field(default_factory=list)
    candidates: list[Frame] = field(default_factory=list)  # best candidate + margin per track
    similarity: list[dict[str, NDArray[np.float64]]] = field(default_factory=list)
    identity: IdentityMetrics | None = None
    tracker: dict[str, float] | None = None
    warmup_s: float = WARMUP_S
    gate_m: float = GATE_M

    @property
    def realtime_factor(self) -> float:
        """Bag time replayed per second of wall time."""
        return self.bag_duration_s / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def label_confidence_ece(self) -> float:
        """Expected calibration error of the published scores of labelled, matched tracks."""
        records = calibration_records(self.truth, self.outputs, gate_m=self.gate_m)
        return expected_calibration_error([s for s, _ in records], [c for _, c in records])[0]

    @property
    def points_per_frame(self) -> float:
        """Mean finite points per LiDAR frame."""
        return self.points / max(self.frames, 1)

    @property
    def similarity_by_person(self) -> tuple[list[str], list[str], NDArray[np.float64]]:
        """Mean cosine of each ground-truth person's matched track to each identity.

        Rows: identity-bearing persons sorted by identity (so the diagonal is the right pair
        when the columns are the same identities), then bystanders; columns: `identities`.
        """
        sums: dict[str, NDArray[np.float64]] = {}
        counts: dict[str, NDArray[np.float64]] = {}
        names: dict[str, str] = {}
        outputs = {
            frame.stamp_ns: (frame, sim)
            for frame, sim in zip(self.outputs, self.similarity, strict=True)
        }
        for truth in self.truth:
            if truth.stamp_ns not in outputs:
                continue
            frame, sim = outputs[truth.stamp_ns]
            for g, t in match_frame(truth.boxes, frame.boxes, gate_m=self.gate_m).items():
                row = sim.get(frame.boxes[t].key)
                if row is None:
                    continue
                person = truth.boxes[g]
                names[person.key] = person.identity or f"bystander {person.key}"
                valid = np.isfinite(row)
                sums.setdefault(person.key, np.zeros(len(self.identities)))[valid] += row[valid]
                counts.setdefault(person.key, np.zeros(len(self.identities)))[valid] += 1
        keys = sorted(sums, key=lambda k: (names[k].startswith("bystander "), names[k]))
        matrix = np.array(
            [sums[k] / np.maximum(counts[k], 1) for k in keys], dtype=np.float64
        ).reshape(len(keys), len(self.identities))
        return [names[k] for k in keys], list(self.identities), matrix

    def summary(self) -> dict[str, Any]:
        """Headline numbers (the report's metrics.json)."""
        data: dict[str, Any] = {
            "in_bag": str(self.in_bag),
            "out_bag": str(self.out_bag),
            "model_dir": str(self.model_dir),
            "backend": self.backend,
            "frames": self.frames,
            "imu_messages": self.imu_messages,
            "resets": self.resets,
            "skipped": dict(self.skipped),
            "warnings": list(self.warnings),
            "bag_duration_s": self.bag_duration_s,
            "wall_s": self.wall_s,
            "realtime_factor": self.realtime_factor,
            "latency_ms": latency_percentiles(self.timings),
        }
        if self.identity is not None:
            data["identity"] = self.identity.summary()
            data["label_confidence_ece"] = self.label_confidence_ece
        if self.tracker is not None:
            data["tracker"] = self.tracker
        return data


def input_topics(path: Path) -> dict[str, tuple[str, int]]:
    """Topics of an input bag; BagError says whether it is missing or unreadable."""
    if not path.exists():
        raise BagError(f"input bag {path} does not exist")
    try:
        return bag_topics(path)
    except BagError as err:
        raise BagError(f"input bag {path} is corrupt or truncated: {err.__cause__ or err}") from err


def imu_streams(topics: dict[str, tuple[str, int]]) -> dict[str, tuple[str, str]]:
    """IMU topic -> (identity, site) for every ``/imu/<identity>/<site>`` Imu topic of a bag."""
    streams = {}
    for topic, (msgtype, _count) in sorted(topics.items()):
        if topic.startswith(Topic.IMU_PREFIX) and msgtype == MsgType.IMU:
            try:
                streams[topic] = parse_imu_topic(topic)
            except ConfigError:
                continue
    return streams


def ignored_imu_topics(topics: dict[str, tuple[str, int]]) -> dict[str, int]:
    """Imu topics under ``/imu/`` that do not name an identity and a site -> message count."""
    streams = imu_streams(topics)
    return {
        topic: count
        for topic, (msgtype, count) in sorted(topics.items())
        if topic.startswith(Topic.IMU_PREFIX) and msgtype == MsgType.IMU and topic not in streams
    }


def bag_identities(topics: dict[str, tuple[str, int]]) -> list[str]:
    """Identities that publish IMU topics in a bag (sorted)."""
    return sorted({identity for identity, _site in imu_streams(topics).values()})


def check_layout(topics: dict[str, tuple[str, int]], layout: WearableLayout, model: Path) -> None:
    """ManifestError unless every identity of the bag has an IMU topic for each site of `layout`."""
    sites: dict[str, set[str]] = {}
    for identity, site in imu_streams(topics).values():
        sites.setdefault(identity, set()).add(site)
    lacking = {n: sorted(set(layout.sites) - s) for n, s in sorted(sites.items())}
    lacking = {n: missing for n, missing in lacking.items() if missing}
    if lacking:
        worn = sorted({site for s in sites.values() for site in s})
        raise ManifestError(
            f"model {model} expects the {layout.name!r} layout (sites {list(layout.sites)}) but "
            f"the bag's IMU topics have sites {worn}; missing per identity: {lacking}. Use a "
            "model exported for the bag's wearables"
        )


def config_for_bag(
    config: ReidConfig, topics: dict[str, tuple[str, int]], model_dir: Path
) -> ReidConfig:
    """The config with the model, its layout, and the identities the bag's IMU topics name."""
    names = bag_identities(topics)
    if not names:
        raise BagError(f"the bag has no {Topic.IMU_PREFIX}<identity>/<site> Imu topics to identify")
    layout = load_manifest(model_dir).layout
    check_layout(topics, get_layout(layout), model_dir)
    data = config.to_dict()
    data["model_dir"] = str(model_dir)
    data["identities"] = {"names": names, "layout": layout, "layouts": {}}
    data["imu"]["clock_offsets_s"] = {
        n: sites for n, sites in data["imu"]["clock_offsets_s"].items() if n in names
    }
    return ReidConfig.from_dict(data)


def _labelled(
    result: FrameResult, stamp: int
) -> tuple[Frame, Frame, dict[str, NDArray[np.float64]]]:
    """Output frame, candidate frame (best candidate + margin as score) and similarity rows."""
    output = Frame(
        stamp,
        tuple(Labelled(str(t.track_id), t.identity, t.score, t.position) for t in result.tracks),
    )
    candidates = Frame(
        stamp,
        tuple(Labelled(str(t.track_id), t.candidate, t.margin, t.position) for t in result.tracks),
    )
    similarity = {str(t.track_id): result.similarity[i] for i, t in enumerate(result.tracks)}
    return output, candidates, similarity


class BagReplayer:
    """Replays one bag through a fresh `ReidPipeline` and writes an output bag.

    Input: a rosbag2 with `/lidar/points` and `/imu/<identity>/<site>`; output: an MCAP bag and a
    `ReplayResult`. Malformed messages are counted in `ReplayResult.skipped` and skipped.
    """

    def __init__(
        self,
        *,
        config: ReidConfig,
        model_dir: Path,
        backend: str | None = None,
        warmup_s: float = WARMUP_S,
        gate_m: float = GATE_M,
    ) -> None:
        self.config = config
        self.model_dir = Path(model_dir)
        self.backend = backend
        self.warmup_s = warmup_s
        self.gate_m = gate_m

    def run(
        self,
        in_bag: Path,
        out_bag: Path,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> ReplayResult:
        """Replay `in_bag` into `out_bag`; `progress(n)` is called after every LiDAR frame."""
        in_bag, out_bag = Path(in_bag), Path(out_bag)
        topics = input_topics(in_bag)
        if Topic.LIDAR not in topics or topics[Topic.LIDAR][0] != MsgType.POINTCLOUD2:
            raise BagError(
                f"{in_bag} has no {Topic.LIDAR} PointCloud2 topic (topics: "
                f"{', '.join(sorted(topics)) or 'none'})"
            )
        config = config_for_bag(self.config, topics, self.model_dir)
        pipeline = ReidPipeline(
            config=config,
            model_dir=self.model_dir,
            backend=self.backend,  # type: ignore[arg-type]
        )
        LOG.info("replaying %s with %s on %s", in_bag, self.model_dir, pipeline.backend_name)
        result = ReplayResult(
            in_bag=in_bag,
            out_bag=out_bag,
            model_dir=self.model_dir,
            backend=pipeline.backend_name,
            frame_rate_hz=1.0 / pipeline.frame_period,
            identities=config.identities,
            warmup_s=self.warmup_s,
            gate_m=self.gate_m,
        )
        start = time.perf_counter()
        try:
            with BagWriter(out_bag) as writer:
                _Replay(
                    in_bag=in_bag,
                    topics=topics,
                    config=config,
                    pipeline=pipeline,
                    writer=writer,
                    result=result,
                ).run(progress)
        except BagError as err:
            raise BagError(
                f"input bag {in_bag} is corrupt or truncated: replay stopped after "
                f"{result.frames} LiDAR frames ({out_bag} holds their outputs): "
                f"{err.__cause__ or err}"
            ) from err
        result.wall_s = time.perf_counter() - start
        has_truth = topics.get(Topic.GROUND_TRUTH, ("", 0))[0] == MsgType.DETECTIONS
        self._finish(in_bag, pipeline, result, has_truth=has_truth)
        return result

    def _finish(
        self, in_bag: Path, pipeline: ReidPipeline, result: ReplayResult, *, has_truth: bool
    ) -> None:
        """Pipeline counters and warnings into the result; the metrics where there is truth."""
        diagnostics = pipeline.diagnostics()
        result.resets = diagnostics.resets
        result.warnings = [*diagnostics.warnings, *result.warnings]
        for warning in result.warnings:
            LOG.warning("replay degraded: %s", warning)
        if result.frames == 0:
            problems = "; ".join(f"{k}: {e}" for k, e in result.first_errors.items())
            raise ReidError(
                f"{in_bag}: no LiDAR frame could be processed (skipped {dict(result.skipped)})"
                + (f"; first problems: {problems}" if problems else "")
            )
        if has_truth and result.truth:
            result.identity = identity_metrics(
                result.truth, result.outputs, warmup_s=self.warmup_s, gate_m=self.gate_m
            )
            result.tracker = tracker_metrics(result.truth, result.outputs, gate_m=self.gate_m)


class _Replay:
    """One replay's loop: each message kind to its stage, outputs of each frame to the out bag.

    Imu messages stay raw until the next LiDAR frame; then they are all decoded and validated in
    one vectorised step (`ros_msgs.decode_imu`) and each device's are buffered with one
    `add_imu_batch`. Within a device they keep bag order, every Imu message before a frame in the
    bag is buffered before that frame is processed, and bad messages are counted and logged in
    bag order: the outcome is that of adding them one by one.
    """

    def __init__(
        self,
        *,
        in_bag: Path,
        topics: dict[str, tuple[str, int]],
        config: ReidConfig,
        pipeline: ReidPipeline,
        writer: BagWriter,
        result: ReplayResult,
    ) -> None:
        self.in_bag = in_bag
        self.topics = topics
        self.config = config
        self.pipeline = pipeline
        self.writer = writer
        self.result = result
        self.streams = imu_streams(topics)
        self.types = ros_msgs.MessageTypes.from_lookup(msg_class)
        self.frame_ids = FrameIdCheck()
        self.pending: list[RawMessage] = []  # Imu messages since the last flush, bag order
        self.pending_rows: dict[str, list[int]] = {}  # topic -> its rows of `pending`
        self.previous: FrameResult | None = None
        self.first_ns: int | None = None
        self.last_ns = self.last_receive_ns = 0

    def run(self, progress: Callable[[int], None] | None) -> None:
        """Read the bag in order and hand every message to its stage; then the closing outputs."""
        for declared in OUTPUT_TOPICS:
            self.writer.add_topic(*declared)
        for topic, count in ignored_imu_topics(self.topics).items():
            self.warn(f"ignored IMU topic {topic} ({count} messages): not /imu/<id>/<site>")
            self.result.skipped["imu_topic_unparsable"] += count
        messages = read_stream(
            self.in_bag,
            topics=[Topic.LIDAR, Topic.GROUND_TRUTH, *self.streams],
            raw_topics=self.streams,
            on_undecodable=self.undecodable,
            on_lost=self.lost,
        )
        for item in messages:
            if isinstance(item, RawMessage):
                self.imu(item)
            elif item.topic == Topic.LIDAR:
                self.flush_imu()
                if self.lidar(item) and progress is not None:
                    progress(1)
            else:
                self.ground_truth(item)
        self.flush_imu()
        self.close()
        if self.first_ns is not None:
            self.result.bag_duration_s = (
                self.last_ns - self.first_ns
            ) * 1e-9 + self.pipeline.frame_period

    def lidar(self, item: BagMessage) -> bool:
        """Decode one cloud, run the pipeline on it and write its outputs; False if dropped."""
        result = self.result
        tic = time.perf_counter()
        try:
            self.frame_ids.check(str(item.message.header.frame_id))
            xyz = pointcloud2_to_xyz(item.message)
            frame_ns = stamp_ns(item.message.header.stamp)
        except FrameIdError as err:
            self.skip("lidar_frame_id_changed", err)
            return False
        except (MessageError, AttributeError, TypeError, ValueError) as err:
            self.skip("lidar", err)
            return False
        decode_s = time.perf_counter() - tic
        frame = self.pipeline.process_frame(frame_ns * 1e-9, xyz)
        if frame is self.previous:  # repeated or slightly late stamp: dropped
            late = frame_ns * 1e-9 < frame.stamp_s
            result.skipped[f"lidar_{'out_of_order' if late else 'duplicate_stamp'}"] += 1
            return False
        self.previous = frame
        result.points += len(xyz)
        _record(result, frame, frame_ns, decode_s)
        self.write(frame, receive_ns=item.timestamp_ns, stamp_ns=frame_ns)
        self.last_receive_ns = item.timestamp_ns
        self.first_ns = frame_ns if self.first_ns is None else min(self.first_ns, frame_ns)
        self.last_ns = max(self.last_ns, frame_ns)
        return True

    def imu(self, item: RawMessage) -> None:
        """Keep one raw Imu message until the next frame (or until many are waiting)."""
        self.pending_rows.setdefault(item.topic, []).append(len(self.pending))
        self.pending.append(item)
        if len(self.pending) >= MAX_PENDING_IMU:
            self.flush_imu()

    def flush_imu(self) -> None:
        """Decode the waiting Imu messages at once and add each device's in one batch."""
        if not self.pending:
            return
        pending = self.pending
        decoded = ros_msgs.decode_imu([raw.data for raw in pending], decode=self._decode)
        for topic, rows in self.pending_rows.items():
            batch = decoded.batch(*self.streams[topic], np.array(rows))
            self.result.imu_messages += len(batch)
            for reason, count in self.pipeline.add_imu_batch(batch).items():
                self.result.skipped[f"imu_{reason}"] += count
        self.pending, self.pending_rows = [], {}
        errors = [(i, "undecodable", err) for i, err in decoded.undecodable]
        errors += [(i, "imu", err) for i, err in decoded.invalid]
        for _, kind, err in sorted(errors, key=lambda error: error[0]):
            self.skip(kind, err)

    def _decode(self, row: int) -> Any:
        """One waiting message decoded on its own (outside the usual CDR layout)."""
        return deserialize(self.in_bag, self.pending[row]).message

    def ground_truth(self, item: BagMessage) -> None:
        """Keep one ground-truth frame for the metrics."""
        try:
            self.result.truth.append(frame_from_detections(item.message))
        except MessageError as err:
            self.skip("ground_truth", err)

    def write(self, frame: FrameResult, *, receive_ns: int, stamp_ns: int) -> None:
        """Write one frame's output messages at the LiDAR message's bag time."""
        types, writer = self.types, self.writer
        frame_id = self.frame_ids.frame_id or self.config.frame_id
        writer.write(
            Topic.IDENTITIES,
            receive_ns,
            ros_msgs.detections_msg(frame, types, frame_id=frame_id, stamp_ns=stamp_ns),
        )
        writer.write(
            Topic.MARKERS,
            receive_ns,
            ros_msgs.markers_msg(frame, types, frame_id=frame_id, stamp_ns=stamp_ns),
        )
        writer.write(
            Topic.LATENCY, receive_ns, ros_msgs.latency_msg(frame, types, stamp_ns=stamp_ns)
        )
        if self.result.frames % DIAGNOSTICS_EVERY == 1:
            writer.write(Topic.DIAGNOSTICS, receive_ns, self.diagnostics(frame))

    def close(self) -> None:
        """Warnings only the whole bag shows, then the final /diagnostics with all of them."""
        frame_id = self.frame_ids.frame_id
        if frame_id not in {None, self.config.frame_id}:
            self.warn(
                f"LiDAR frame_id {frame_id!r} differs from the configured "
                f"frame_id {self.config.frame_id!r}; outputs are stamped {frame_id!r}"
            )
        lost = self.result.lost
        if lost:
            self.warn(
                f"{sum(lost.values())} messages recorded in the bag's metadata are "
                f"missing from the file (damaged?): {dict(sorted(lost.items()))}"
            )
        if self.previous is not None:
            self.writer.write(
                Topic.DIAGNOSTICS, self.last_receive_ns, self.diagnostics(self.previous)
            )

    def diagnostics(self, frame: FrameResult) -> Any:
        """/diagnostics of the pipeline with the replay's own warnings added."""
        diag = self.pipeline.diagnostics()
        diag = replace(diag, warnings=(*diag.warnings, *self.result.warnings))
        return ros_msgs.diagnostics_msg(diag, self.types, stamp_ns=round(frame.stamp_s * 1e9))

    def warn(self, warning: str) -> None:
        """Record a degradation once (it goes into /diagnostics and the summary)."""
        if warning not in self.result.warnings:
            self.result.warnings.append(warning)

    def undecodable(self, err: BagError) -> None:
        """Count a LiDAR or ground-truth message that does not decode, after the Imu before it."""
        self.flush_imu()
        self.skip("undecodable", err)

    def lost(self, topic: str, missing: int) -> None:
        """Count messages the bag's metadata recorded but the damaged file no longer holds."""
        self.result.skipped["lost_in_file"] += missing
        self.result.lost[topic] += missing

    def skip(self, kind: str, err: Exception) -> None:
        """Count a malformed message and log the first of each kind."""
        result = self.result
        if result.skipped[kind] == 0:
            LOG.warning("skipping malformed %s message (further ones only counted): %s", kind, err)
            result.first_errors[kind] = str(err)
        result.skipped[kind] += 1


def _record(result: ReplayResult, frame: FrameResult, stamp_ns: int, decode_s: float) -> None:
    """Keep a frame's outputs and timings (decode counted into the end-to-end total)."""
    output, candidates, similarity = _labelled(frame, stamp_ns)
    result.outputs.append(output)
    result.candidates.append(candidates)
    result.similarity.append(similarity)
    stages = {"decode": decode_s, **frame.perception_timings, **frame.timings}
    stages["total"] = frame.timings.get("total", 0.0) + decode_s
    for stage, seconds in stages.items():
        result.timings.setdefault(stage, []).append(seconds)
    result.frames += 1


def tracker_metrics(
    truth: list[Frame], outputs: list[Frame], *, gate_m: float, warmup_s: float = WARMUP_S
) -> dict[str, float]:
    """Tracker scores of the LiDAR tracks against ground-truth persons (`rt_reid.evaluation.mot`).

    MOTA, IDF1, ID switches and fragmentations (motmetrics) over all frames, and the share of
    person-frames without a matched track (bystanders included, `warmup_s` after each entry)
    overall, per distance band from the sensor and for moving / still people.
    """
    from rt_reid.evaluation.mot import no_track_rates

    by_stamp = {frame.stamp_ns: frame for frame in outputs}
    ids: dict[tuple[str, str], int] = {}

    def numbered(kind: str, boxes: tuple[Labelled, ...]) -> list[int]:
        return [ids.setdefault((kind, box.key), len(ids)) for box in boxes]

    frames = []
    ordered = sorted(truth, key=lambda f: f.stamp_ns)
    for gt in ordered:
        out = by_stamp.get(gt.stamp_ns, Frame(gt.stamp_ns, ()))
        frames.append(
            MotFrame(
                gt_ids=numbered("gt", gt.boxes),
                gt_positions=np.array([b.position for b in gt.boxes]).reshape(-1, 3),
                track_ids=numbered("track", out.boxes),
                track_positions=np.array([b.position for b in out.boxes]).reshape(-1, 3),
            )
        )
    scores = tracking_metrics(frames, max_distance=gate_m)
    result = {key: float(value) for key, value in asdict(scores).items()}
    # Per person: stamps, positions and whether a track matched (same matching as identity).
    people: dict[str, list[tuple[float, NDArray[np.float64], bool]]] = {}
    for gt in ordered:
        out = by_stamp.get(gt.stamp_ns, Frame(gt.stamp_ns, ()))
        matched = match_frame(gt.boxes, out.boxes, gate_m=gate_m)
        for g, box in enumerate(gt.boxes):
            people.setdefault(box.key, []).append(
                (gt.stamp_ns * 1e-9, np.asarray(box.position[:2], dtype=np.float64), g in matched)
            )
    samples = [
        ([s for s, _, _ in rows], [p for _, p, _ in rows], [h for _, _, h in rows])
        for rows in people.values()
    ]
    result.update(no_track_rates(samples, warmup_s=warmup_s))
    return result
