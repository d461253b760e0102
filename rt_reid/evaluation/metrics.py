"""Stream identity metrics (ARCHITECTURE.md): how often the right name sits on the right person.

Ground-truth persons and output tracks are matched per frame by horizontal position (Hungarian
with a distance gate). Each person is scored only after a warm-up that starts whenever they enter
the room (a window of frames has to exist before any identity can be known). Both the ground
truth and the output are `vision_msgs/Detection3DArray` in the bags, so one decoder reads both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from rt_reid.errors import MessageError
from rt_reid.names import UNKNOWN, stamp_ns

WARMUP_S = 3.0
GATE_M = 0.75
REENTRY_GAP_S = 1.0  # absence from the ground truth longer than this counts as leaving the room


@dataclass(frozen=True)
class Labelled:
    """One box of a frame: a ground-truth person or an output track, with its identity claim."""

    key: str  # person id (ground truth) or track id (output)
    identity: str | None  # None: bystander (ground truth) or "unknown" (output)
    score: float
    position: NDArray[np.float64]  # (3,) in the LiDAR frame


@dataclass(frozen=True)
class Frame:
    """All boxes at one LiDAR stamp (integer nanoseconds, the join key between bags)."""

    stamp_ns: int
    boxes: tuple[Labelled, ...]


def frame_from_detections(msg: Any) -> Frame:
    """Decode a Detection3DArray (ground truth or /reid/identities) into a Frame.

    A detection without results, or whose first result is "unknown" or empty, carries no identity.
    """
    try:
        boxes = []
        for det in msg.detections:
            identity: str | None = None
            score = 0.0
            if len(det.results) > 0:
                hypothesis = det.results[0].hypothesis
                name = str(hypothesis.class_id)
                identity = None if name in ("", UNKNOWN) else name
                score = float(hypothesis.score)
            centre = det.bbox.center.position
            position = np.array([centre.x, centre.y, centre.z], dtype=np.float64)
            boxes.append(Labelled(str(det.id), identity, score, position))
        return Frame(stamp_ns(msg.header.stamp), tuple(boxes))
    except AttributeError as err:
        raise MessageError(f"not a vision_msgs/Detection3DArray: {err}") from err


def match_frame(
    truth: Sequence[Labelled], output: Sequence[Labelled], *, gate_m: float
) -> dict[int, int]:
    """Match ground-truth index -> output index by horizontal distance, within `gate_m` metres."""
    if not truth or not output:
        return {}
    gt_xy = np.array([b.position[:2] for b in truth])
    out_xy = np.array([b.position[:2] for b in output])
    distance = np.linalg.norm(gt_xy[:, None, :] - out_xy[None, :, :], axis=2)
    cost = np.where(distance <= gate_m, distance, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if distance[r, c] <= gate_m}


@dataclass
class IdentityMetrics:
    """Stream identity metrics over one bag (fractions in [0, 1], times in seconds)."""

    frames: int = 0
    scored_person_frames: int = 0  # identity-bearing persons, after warm-up
    correct_person_frames: int = 0
    missed_person_frames: int = 0  # scored person-frames without a matched track
    unknown_person_frames: int = 0  # matched, but labelled "unknown"
    wrong_person_frames: int = 0  # matched, but labelled with another identity
    wrong_claims: int = 0  # tracks claiming an identity that is not their person's
    bystander_frames: int = 0  # bystander person-frames after warm-up
    bystander_labelled_frames: int = 0
    id_switches: int = 0  # changes of the identity claimed on one person
    persons: int = 0
    bystanders: int = 0
    never_identified: list[str] = field(default_factory=list)
    time_to_identity_s: dict[str, float] = field(default_factory=dict)
    accuracy_over_time: list[tuple[float, float]] = field(default_factory=list)  # (t, accuracy)

    @property
    def identity_accuracy(self) -> float:
        """Correctly labelled scored person-frames (missed and unknown count as wrong)."""
        return self.correct_person_frames / max(self.scored_person_frames, 1)

    @property
    def tracked_accuracy(self) -> float:
        """Accuracy over scored person-frames with a matched track (tracker misses excluded)."""
        tracked = self.scored_person_frames - self.missed_person_frames
        return self.correct_person_frames / max(tracked, 1)

    @property
    def wrong_claims_per_frame(self) -> float:
        """Mean number of tracks per frame that carry a wrong identity."""
        return self.wrong_claims / max(self.frames, 1)

    @property
    def bystander_labelled_rate(self) -> float:
        """Share of bystander person-frames on which some identity was claimed."""
        return self.bystander_labelled_frames / max(self.bystander_frames, 1)

    @property
    def missed_rate(self) -> float:
        """Share of scored person-frames without any matched track."""
        return self.missed_person_frames / max(self.scored_person_frames, 1)

    def summary(self) -> dict[str, Any]:
        """Flat dict of the headline numbers (for printing, JSON and the report)."""
        times = list(self.time_to_identity_s.values())
        return {
            "identity_accuracy": self.identity_accuracy,
            "tracked_accuracy": self.tracked_accuracy,
            "wrong_claims_per_frame": self.wrong_claims_per_frame,
            "bystander_labelled_rate": self.bystander_labelled_rate,
            "bystander_labelled_frames": self.bystander_labelled_frames,
            "id_switches": self.id_switches,
            "missed_rate": self.missed_rate,
            "unknown_person_frames": self.unknown_person_frames,
            "wrong_person_frames": self.wrong_person_frames,
            "scored_person_frames": self.scored_person_frames,
            "persons": self.persons,
            "bystanders": self.bystanders,
            "never_identified": len(self.never_identified),
            "time_to_identity_median_s": float(np.median(times)) if times else float("nan"),
            "time_to_identity_max_s": float(np.max(times)) if times else float("nan"),
            "frames": self.frames,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable."""
        data = asdict(self)
        data.update(self.summary())
        return data


