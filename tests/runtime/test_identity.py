"""IdentityAssigner: evidence accumulation, gate, hysteresis, track lifecycle; calibration fits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rt_reid.errors import ReidError
from rt_reid.runtime.identity import (
    Assignment,
    Calibration,
    CalibrationError,
    EvidenceParams,
    IdentityAssigner,
    fit_calibration,
    fit_similarity_llr,
)

PARAMS = EvidenceParams(
    llr_slope=8.0,
    llr_threshold=0.3,
    llr_clip=3.0,
    half_life_s=4.0,
    max_evidence=30.0,
    assign_evidence=6.0,
    keep_evidence=3.0,
    calibration=Calibration(0.6, -1.0),
    learned_weight=1.0,  # these tests feed learned similarities; physics is fused separately
    physics_weight=1.0,
)
ALL = np.array([True, True])


def _assigner() -> IdentityAssigner:
    return IdentityAssigner(identities=("alice", "bob"), params=PARAMS)


def _step(
    assigner: IdentityAssigner,
    t: float,
    sims: dict[int, list[float]],
    *,
    live: dict[int, bool] | None = None,
    active: np.ndarray = ALL,
    weight: float = 1.0,
) -> dict[int, Assignment]:
    live = live if live is not None else dict.fromkeys(sims, True)
    similarity = {tid: (np.asarray(s, float), weight) for tid, s in sims.items()}
    return {
        a.track_id: a for a in assigner.update(t, live=live, similarity=similarity, active=active)
    }


def test_evidence_accumulates_before_a_label_is_given() -> None:
    assigner = _assigner()
    out = _step(assigner, 0.0, {1: [0.6, 0.0], 2: [0.0, 0.6]})
    assert out[1].identity is None
    assert out[1].candidate == "alice"
    for k in range(1, 4):
        out = _step(assigner, 0.1 * k, {1: [0.6, 0.0], 2: [0.0, 0.6]})
    assert out[1].identity == "alice"
    assert out[2].identity == "bob"
    assert 0.5 < out[1].score <= 1.0
    assert out[1].margin == pytest.approx(assigner.evidence([1])[0, 0])


def test_bystander_and_ambiguous_tracks_stay_unknown() -> None:
    assigner = _assigner()
    for k in range(50):  # track 3 matches nobody; tracks 1 and 2 look equally like alice
        out = _step(assigner, 0.1 * k, {1: [0.9, 0.0], 2: [0.9, 0.0], 3: [0.1, 0.2]})
    assert out[1].identity is None
    assert out[2].identity is None
    assert out[3].identity is None
    assert out[3].score > 0.5
    assert np.all(assigner.evidence([3]) < 0)


def test_hysteresis_keeps_a_label_through_a_weak_patch() -> None:
    assigner = _assigner()
    for k in range(3):
        out = _step(assigner, 0.1 * k, {1: [0.6, 0.0], 2: [0.3, 0.0]})
    assert out[1].identity == "alice"
    # Track 2 starts to look a bit like alice: track 1's margin drops below assign_evidence but
    # stays above keep_evidence, so the held label stays; without the label it would not be given.
    for k in range(3, 6):
        out = _step(assigner, 0.1 * k, {1: [0.3, 0.0], 2: [0.45, 0.0]})
    assert PARAMS.keep_evidence <= out[1].margin < PARAMS.assign_evidence
    assert out[1].identity == "alice"
    # A long patch where track 2 looks more like alice ends the label (no flicker back and forth).
    labels = []
    for k in range(6, 40):
        out = _step(assigner, 0.1 * k, {1: [0.3, 0.0], 2: [0.6, 0.0]})
        labels.append(out[1].identity)
    assert labels[-1] is None
    changes = sum(a != b for a, b in itertools.pairwise(labels))
    assert changes <= 1


def test_evidence_follows_track_ids_and_is_released() -> None:
    assigner = _assigner()
    for k in range(10):
        out = _step(assigner, 0.1 * k, {1: [0.9, 0.0]})
    assert out[1].identity == "alice"
    # Track 1 not encoded this frame (stride) but alive: keeps its label and evidence.
    out = _step(assigner, 1.0, {}, live={1: True})
    assert out[1].identity == "alice"
    # Track 1 leaves; a new track 2 inherits nothing.
    out = _step(assigner, 1.1, {}, live={2: True})
    assert 1 not in out
    assert out[2].identity is None
    assert np.all(assigner.evidence([1, 2]) == 0)


def test_silent_identity_and_tentative_tracks_are_not_assigned() -> None:
    assigner = _assigner()
    for k in range(10):
        out = _step(assigner, 0.1 * k, {1: [0.9, 0.0], 2: [0.0, 0.9]}, live={1: True, 2: False})
    assert out[1].identity == "alice"
    assert out[2].identity is None
    out = _step(assigner, 1.0, {}, live={1: True, 2: True}, active=np.array([False, True]))
    assert out[1].identity is None  # alice's IMU went silent
    assert out[2].identity == "bob"


def test_forgetting_and_reliability_weighting() -> None:
    assigner = _assigner()
    _step(assigner, 0.0, {1: [0.9, 0.9]}, weight=0.5)
    assert assigner.evidence([1])[0] == pytest.approx([1.5, 1.5])  # clip 3 * weight 0.5
    _step(assigner, 4.0, {}, live={1: True})
    assert assigner.evidence([1])[0] == pytest.approx([0.75, 0.75])  # one half-life
    for k in range(200):
        _step(assigner, 4.0 + 0.1 * k, {1: [1.0, -1.0]})
    assert assigner.evidence([1])[0] == pytest.approx([30.0, -30.0])  # clipped
    assigner.reset()
    assert assigner.evidence([1]).sum() == 0


def test_keep_must_not_exceed_assign() -> None:
    bad = EvidenceParams(**{**PARAMS.__dict__, "keep_evidence": 7.0})
    with pytest.raises(ReidError, match="keep_evidence"):
        IdentityAssigner(identities=("a",), params=bad)


def test_fit_calibration_recovers_a_logistic_map() -> None:
    rng = np.random.default_rng(0)
    margins = rng.uniform(-10, 20, size=4000)
    truth = Calibration(0.5, -2.0)
    correct = rng.random(4000) < np.array([truth.confidence(m) for m in margins])
    fitted = fit_calibration(zip(margins, correct, strict=True))
    assert fitted.slope == pytest.approx(0.5, rel=0.15)
    assert fitted.intercept == pytest.approx(-2.0, abs=0.3)
    assert 0.0 <= fitted.confidence(-1e6) < 1e-6
    assert fitted.confidence(1e6) == 1.0
    with pytest.raises(CalibrationError, match="both"):
        fit_calibration([(1.0, True), (2.0, True)])


def test_fit_similarity_llr() -> None:
    rng = np.random.default_rng(1)
    slope, threshold = fit_similarity_llr(rng.normal(0.7, 0.1, 500), rng.normal(0.1, 0.1, 500))
    assert threshold == pytest.approx(0.4, abs=0.02)
    assert slope == pytest.approx(0.6 / 0.01, rel=0.15)
    with pytest.raises(CalibrationError, match="does not separate"):
        fit_similarity_llr([0.1, 0.2, 0.1], [0.5, 0.6, 0.7])
