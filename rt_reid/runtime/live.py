"""Real-time shell around `ReidPipeline`, shared by ``rt-reid run`` and the ROS 2 node.

- `LatestFrameWorker`: one worker thread with a one-frame mailbox. A frame that is still waiting
  when the next one arrives is dropped and counted, so nothing queues without bound and the
  receiving thread (IMU callbacks, the bag player) never waits for inference.
- `ReidEngine`: the per-frame step both shells run on that worker: clock-jump reset, PointCloud2
  conversion, ``process_frame``, latency bookkeeping, then the shell's publish callback.
- `IdentityPublisher` + `LidarBagPlayer` + `run_live`: the non-ROS shell (``rt-reid run``):
  a LiDAR bag played at its own rate, wearables over authenticated ZeroMQ, identity tracks out on
  a ZeroMQ PUB socket as JSON (format in ``rt_reid/wearables/README.md``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import zmq
from numpy.typing import NDArray

from rt_reid.errors import BagError, ConfigError, ReidError
from rt_reid.io.bag import bag_topics, read_messages
from rt_reid.io.pointcloud import FrameIdCheck, pointcloud2_to_xyz
from rt_reid.names import UNKNOWN, MsgType, stamp_ns
from rt_reid.runtime.pipeline import FrameResult, ReidPipeline
from rt_reid.wearables.ingest import IngestStats, WearableIngest, pipeline_sink
from rt_reid.wearables.keys import KeyStore
from rt_reid.wearables.pacing import BagPacer

LOG = logging.getLogger(__name__)
T = TypeVar("T")
PUBLISH_TOPIC = b"reid.identities"
FORMAT_VERSION = 1


@dataclass
class WorkerStats:
    """Counters of a `LatestFrameWorker`."""

    submitted: int = 0
    processed: int = 0
    dropped: int = 0
    errors: int = 0


class LatestFrameWorker(Generic[T]):
    """Process items on one thread; a newer item replaces a waiting one (the old one is dropped)."""

    def __init__(self, *, process: Callable[[T], None], name: str) -> None:
        self._process = process
        self._name = name
        self._condition = threading.Condition()
        self._slot: T | None = None
        self._busy = False
        self._closed = False
        self._stats = WorkerStats()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def submit(self, item: T) -> bool:
        """Hand over `item` without waiting; False if it displaced an unprocessed item."""
        with self._condition:
            displaced = self._slot is not None
            self._slot = item
            self._stats.submitted += 1
            if displaced:
                self._stats.dropped += 1
            self._condition.notify()
        return not displaced

    def drain(self, timeout_s: float) -> bool:
        """Wait until the slot is empty and the worker idle (bounded); True if it got there."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while self._slot is not None or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def stop(self) -> None:
        """Finish the item in progress, drop any waiting one, and join the thread."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def stats(self) -> WorkerStats:
        """Snapshot of the counters."""
        with self._condition:
            return WorkerStats(**self._stats.__dict__)

    def _run(self) -> None:
        """Take the newest item and process it, until stopped."""
        while True:
            with self._condition:
                while self._slot is None and not self._closed:
                    self._condition.wait()
                item = self._slot
                if self._closed or item is None:
                    return
                self._slot, self._busy = None, True
            try:
                self._process(item)
            except ReidError as err:  # bad input (malformed cloud, ...): counted, no traceback
                with self._condition:
                    self._stats.errors += 1
                    errors = self._stats.errors
                if math.log10(errors).is_integer():
                    LOG.warning("%s: frame skipped (%d so far): %s", self._name, errors, err)
            except Exception:  # a bug must not stop the stream either, but shows its traceback
                LOG.exception("%s: processing a frame failed", self._name)
                with self._condition:
                    self._stats.errors += 1
            finally:
                with self._condition:
                    self._busy = False
                    self._stats.processed += 1
                    self._condition.notify_all()


class Pipeline(Protocol):
    """The part of ``ReidPipeline`` the live shells use."""

    def process_frame(self, stamp_s: float, xyz: NDArray[np.float32]) -> FrameResult:
        """Run one LiDAR frame (resets itself when the stamp goes backwards)."""

    def reset(self, reason: str) -> None:
        """Drop all state after a clock jump."""


@dataclass(frozen=True)
class Frame:
    """A received LiDAR frame: exact header stamp (ns), the message, and when it was received."""

    stamp_ns: int
    cloud: Any
    receipt_s: float  # time.monotonic() at receipt

    @property
    def stamp_s(self) -> float:
        """Stamp in seconds, as the pipeline takes it."""
        return self.stamp_ns * 1e-9


@dataclass(frozen=True)
class Latency:
    """Per-frame latency (seconds): receipt -> result ready, waiting time, and pipeline stages."""

    receipt_to_result_s: float
    queued_s: float
    stages_s: dict[str, float]


@dataclass
class EngineStats:
    """Engine counters: frames published, resets it requested, and the worker's counters."""

    frames: int = 0
    duplicates: int = 0  # frames with the previous frame's stamp (the pipeline skips them)
    requested_resets: int = 0
    worker: WorkerStats = field(default_factory=WorkerStats)


