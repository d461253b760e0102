"""Identity assignment: evidence accumulated over time per (track, identity), then a gated matching.

Two channels feed one evidence store. Learned: each encoded window turns a DeSPITE cosine
similarity into bounded evidence (a linear log-likelihood ratio, weighted by how well the track
was observed), summed with exponential forgetting per pair. Physics: the current
log-likelihood ratio of `rt_reid.runtime.physics.MotionEvidence` (which accumulates its own
statistics).
The fused evidence is their weighted sum; a weight of 0 switches a channel off. Evidence belongs
to the person: a track that continues a broken one (`inherit`) takes over its evidence and label.
Each frame a one-to-one Hungarian matching over the fused evidence picks candidate pairs; a
pair is labelled only if its evidence beats every competitor (the other identities of that
track, the other tracks of that identity, and "unknown" = 0) by a margin,
with a lower margin to keep a held label than to acquire one (hysteresis). Confidence is a
logistic map of that margin whose two parameters are fitted on held-out data (`fit_calibration`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment, minimize

from rt_reid.arrays import BoolArray, F64Array
from rt_reid.errors import ReidError


class CalibrationError(ReidError):
    """Calibration data are insufficient (empty, one class only, or not finite)."""


@dataclass(frozen=True)
class Calibration:
    """Logistic map margin -> confidence: sigmoid(slope * margin + intercept)."""

    slope: float
    intercept: float

    def confidence(self, margin: float) -> float:
        """Probability that a candidate with this evidence margin is the right identity."""
        z = self.slope * margin + self.intercept
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True)
class EvidenceParams:
    """Evidence and gating parameters (from `ReidConfig.identity`; meanings in the schema)."""

    llr_slope: float
    llr_threshold: float
    llr_clip: float
    half_life_s: float
    max_evidence: float
    assign_evidence: float
    keep_evidence: float
    calibration: Calibration
    learned_weight: float
    physics_weight: float


@dataclass(frozen=True)
class TrackEvidence:
    """What a track hands over to the track that continues it: learned evidence and its label."""

    learned: F64Array
    held: int | None


@dataclass(frozen=True)
class Assignment:
    """Outcome for one track: its identity (None = unknown), best candidate, margin and score."""

    track_id: int
    identity: str | None
    candidate: str | None
    margin: float
    score: float


class IdentityAssigner:
    """Evidence store and matcher for a fixed list of identities.

    Input per frame (`update`): the frame stamp, the live track ids (with whether each may be
    labelled, e.g. confirmed), the similarities of the tracks encoded this frame and which
    identities are active (IMU not silent). Output: one `Assignment` per live track.
    """

    def __init__(self, *, identities: Sequence[str], params: EvidenceParams) -> None:
        if params.keep_evidence > params.assign_evidence:
            raise ReidError(
                f"keep_evidence {params.keep_evidence} must not exceed assign_evidence "
                f"{params.assign_evidence} (hysteresis keeps a label more easily than it is given)"
            )
        self.identities = tuple(identities)
        self.params = params
        self._evidence: dict[int, F64Array] = {}  # learned channel, accumulated
        self._physics: dict[int, F64Array] = {}  # physics channel, current log-likelihood ratio
        self._held: dict[int, int] = {}  # track id -> identity column currently labelled
        self._last_stamp: float | None = None

    def reset(self) -> None:
        """Forget all evidence and labels."""
        self._evidence.clear()
        self._physics.clear()
        self._held.clear()
        self._last_stamp = None

    def handover(self, track_id: int) -> TrackEvidence | None:
        """The evidence and label of a track (before it ends), or None if it has none."""
        learned = self._evidence.get(track_id)
        if learned is None:
            return None
        return TrackEvidence(learned.copy(), self._held.get(track_id))

    def inherit(self, track_id: int, evidence: TrackEvidence) -> None:
        """Continue a broken track: `track_id` adds its evidence and, if free, takes its label."""
        own = self._evidence.get(track_id)
        self._evidence[track_id] = evidence.learned + (0.0 if own is None else own)
        if (
            evidence.held is not None
            and track_id not in self._held
            and evidence.held not in self._held.values()
        ):
            self._held[track_id] = evidence.held

    def window_evidence(self, similarity: F64Array) -> F64Array:
        """Bounded log-likelihood ratio of cosine similarities (NaN = not scored -> 0)."""
        p = self.params
        llr = np.clip(p.llr_slope * (similarity - p.llr_threshold), -p.llr_clip, p.llr_clip)
        result: F64Array = np.nan_to_num(llr, nan=0.0)
        return result

    def evidence(self, track_ids: Sequence[int]) -> F64Array:
        """Fused evidence (len(track_ids), identities); zeros for unknown track ids."""
        p = self.params
        zero = np.zeros(len(self.identities))
        learned = np.array([self._evidence.get(t, zero) for t in track_ids])
        physics = np.array([self._physics.get(t, zero) for t in track_ids])
        fused = p.learned_weight * learned + p.physics_weight * physics
        return fused.reshape(len(track_ids), len(self.identities))

    def update(
        self,
        stamp_s: float,
        *,
        live: Mapping[int, bool],
        similarity: Mapping[int, tuple[F64Array, float]],
        active: BoolArray,
        physics: Mapping[int, F64Array] | None = None,
    ) -> list[Assignment]:
        """Advance to `stamp_s`, add this frame's evidence, and label the live tracks.

        `live`: track id -> may be labelled (confirmed). `similarity`: track id -> (cosine per
        identity (NaN where not scored), reliability weight in [0, 1]). `active`: per identity.
        `physics`: track id -> the physics channel's current log-likelihood ratio per identity.
        """
        p = self.params
        dt = 0.0 if self._last_stamp is None else max(0.0, stamp_s - self._last_stamp)
        self._last_stamp = stamp_s
        decay = 0.5 ** (dt / p.half_life_s)
        for track_id in [t for t in self._evidence if t not in live]:
            del self._evidence[track_id]
            self._physics.pop(track_id, None)
            self._held.pop(track_id, None)
        if physics is not None:
            self._physics.update({t: np.asarray(row, np.float64) for t, row in physics.items()})
        for track_id in live:
            row = self._evidence.get(track_id)
            row = np.zeros(len(self.identities)) if row is None else row * decay
            if track_id in similarity:
                cosine, weight = similarity[track_id]
                row = row + weight * self.window_evidence(np.asarray(cosine, np.float64))
            self._evidence[track_id] = np.clip(row, -p.max_evidence, p.max_evidence)
        return self._assign(list(live), [live[t] for t in live], np.asarray(active, bool))

    def _assign(
        self, track_ids: list[int], eligible: list[bool], active: BoolArray
    ) -> list[Assignment]:
        """Gated one-to-one matching with hysteresis on the accumulated evidence."""
        p = self.params
        evidence = self.evidence(track_ids)
        masked = np.where(active[None, :], evidence, -np.inf)  # silent identities never compete
        held = np.zeros_like(evidence, dtype=bool)
        for row, track_id in enumerate(track_ids):
            if track_id in self._held:
                held[row, self._held[track_id]] = True
        allowed = np.isfinite(masked) & (masked > 0) & np.asarray(eligible, bool)[:, None]
        matched: dict[int, int] = {}
        if allowed.any():
            bonus = np.where(held, p.assign_evidence - p.keep_evidence, 0.0)
            score = np.where(allowed, masked + bonus, -1e9)
            for row, col in zip(*linear_sum_assignment(score, maximize=True), strict=True):
                if allowed[row, col]:
                    matched[int(row)] = int(col)
        results: list[Assignment] = []
        new_held: dict[int, int] = {}
        for row, track_id in enumerate(track_ids):
            col = matched.get(row)
            if col is None and active.any() and evidence.shape[1]:
                col_best = int(np.argmax(masked[row]))
                margin = self._margin(masked, row, col_best)
                confidence = p.calibration.confidence(margin)
                results.append(
                    Assignment(track_id, None, self.identities[col_best], margin, 1.0 - confidence)
                )
                continue
            if col is None:
                results.append(Assignment(track_id, None, None, 0.0, 1.0))
                continue
            margin = self._margin(masked, row, col)
            gate = p.keep_evidence if held[row, col] else p.assign_evidence
            confidence = p.calibration.confidence(margin)
            if margin >= gate:
                new_held[track_id] = col
                results.append(
                    Assignment(
                        track_id, self.identities[col], self.identities[col], margin, confidence
                    )
                )
            else:
                results.append(
                    Assignment(track_id, None, self.identities[col], margin, 1.0 - confidence)
                )
        self._held = new_held
        return results

    @staticmethod
    def _margin(masked: F64Array, row: int, col: int) -> float:
        """Evidence of (row, col) minus its best competitor: row, column, or unknown (0)."""
        others_in_row = np.delete(masked[row], col)
        others_in_col = np.delete(masked[:, col], row)
        competitor = max(
            0.0,
            float(others_in_row.max()) if others_in_row.size else 0.0,
            float(others_in_col.max()) if others_in_col.size else 0.0,
        )
        return float(masked[row, col]) - competitor


def fit_calibration(records: Iterable[tuple[float, bool]], *, l2: float = 1e-3) -> Calibration:
    """Fit the margin -> confidence map by logistic regression on (margin, candidate correct).

    Use held-out replays: for every person-frame with a candidate, its `margin` and whether the
    candidate is that person's true identity (bystanders: always False).
    """
    data = np.array([(float(m), float(bool(c))) for m, c in records], dtype=np.float64)
    if data.ndim != 2 or len(data) < 2 or not np.all(np.isfinite(data)):
        raise CalibrationError("calibration needs at least two finite (margin, correct) records")
    margin, label = data[:, 0], data[:, 1]
    if label.min() == label.max():
        raise CalibrationError("calibration needs both correct and wrong candidates")
    scale = max(float(np.std(margin)), 1e-6)

    def loss(theta: F64Array) -> tuple[float, F64Array]:
        z = theta[0] * margin / scale + theta[1]
        nll = np.logaddexp(0.0, z) - label * z
        prob = 0.5 * (1.0 + np.tanh(0.5 * z))
        grad = np.array([np.mean((prob - label) * margin / scale), np.mean(prob - label)])
        return float(nll.mean() + l2 * theta[0] ** 2), grad + np.array([2 * l2 * theta[0], 0.0])

    fitted = minimize(loss, np.zeros(2), jac=True, method="L-BFGS-B")
    return Calibration(slope=float(fitted.x[0] / scale), intercept=float(fitted.x[1]))


def fit_similarity_llr(matched: ArrayLike, unmatched: ArrayLike) -> tuple[float, float]:
    """(llr_slope, llr_threshold) from held-out cosines of true and false pairs.

    Equal-variance Gaussian model: LLR(s) = (mu1 - mu0) / var * (s - (mu0 + mu1) / 2).
    """
    pos, neg = np.asarray(matched, np.float64), np.asarray(unmatched, np.float64)
    if len(pos) < 2 or len(neg) < 2:
        raise CalibrationError("need at least two matched and two unmatched similarities")
    var = 0.5 * (pos.var(ddof=1) + neg.var(ddof=1))
    gap = float(pos.mean() - neg.mean())
    if gap <= 0 or var <= 0:
        raise CalibrationError(
            f"matched similarities (mean {pos.mean():.3f}) do not exceed unmatched ones "
            f"(mean {neg.mean():.3f}); the model does not separate identities"
        )
    return gap / float(var), float(0.5 * (pos.mean() + neg.mean()))
