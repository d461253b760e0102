"""`rt-reid replay` over many bags: worker processes, one combined report, failures isolated.

Two simulated bags (6 s: the first identities come after the 3 s warm-up plus a few seconds of
evidence, so the identity numbers are not all zero) and a truncated copy of one of them sit in
one folder. The many-bag runs (--jobs 2 on the folder, --jobs 1 on the bags listed) must give
each bag exactly the numbers of replaying it alone, report the broken bag and exit 2.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from rt_reid import cli
from rt_reid.evaluation.batch import output_names
from rt_reid.paths import shipped_model
from rt_reid_sim import SceneConfig, write_bag

# One wearer alone, and two wearers: different person-frame counts and accuracies, so a row
# given the wrong bag's numbers, or a mean of per-bag accuracies, cannot pass.
SCENES = {
    "alone": SceneConfig(people=1, duration_s=6.0, lidar="os1-32", columns=512, seed=4300),
    "pair": SceneConfig(people=2, duration_s=6.0, lidar="os1-32", columns=512, seed=4301),
}
BROKEN = "broken"
JOBS = (1, 2)


def replay(*argv: str | Path) -> tuple[int, str]:
    """Run ``rt-reid replay ARGV --model <shipped> --no-progress`` here; exit code and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(
            ["replay", *map(str, argv), "--model", str(shipped_model()), "--no-progress"]
        )
    return code, out.getvalue()


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of rosbag2 folders: the two scenes and a copy of "pair" cut to half its data.

    A text file and a folder that is not a bag sit beside them: the folder argument skips them.
    """
    root = tmp_path_factory.mktemp("many") / "bags"
    for name, scene in SCENES.items():
        write_bag(scene, root / name)
    (root / "notes.txt").write_text("not a bag\n")
    (root / "plots").mkdir()
    broken = shutil.copytree(root / "pair", root / BROKEN)
    data = next(broken.glob("*.mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    return root


@pytest.fixture(scope="module")
def alone(bags: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each good bag replayed by itself (one-bag mode, in this process): its report row."""
    out = tmp_path_factory.mktemp("alone")
    rows = {}
    for name in SCENES:
        code, _ = replay(bags / name, "--out", out / name, "--json", out / f"{name}.json")
        assert code == 0
        (rows[name],) = json.loads((out / f"{name}.json").read_text())["bags"]
    return rows


@pytest.fixture(scope="module")
def many(bags: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    """--jobs 2 on the folder, --jobs 1 on the three bags listed: exit code, text, JSON, outputs."""
    runs = {}
    for jobs in JOBS:
        work = tmp_path_factory.mktemp(f"jobs{jobs}")
        inputs = [bags] if jobs == 2 else [bags / "pair", bags / BROKEN, bags / "alone"]
        code, text = replay(
            *inputs, "--out", work / "out", "--jobs", str(jobs), "--json", work / "all.json"
        )
        report = json.loads((work / "all.json").read_text())
        runs[jobs] = {"code": code, "text": text, "out": work / "out", "report": report}
    return runs


def test_output_names_are_distinct(tmp_path: Path) -> None:
    bags = [tmp_path / "a" / "scene", tmp_path / "b" / "scene", tmp_path / "scene.mcap"]
    assert output_names(bags) == ["scene", "scene-2", "scene-3"]


def rows_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Combined-report rows keyed by their output folder's name."""
    return {Path(row["out_bag"]).name: row for row in report["bags"]}


def scores(row: dict[str, Any]) -> str:
    """A bag's deterministic numbers (identity, tracker, frames) as one comparable string."""
    summary = row["summary"]
    return json.dumps([summary["frames"], summary["identity"], summary["tracker"]], sort_keys=True)


def test_every_bag_has_the_numbers_of_its_replay_alone(many, alone) -> None:
    assert scores(alone["alone"]) != scores(alone["pair"])  # a swapped row would show
    for jobs in JOBS:
        rows = rows_by_name(many[jobs]["report"])
        assert sorted(rows) == sorted([*SCENES, BROKEN])
        for name in SCENES:
            assert rows[name]["status"] == "ok"
            assert scores(rows[name]) == scores(alone[name]), (jobs, name)


def test_a_broken_bag_is_reported_and_the_others_replay(many, bags: Path) -> None:
    for jobs in JOBS:
        run = many[jobs]
        assert run["code"] == 2
        broken = rows_by_name(run["report"])[BROKEN]
        assert broken["status"] == "failed"
        assert broken["summary"] is None
        assert "corrupt or truncated" in broken["error"]
        assert str(bags / BROKEN) in broken["error"]
        assert run["report"]["pooled"]["failed"] == 1
        for name in SCENES:  # one output bag per input bag under --out
            assert (run["out"] / name / "metadata.yaml").is_file()


def test_identity_accuracy_is_pooled_over_person_frames(many, alone) -> None:
    identity = [alone[name]["summary"]["identity"] for name in SCENES]
    scored = [s["scored_person_frames"] for s in identity]
    correct = [round(s["identity_accuracy"] * n) for s, n in zip(identity, scored, strict=True)]
    accuracies = [s["identity_accuracy"] for s in identity]
    assert len(set(scored)) > 1  # so the pooled accuracy differs from the mean of the bags
    assert len(set(accuracies)) > 1
    pooled = sum(correct) / sum(scored)
    assert not math.isclose(pooled, sum(accuracies) / len(accuracies))
    for jobs in JOBS:
        totals = many[jobs]["report"]["pooled"]
        assert totals["replayed"] == len(SCENES)
        assert totals["identity"]["scored_person_frames"] == sum(scored)
        assert totals["identity"]["correct_person_frames"] == sum(correct)
        assert totals["identity"]["identity_accuracy"] == pytest.approx(pooled)


def test_jobs_1_and_2_give_the_same_report(many) -> None:
    one, two = (rows_by_name(many[jobs]["report"]) for jobs in JOBS)
    assert {n: r["error"] for n, r in one.items()} == {n: r["error"] for n, r in two.items()}
    assert {n: scores(r) for n, r in one.items() if r["summary"]} == {
        n: scores(r) for n, r in two.items() if r["summary"]
    }
    pooled = [many[jobs]["report"]["pooled"] for jobs in JOBS]
    assert pooled[0]["identity"] == pooled[1]["identity"]
    assert [p["workers"] for p in pooled] == list(JOBS)


def test_the_text_report_lists_every_bag_and_the_failure(many, bags: Path) -> None:
    text = many[2]["text"]
    lines = text.splitlines()
    for name in SCENES:
        assert any(line.startswith(f"{name} ") and " ok " in line for line in lines), text
    assert any(line.startswith(f"{BROKEN} ") and "FAILED" in line for line in lines), text
    pooled = many[2]["report"]["pooled"]["identity"]
    assert f"{pooled['identity_accuracy']:.2%}" in text
    assert "pooled over person-frames, not a mean" in text
    assert f"failed: {bags / BROKEN}: input bag" in text