class ReidEngine:
    """Run the pipeline on the newest LiDAR frame on a worker thread and hand results to `publish`.

    `to_xyz` turns the received cloud into (N, 3) float32 points on the worker thread (e.g.
    `rt_reid.io.pointcloud.pointcloud2_to_xyz`). The pipeline resets itself when a frame's stamp
    goes backwards (bag loop); `request_reset` lets a shell reset it earlier, e.g. when ROS time
    jumps back, on the worker thread before the next frame.
    """

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        to_xyz: Callable[[Any], NDArray[np.float32]],
        publish: Callable[[FrameResult, Frame, Latency], None],
    ) -> None:
        self.pipeline = pipeline
        self._to_xyz = to_xyz
        self._publish = publish
        self._pending_reset: str | None = None
        self._previous: FrameResult | None = None
        self._frame_ids = FrameIdCheck()
        self._stats = EngineStats()
        self._lock = threading.Lock()
        self._worker: LatestFrameWorker[Frame] = LatestFrameWorker(
            process=self._step, name="reid-worker"
        )

    def start(self) -> None:
        """Start the worker thread."""
        self._worker.start()

    def drain(self, timeout_s: float) -> bool:
        """Wait (bounded) until no frame is waiting or in progress; True if that happened."""
        return self._worker.drain(timeout_s)

    def stop(self, *, drain_timeout_s: float = 0.0) -> None:
        """Optionally let the waiting frame finish, then stop the worker."""
        if drain_timeout_s > 0:
            self.drain(drain_timeout_s)
        self._worker.stop()

    def submit(self, frame: Frame) -> bool:
        """Offer a frame (never blocks); False if it displaced a frame not yet processed."""
        return self._worker.submit(frame)

    def request_reset(self, reason: str) -> None:
        """Reset the pipeline on the worker thread before the next frame (any thread, no wait)."""
        with self._lock:
            self._pending_reset = reason

    def stats(self) -> EngineStats:
        """Snapshot of the counters."""
        with self._lock:
            return EngineStats(
                frames=self._stats.frames,
                duplicates=self._stats.duplicates,
                requested_resets=self._stats.requested_resets,
                worker=self._worker.stats(),
            )

    def _step(self, frame: Frame) -> None:
        """Process one frame on the worker thread."""
        started = time.monotonic()
        with self._lock:
            reason, self._pending_reset = self._pending_reset, None
            if reason is not None:
                self._stats.requested_resets += 1
        if reason is not None:
            self.pipeline.reset(reason)
        header = getattr(frame.cloud, "header", None)
        if header is not None:  # a cloud from another sensor frame is refused (FrameIdError)
            self._frame_ids.check(str(header.frame_id))
        xyz = self._to_xyz(frame.cloud)
        result = self.pipeline.process_frame(frame.stamp_s, xyz)
        if result is self._previous:  # same stamp as the previous frame: nothing new to publish
            with self._lock:
                self._stats.duplicates += 1
            return
        self._previous = result
        latency = Latency(
            receipt_to_result_s=time.monotonic() - frame.receipt_s,
            queued_s=started - frame.receipt_s,
            stages_s=dict(result.timings),
        )
        with self._lock:
            self._stats.frames += 1
        self._publish(result, frame, latency)


