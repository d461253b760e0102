"""Latest-frame worker: a frame not started before the next one arrives is dropped and counted."""

from __future__ import annotations

import json
import threading

import numpy as np

from rt_reid.runtime.live import Frame, Latency, LatestFrameWorker, ReidEngine, result_to_json
from rt_reid.runtime.pipeline import FrameResult, IdentityTrack


def test_newest_frame_wins_and_drops_are_counted() -> None:
    release = threading.Event()
    started = threading.Event()
    processed: list[int] = []

    def process(item: int) -> None:
        started.set()
        release.wait(5.0)
        processed.append(item)

    worker: LatestFrameWorker[int] = LatestFrameWorker(process=process, name="test-worker")
    worker.start()
    try:
        assert worker.submit(1)
        assert started.wait(5.0)  # item 1 is being processed and blocks
        accepted = [worker.submit(i) for i in range(2, 11)]
        assert accepted == [True] + [False] * 8  # 2 waits; 3..10 each displace the waiting one
        release.set()
        assert worker.drain(5.0)
    finally:
        worker.stop()
    assert processed == [1, 10]
    stats = worker.stats()
    assert (stats.submitted, stats.processed, stats.dropped, stats.errors) == (10, 2, 8, 0)


def test_a_failing_frame_is_counted_and_the_worker_keeps_going() -> None:
    seen: list[int] = []

    def process(item: int) -> None:
        if item == 1:
            raise ValueError("corrupt frame")
        seen.append(item)

    worker: LatestFrameWorker[int] = LatestFrameWorker(process=process, name="test-worker")
    worker.start()
    try:
        worker.submit(1)
        assert worker.drain(5.0)
        worker.submit(2)
        assert worker.drain(5.0)
    finally:
        worker.stop()
    assert seen == [2]
    assert worker.stats().errors == 1


class ScriptedPipeline:
    """Records the calls the engine makes, in order (the real pipeline is used end to end).

    Like ReidPipeline, a frame with the previous frame's stamp returns the previous result.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.previous: FrameResult | None = None

    def process_frame(self, stamp_s: float, xyz: np.ndarray) -> FrameResult:
        self.calls.append(("frame", round(stamp_s, 3)))
        assert xyz.shape == (5, 3)
        if self.previous is not None and self.previous.stamp_s == stamp_s:
            return self.previous
        track = IdentityTrack(3, np.array([1.0, 2.0, 0.9]), np.array([0.5, 0.4, 1.7]), "w1", 0.9)
        self.previous = FrameResult(
            stamp_s=stamp_s,
            tracks=[track],
            timings={"perception": 0.01, "total": 0.02},
            similarity=np.zeros((1, 1)),
            evidence=np.zeros((1, 1)),
            identities=("w1",),
        )
        return self.previous

    def reset(self, reason: str) -> None:
        self.calls.append(("reset", reason))


def test_engine_resets_on_request_before_the_next_frame_and_publishes_json() -> None:
    pipeline = ScriptedPipeline()
    published: list[bytes] = []

    def publish(result: FrameResult, frame: Frame, latency: Latency) -> None:
        published.append(result_to_json(result, frame, latency, frame_id="lidar", dropped=0))

    engine = ReidEngine(pipeline=pipeline, to_xyz=lambda cloud: cloud, publish=publish)
    engine.start()
    try:
        points = np.zeros((5, 3), np.float32)
        engine.submit(Frame(stamp_ns=2_000_000_000, cloud=points, receipt_s=0.0))
        assert engine.drain(5.0)
        engine.submit(Frame(stamp_ns=2_000_000_000, cloud=points, receipt_s=0.0))
        assert engine.drain(5.0)
        engine.request_reset("time jumped back")
        engine.submit(Frame(stamp_ns=1_000_000_000, cloud=points, receipt_s=0.0))
    finally:
        engine.stop(drain_timeout_s=5.0)
    assert pipeline.calls == [
        ("frame", 2.0),
        ("frame", 2.0),
        ("reset", "time jumped back"),
        ("frame", 1.0),
    ]
    stats = engine.stats()
    assert (stats.frames, stats.duplicates, stats.requested_resets) == (2, 1, 1)
    assert [json.loads(body)["stamp_ns"] for body in published] == [2_000_000_000, 1_000_000_000]
    body = json.loads(published[-1])
    assert body["stamp_ns"] == 1_000_000_000
    assert body["tracks"] == [
        {
            "track_id": 3,
            "identity": "w1",
            "score": 0.9,
            "position": [1.0, 2.0, 0.9],
            "extent": [0.5, 0.4, 1.7],
        }
    ]
    assert set(body["latency_s"]) == {"receipt_to_publish", "queued", "perception", "total"}
