"""Stream identity metrics on hand-built frames whose right answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from rt_reid.evaluation.metrics import (
    Frame,
    Labelled,
    calibration_records,
    expected_calibration_error,
    frame_from_detections,
    identity_metrics,
    latency_percentiles,
    match_frame,
)
from rt_reid.io.bag import msg_class, typestore
from rt_reid.io.ros_msgs import MessageTypes, detections_msg
from rt_reid.runtime.pipeline import FrameResult, IdentityTrack

START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000


def box(key: str, identity: str | None, x: float, y: float = 0.0) -> Labelled:
    return Labelled(key, identity, 1.0, np.array([x, y, 0.0]))


def stamp(i: int) -> int:
    return START_NS + i * PERIOD_NS


def two_people(frames: int) -> list[Frame]:
    """Person 1 (alice) at x=0, person 2 (bob) at x=3, bystander 3 at x=6, all present."""
    return [
        Frame(stamp(i), (box("1", "alice", 0.0), box("2", "bob", 3.0), box("3", None, 6.0)))
        for i in range(frames)
    ]


def test_perfect_output_scores_one_after_warmup() -> None:
    truth = two_people(60)  # 6 s: 30 frames in warm-up (3 s), 30 scored
    output = [
        Frame(f.stamp_ns, (box("7", "alice", 0.1), box("8", "bob", 3.1), box("9", None, 6.2)))
        for f in truth
    ]
    m = identity_metrics(truth, output)
    assert m.scored_person_frames == 2 * 30
    assert m.identity_accuracy == 1.0
    assert m.wrong_claims == 0
    assert m.id_switches == 0
    assert m.bystander_frames == 30
    assert m.bystander_labelled_frames == 0
    assert m.time_to_identity_s == {"1": 0.0, "2": 0.0}
    assert m.never_identified == []
    assert len(m.accuracy_over_time) == 30


def test_errors_are_counted_by_kind() -> None:
    truth = two_people(40)  # frames 30..39 scored
    output = []
    for i, f in enumerate(truth):
        if i < 33:
            boxes = (box("7", "alice", 0.0), box("8", None, 3.0))  # bob unknown
        elif i < 36:
            boxes = (box("7", "bob", 0.0), box("8", "alice", 3.0))  # swapped: 2 wrong claims
        else:
            boxes = (box("7", "alice", 0.0), box("9", "bob", 6.0))  # bob missed, bystander "bob"
        output.append(Frame(f.stamp_ns, boxes))
    m = identity_metrics(truth, output)
    assert m.scored_person_frames == 20
    # alice correct on 30-32 and 36-39 (7 frames); bob never correct.
    assert m.correct_person_frames == 7
    assert m.unknown_person_frames == 3
    assert m.wrong_person_frames == 6
    assert m.missed_person_frames == 4
    assert m.bystander_labelled_frames == 4
    assert m.wrong_claims == 6 + 4
    assert m.wrong_claims_per_frame == pytest.approx(10 / 40)
    # alice: alice -> bob -> alice = 2 switches; bob: alice (wrong) only, no change.
    assert m.id_switches == 2
    assert m.never_identified == ["2"]
    assert m.identity_accuracy == pytest.approx(7 / 20)
    assert m.tracked_accuracy == pytest.approx(7 / 16)


def test_unmatched_track_claiming_identity_is_a_wrong_claim() -> None:
    truth = [Frame(stamp(i), (box("1", "alice", 0.0),)) for i in range(35)]
    output = [Frame(f.stamp_ns, (box("5", "alice", 0.0), box("6", "bob", 4.0))) for f in truth]
    m = identity_metrics(truth, output)
    assert m.identity_accuracy == 1.0
    assert m.wrong_claims == 35  # the ghost track at x=4 claims bob on every frame


def test_gate_prevents_far_matches() -> None:
    truth = [Frame(stamp(i), (box("1", "alice", 0.0),)) for i in range(31)]
    output = [Frame(f.stamp_ns, (box("5", "alice", 0.9),)) for f in truth]
    assert identity_metrics(truth, output, gate_m=0.75).missed_person_frames == 1
    assert identity_metrics(truth, output, gate_m=1.0).correct_person_frames == 1


def test_match_frame_is_one_to_one_and_nearest() -> None:
    truth = (box("1", "a", 0.0), box("2", "b", 0.5))
    output = (box("x", None, 0.45), box("y", None, 0.05))
    assert match_frame(truth, output, gate_m=0.75) == {0: 1, 1: 0}
    assert match_frame(truth, (), gate_m=0.75) == {}


def test_reentry_restarts_warmup_and_missing_output_counts_as_missed() -> None:
    # Present 0-4.9 s, gone 5-9.9 s, back 10-15.9 s.
    present = [i for i in range(160) if i < 50 or i >= 100]
    truth = [Frame(stamp(i), (box("1", "alice", 0.0),)) for i in present]
    output = [Frame(stamp(i), (box("5", "alice", 0.0),)) for i in present if i != 140]
    m = identity_metrics(truth, output)
    assert m.scored_person_frames == 20 + 30  # 3-4.9 s and 13-15.9 s
    assert m.missed_person_frames == 1
    assert m.correct_person_frames == 49


def test_decodes_the_pipeline_output_message() -> None:
    types = MessageTypes.from_lookup(msg_class)
    result = FrameResult(
        stamp_s=stamp(3) * 1e-9,
        tracks=[
            IdentityTrack(4, np.array([1.0, 2.0, 0.5]), np.ones(3), "alice", 0.9),
            IdentityTrack(5, np.array([-1.0, 0.0, 0.5]), np.ones(3), None, 0.7),
        ],
        timings={},
        similarity=np.zeros((2, 1)),
        evidence=np.zeros((2, 1)),
        identities=("alice",),
    )
    msg = detections_msg(result, types, frame_id="lidar", stamp_ns=stamp(3))
    raw = typestore().serialize_cdr(msg, msg.__msgtype__)
    decoded = frame_from_detections(typestore().deserialize_cdr(raw, msg.__msgtype__))
    assert decoded.stamp_ns == stamp(3)  # exact: a float stamp would lose ~100 ns here
    assert [(b.key, b.identity) for b in decoded.boxes] == [("4", "alice"), ("5", None)]
    assert decoded.boxes[0].score == pytest.approx(0.9)
    np.testing.assert_allclose(decoded.boxes[0].position, [1.0, 2.0, 0.5])


def test_latency_percentiles_in_milliseconds() -> None:
    table = latency_percentiles({"total": [0.001 * k for k in range(1, 101)], "empty": []})
    assert set(table) == {"total"}
    assert table["total"]["p50"] == pytest.approx(50.5)
    assert table["total"]["max"] == pytest.approx(100.0)
    assert table["total"]["p99"] == pytest.approx(99.01)


def test_calibration_records_pair_margins_with_correctness() -> None:
    truth = [Frame(stamp(0), (box("1", "alice", 0.0), box("3", None, 6.0), box("2", "bob", 3.0)))]
    candidates = [
        Frame(
            stamp(0),
            (
                Labelled("7", "alice", 4.0, np.array([0.0, 0.0, 0.0])),  # right
                Labelled("8", "alice", 1.5, np.array([6.0, 0.0, 0.0])),  # bystander: always wrong
                Labelled("9", None, 0.0, np.array([3.0, 0.0, 0.0])),  # no candidate: no record
                Labelled("5", "bob", 2.0, np.array([9.0, 0.0, 0.0])),  # matches nobody: no record
            ),
        )
    ]
    assert sorted(calibration_records(truth, candidates)) == [(1.5, False), (4.0, True)]


def test_expected_calibration_error() -> None:
    # Perfectly calibrated bins: 0.25 confidence right 1 in 4, 0.75 right 3 in 4.
    confidence = [0.25] * 4 + [0.75] * 4
    correct = [True, False, False, False, True, True, True, False]
    ece, table = expected_calibration_error(confidence, correct, bins=10)
    assert ece == pytest.approx(0.0)
    assert table == [(0.25, 0.25, 4), (0.75, 0.75, 4)]
    # Always 0.9 confident, right half the time: ECE 0.4.
    assert expected_calibration_error([0.9] * 4, [True, False] * 2)[0] == pytest.approx(0.4)
    assert np.isnan(expected_calibration_error([], [])[0])