# IdentityMetrics counts that add up over bags (pooled rates are computed from their sums).
POOLED_COUNTS = (
    "frames",
    "scored_person_frames",
    "correct_person_frames",
    "missed_person_frames",
    "unknown_person_frames",
    "wrong_person_frames",
    "wrong_claims",
    "bystander_frames",
    "bystander_labelled_frames",
    "id_switches",
    "persons",
    "bystanders",
)


def pool_identity(parts: Sequence[IdentityMetrics]) -> IdentityMetrics:
    """Several bags' metrics as one: counts summed, so every rate is over all person-frames (not
    a mean of per-bag rates); per-person times keyed ``<bag index>:<person>``."""
    pooled = IdentityMetrics(**{key: sum(getattr(p, key) for p in parts) for key in POOLED_COUNTS})
    pooled.never_identified = [name for p in parts for name in p.never_identified]
    pooled.time_to_identity_s = {
        f"{i}:{person}": seconds
        for i, p in enumerate(parts)
        for person, seconds in p.time_to_identity_s.items()
    }
    return pooled


def _scored_mask(
    stamps_s: NDArray[np.float64], present: NDArray[np.bool_], warmup_s: float
) -> NDArray[np.bool_]:
    """Frames on which a person counts: present, and `warmup_s` after their latest entry."""
    scored = np.zeros_like(present)
    entry = -np.inf
    last_seen = -np.inf
    for i, (t, here) in enumerate(zip(stamps_s, present, strict=True)):
        if not here:
            continue
        if t - last_seen > REENTRY_GAP_S:
            entry = t
        last_seen = t
        scored[i] = t - entry >= warmup_s
    return scored


