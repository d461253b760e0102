"""Replay outputs are exactly those stored before the refactors and the fast path.

Identities and track keys must match exactly; scores and positions are compared to the stored
rounding (1e-6 and 0.1 mm), so a change in summation order alone does not fail the test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.golden.replay_golden import GOLDEN, replay_all

pytestmark = pytest.mark.slow


def test_replays_match_the_stored_fingerprints(tmp_path: Path) -> None:
    stored: dict[str, list[list[Any]]] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    replayed = replay_all(tmp_path)
    assert replayed.keys() == stored.keys()
    for key, frames in stored.items():
        now = replayed[key]
        assert [stamp for stamp, _ in now] == [stamp for stamp, _ in frames], key
        for (stamp, boxes), (_, stored_boxes) in zip(now, frames, strict=True):
            claims = [(b[0], b[1]) for b in boxes]
            assert claims == [(b[0], b[1]) for b in stored_boxes], f"{key} at {stamp}"
            np.testing.assert_allclose(
                [[b[2], *b[3]] for b in boxes],
                [[b[2], *b[3]] for b in stored_boxes],
                atol=2e-4,
                err_msg=f"{key} at {stamp}",
            )
