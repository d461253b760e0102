"""`rt-reid evaluate --bags`: model-alone IMU→point-cloud matching of the runtime's tracks on a
real rosbag2 written in tmp_path, and the per-frame scoring rule on hand-made frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from despite.bag_eval import BagMatching, score_frame
from rt_reid.cli import main
from rt_reid.evaluation.metrics import Frame, Labelled
from rt_reid.paths import shipped_model
from rt_reid_sim import SceneConfig, write_bag


def _box(key: str, identity: str | None, x: float) -> Labelled:
    return Labelled(key, identity, 0.0, np.array([x, 0.0, 0.0]))


def test_score_frame_counts_argmax_and_hungarian_among_co_present_wearers() -> None:
    truth = Frame(0, (_box("0", "a", 0.0), _box("1", "b", 2.0), _box("2", None, 4.0),
                      _box("3", "c", 6.0)))  # fmt: skip
    output = Frame(0, (_box("10", None, 0.1), _box("11", None, 2.2), _box("12", None, 4.0),
                       _box("13", None, 9.0)))  # fmt: skip
    identities = ["a", "b", "c"]
    similarity = {
        "10": np.array([0.9, 0.8, 0.1]),  # wearer a
        "11": np.array([0.95, 0.9, 0.2]),  # wearer b; IMU a's argmax wrongly picks this track
        "12": np.array([0.99, 0.99, 0.99]),  # the bystander's track: not a query candidate
        "13": np.array([0.1, 0.1, 0.9]),  # c is 3 m away: outside the 0.5 m gate
    }
    result = BagMatching(bag="x")
    score_frame(result, truth, output, similarity, identities)
    assert result.windows == 2
    assert result.argmax_hits == 1  # IMU a -> track 11 (0.95) is wrong; IMU b -> 11 right
    assert result.hungarian_hits == 2  # 0.9 + 0.9 beats 0.8 + 0.95
    assert sorted(result.true_similarity) == [0.9, 0.9]
    assert sorted(result.false_similarity) == [0.8, 0.95]
    nan = dict(similarity, **{"11": np.array([0.9, np.nan, 0.1])})  # b not encoded this frame
    score_frame(result, truth, output, nan, identities)
    assert result.windows == 3
    assert result.frames == 2
    summary = result.summary()
    assert summary["argmax"] == pytest.approx(2 / 3)
    assert summary["hungarian"] == pytest.approx(1.0)
    assert 0.0 <= summary["auc"] <= 1.0


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "bag"
    cfg = SceneConfig(people=3, bystanders=0, duration_s=6.0, lidar="os1-32", columns=512,
                      seed=4, enter_leave=False)  # fmt: skip
    write_bag(cfg, path, progress=False)
    return path


def test_evaluate_bags_writes_per_bag_matching(bag: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--model-dir", str(shipped_model("lipd4")), "--bags", str(bag),
                 "--json", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    (row,) = data["bags"]
    assert row["bag"] == "bag"
    assert row["windows"] > 20  # 3 wearers x ~25 encoded frames
    assert 0.0 <= row["argmax"] <= row["hungarian"] + 0.2
    assert 1 / 3 < row["hungarian"] <= 1.0  # better than chance among 3 wearers
    assert row["true_pairs"]["count"] == row["windows"]
    assert row["true_pairs"]["mean"] > row["false_pairs"]["mean"]
    assert sum(row["true_pairs"]["histogram"]) == row["windows"]
    assert "Hungarian" in capsys.readouterr().out


def test_evaluate_bags_rejects_bad_input(bag: Path, tmp_path: Path) -> None:
    assert main(["evaluate", "--model-dir", str(tmp_path / "missing"), "--bags", str(bag)]) == 2
    assert main(["evaluate", "--model-dir", str(shipped_model("lipd4")), "--bags",
                 str(tmp_path / "no_bag")]) == 2  # fmt: skip