def identity_metrics(
    truth: Sequence[Frame],
    output: Iterable[Frame],
    *,
    warmup_s: float = WARMUP_S,
    gate_m: float = GATE_M,
) -> IdentityMetrics:
    """Score output frames against ground-truth frames (joined by stamp; missing output = empty)."""
    by_stamp = {frame.stamp_ns: frame for frame in output}
    frames = sorted(truth, key=lambda f: f.stamp_ns)
    stamps_s = np.array([f.stamp_ns * 1e-9 for f in frames])
    keys = sorted({b.key for f in frames for b in f.boxes})
    index = {k: i for i, k in enumerate(keys)}
    present = np.zeros((len(keys), len(frames)), dtype=bool)
    identity_of: dict[str, str | None] = {}
    for t, frame in enumerate(frames):
        for box in frame.boxes:
            present[index[box.key], t] = True
            identity_of[box.key] = box.identity
    scored = np.array(
        [_scored_mask(stamps_s, present[i], warmup_s) for i in range(len(keys))], dtype=bool
    ).reshape(present.shape)
    first_seen = {k: float(stamps_s[np.argmax(present[index[k]])]) for k in keys}

    result = IdentityMetrics(frames=len(frames))
    result.persons = sum(1 for k in keys if identity_of[k] is not None)
    result.bystanders = len(keys) - result.persons
    last_claim: dict[str, str] = {}
    for t, frame in enumerate(frames):
        tracks = by_stamp.get(frame.stamp_ns, Frame(frame.stamp_ns, ())).boxes
        matches = match_frame(frame.boxes, tracks, gate_m=gate_m)
        matched_tracks = set(matches.values())
        frame_scored = frame_correct = 0
        for g, person in enumerate(frame.boxes):
            row = index[person.key]
            claim = tracks[matches[g]].identity if g in matches else None
            if person.identity is not None and claim == person.identity:
                delay = float(stamps_s[t]) - first_seen[person.key]
                result.time_to_identity_s.setdefault(person.key, delay)
            if not scored[row, t]:
                continue
            if person.identity is None:
                result.bystander_frames += 1
                if claim is not None:
                    result.bystander_labelled_frames += 1
                    result.wrong_claims += 1
                continue
            frame_scored += 1
            if g not in matches:
                result.missed_person_frames += 1
            elif claim == person.identity:
                frame_correct += 1
            elif claim is None:
                result.unknown_person_frames += 1
            else:
                result.wrong_person_frames += 1
                result.wrong_claims += 1
            if claim is not None:
                previous = last_claim.get(person.key)
                if previous is not None and previous != claim:
                    result.id_switches += 1
                last_claim[person.key] = claim
        result.wrong_claims += sum(
            1
            for j, track in enumerate(tracks)
            if j not in matched_tracks and track.identity is not None
        )
        result.scored_person_frames += frame_scored
        result.correct_person_frames += frame_correct
        if frame_scored:
            result.accuracy_over_time.append((float(stamps_s[t]), frame_correct / frame_scored))
    result.never_identified = sorted(
        k for k in keys if identity_of[k] is not None and k not in result.time_to_identity_s
    )
    return result


PERCENTILES = (50.0, 90.0, 99.0)


def latency_percentiles(timings: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """Per stage: p50/p90/p99/max/mean in milliseconds from per-frame durations in seconds."""
    table: dict[str, dict[str, float]] = {}
    for stage, values in timings.items():
        ms = np.asarray(values, dtype=np.float64) * 1e3
        if ms.size == 0:
            continue
        row = {f"p{p:g}": float(np.percentile(ms, p)) for p in PERCENTILES}
        row["max"] = float(ms.max())
        row["mean"] = float(ms.mean())
        table[stage] = row
    return table


def calibration_records(
    truth: Sequence[Frame], candidates: Iterable[Frame], *, gate_m: float = GATE_M
) -> list[tuple[float, bool]]:
    """(margin, candidate is right) for every person-frame whose matched track has a candidate.

    `candidates` carry each track's best candidate identity as `identity` and its evidence
    margin as `score` (`ReplayResult.candidates`); bystanders' candidates are always wrong.
    This is the input of `rt_reid.runtime.identity.fit_calibration`.
    """
    by_stamp = {frame.stamp_ns: frame for frame in candidates}
    records: list[tuple[float, bool]] = []
    for frame in truth:
        tracks = by_stamp.get(frame.stamp_ns, Frame(frame.stamp_ns, ())).boxes
        for g, t in match_frame(frame.boxes, tracks, gate_m=gate_m).items():
            track = tracks[t]
            if track.identity is not None and math.isfinite(track.score):
                truth_identity = frame.boxes[g].identity
                right = truth_identity is not None and track.identity == truth_identity
                records.append((track.score, right))
    return records


def expected_calibration_error(
    confidence: Sequence[float], correct: Sequence[bool], *, bins: int = 10
) -> tuple[float, list[tuple[float, float, int]]]:
    """ECE over equal-width confidence bins, and per bin (mean confidence, accuracy, count)."""
    p = np.asarray(confidence, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if p.size == 0:
        return float("nan"), []
    which = np.minimum((p * bins).astype(int), bins - 1)
    table: list[tuple[float, float, int]] = []
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        table.append((float(p[mask].mean()), float(y[mask].mean()), int(mask.sum())))
        ece += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(ece), table