def result_to_json(
    result: FrameResult, frame: Frame, latency: Latency, *, frame_id: str, dropped: int
) -> bytes:
    """The documented JSON body of one ``reid.identities`` message."""
    body = {
        "version": FORMAT_VERSION,
        "stamp_ns": frame.stamp_ns,
        "frame_id": frame_id,
        "tracks": [
            {
                "track_id": int(track.track_id),
                "identity": track.identity if track.identity is not None else UNKNOWN,
                "score": float(track.score),
                "position": [float(v) for v in track.position],
                "extent": [float(v) for v in track.extent],
            }
            for track in result.tracks
        ],
        "latency_s": {
            "receipt_to_publish": latency.receipt_to_result_s,
            "queued": latency.queued_s,
            **{stage: float(seconds) for stage, seconds in latency.stages_s.items()},
        },
        "dropped_frames": dropped,
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


class IdentityPublisher:
    """ZeroMQ PUB socket sending ``[b"reid.identities", JSON]`` per processed frame.

    Create it on any thread but only `send` from one thread (the engine's worker).
    """

    def __init__(self, *, endpoint: str, context: zmq.Context[Any]) -> None:
        self._socket = context.socket(zmq.PUB)
        self._socket.linger = 500
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as err:
            self._socket.close(linger=0)
            raise ConfigError(f"cannot bind the identity publisher to {endpoint}: {err}") from err
        self.bound_endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def send(self, body: bytes) -> None:
        """Publish one message (PUB drops it for subscribers that are too slow)."""
        self._socket.send_multipart([PUBLISH_TOPIC, body])

    def close(self) -> None:
        """Close the socket (lingering briefly so the last messages leave)."""
        self._socket.close()


def check_lidar_topic(bag: Path, topic: str) -> None:
    """BagError unless `bag` exists and has PointCloud2 messages on `topic` (naming what it has)."""
    if not Path(bag).exists():
        raise BagError(f"bag {bag} does not exist")
    topics = bag_topics(bag)
    present = ", ".join(f"{t} ({m})" for t, (m, _) in sorted(topics.items())) or "none"
    msgtype, count = topics.get(topic, ("", 0))
    if msgtype != MsgType.POINTCLOUD2 or count == 0:
        state = "absent" if topic not in topics else f"{msgtype} with {count} messages"
        raise BagError(
            f"{bag} has no {MsgType.POINTCLOUD2} messages on the LiDAR topic {topic} ({state}); "
            f"topics present: {present}; choose one with --lidar-topic"
        )


class LidarBagPlayer:
    """Read a bag's LiDAR topic and hand each cloud to `sink` at the bag's own rate (x `rate`).

    The bag's start (earliest message of any topic) plays at Unix time `start_at` (default: when
    `play` is called), the same mapping the wearable emulator uses (`pacing.BagPacer`).
    """

    def __init__(self, *, bag: Path, topic: str, rate: float, start_at: float | None) -> None:
        self.bag = bag
        self.topic = topic
        self.rate = rate
        self.start_at = start_at

    def play(self, sink: Callable[[Frame], object], stop: threading.Event | None = None) -> int:
        """Play the topic once; return the number of clouds handed over."""
        count = 0
        pacer = BagPacer(self.bag, rate=self.rate, start_at=self.start_at)
        for message in read_messages(self.bag, topics=[self.topic]):
            if stop is not None and stop.is_set():
                break
            pacer.wait(message.timestamp_ns)
            stamp = stamp_ns(message.message.header.stamp)
            sink(Frame(stamp_ns=stamp, cloud=message.message, receipt_s=time.monotonic()))
            count += 1
        if count == 0:
            raise ConfigError(f"{self.bag} has no messages on {self.topic}")
        return count


@dataclass
class LiveSummary:
    """What a live run did."""

    clouds: int
    engine: EngineStats
    wearables: IngestStats
    latency_s: list[float]
    backend: str


def run_live(
    *,
    pipeline: ReidPipeline,
    frame_id: str,
    bag: Path,
    lidar_topic: str,
    rate: float,
    wearable_endpoint: str,
    keys_dir: Path,
    publish_endpoint: str,
    max_delay_s: float,
    stream_timeout_s: float,
    start_at: float | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[str, str], None] | None = None,
) -> LiveSummary:
    """Run the pipeline live: LiDAR bag at its rate + ZeroMQ wearables -> ZeroMQ PUB.

    `on_ready(wearable_endpoint, publish_endpoint)` is called with the bound endpoints once both
    sockets listen (useful with wildcard ports). `start_at`: Unix time at which the bag's start
    plays (default: as soon as the sockets listen).
    """
    context: zmq.Context[Any] = zmq.Context()
    latencies: list[float] = []
    publisher = IdentityPublisher(endpoint=publish_endpoint, context=context)
    engine: ReidEngine | None = None

    def publish(result: FrameResult, frame: Frame, latency: Latency) -> None:
        assert engine is not None
        body = result_to_json(
            result, frame, latency, frame_id=frame_id, dropped=engine.stats().worker.dropped
        )
        publisher.send(body)
        latencies.append(latency.receipt_to_result_s)

    engine = ReidEngine(pipeline=pipeline, to_xyz=pointcloud2_to_xyz, publish=publish)
    ingest = WearableIngest(
        endpoint=wearable_endpoint,
        keys=KeyStore(keys_dir),
        sink=pipeline_sink(pipeline),
        max_delay_s=max_delay_s,
        stream_timeout_s=stream_timeout_s,
    )
    try:
        with ingest:
            engine.start()
            if on_ready is not None:
                on_ready(ingest.bound_endpoint, publisher.bound_endpoint)
            player = LidarBagPlayer(bag=bag, topic=lidar_topic, rate=rate, start_at=start_at)
            try:
                clouds = player.play(engine.submit, stop)
            finally:
                engine.stop(drain_timeout_s=5.0)
            wearables = ingest.stats()
    finally:
        publisher.close()
        context.term()
    return LiveSummary(
        clouds=clouds,
        engine=engine.stats(),
        wearables=wearables,
        latency_s=latencies,
        backend=pipeline.backend_name,
    )
