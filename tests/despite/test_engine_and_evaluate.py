"""build-engine explains a missing TensorRT/GPU; evaluation protocols on known embeddings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from despite.evaluate import (
    Embedded,
    cotemporal_matching,
    har_transfer,
    moment_retrieval,
    score_scene,
    window_matching,
)
from rt_reid.cli import main

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(
    HAS_TRT, reason="TensorRT is installed: the missing-TensorRT message cannot occur"
)
def test_build_engine_explains_missing_tensorrt(capsys: pytest.CaptureFixture[str]) -> None:
    model = Path(__file__).resolve().parents[2] / "models" / "lipd4"
    assert main(["build-engine", str(model), "--precision", "fp16", "fp32"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not available here" in err
    assert "tensorrt package is not installed" in err
    assert "ONNX Runtime" in err


def test_build_engine_rejects_a_directory_without_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build-engine", str(tmp_path)]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_score_scene_argmax_vs_hungarian() -> None:
    # rows 0 and 1 both prefer column 0: argmax gets 2/3, Hungarian resolves all three
    sim = np.array([[0.9, 0.1, 0.0], [0.8, 0.7, 0.0], [0.0, 0.1, 0.9]], dtype=np.float32)
    argmax, hungarian = score_scene(sim)
    assert argmax == pytest.approx(2 / 3)
    assert hungarian == 1.0


def synthetic(noise: float, *, tracks: int = 12, windows: int = 60, seed: int = 0) -> Embedded:
    """Each track has a smooth embedding path; imu = pointcloud + noise."""
    rng = np.random.default_rng(seed)
    base = []
    for _ in range(tracks):
        anchor = rng.normal(size=16)
        drift = np.cumsum(rng.normal(scale=0.3, size=(windows, 16)), axis=0)
        base.append(anchor * 3 + drift)
    pc = np.concatenate(base).astype(np.float32)
    imu = pc + rng.normal(scale=noise, size=pc.shape).astype(np.float32)
    track = np.repeat(np.arange(tracks), windows)
    time = np.tile(np.arange(windows), tracks)
    scene = track // 4  # 4 people per scene, windows co-temporal
    labels = (time // 20) % 3
    embeddings = {
        m: e / np.linalg.norm(e, axis=1, keepdims=True)
        for m, e in {"pointcloud": pc, "imu": imu}.items()
    }
    return Embedded(embeddings, track, time, scene, labels)


def test_window_matching_perfect_and_random() -> None:
    perfect = window_matching(synthetic(0.0), n_list=(2, 8), n_scenes=20)
    assert {(r.query, r.candidate) for r in perfect} == {
        ("pointcloud", "imu"),
        ("imu", "pointcloud"),
    }
    assert all(r.summary()["argmax"] == 1.0 for r in perfect)
    noisy = window_matching(synthetic(50.0), n_list=(8,), n_scenes=200, window_sizes=(1, 4))
    for r in noisy:
        assert r.summary()["argmax"] < 0.4  # near chance 1/8
    # seeded: the same call gives the same scenes
    again = window_matching(synthetic(50.0), n_list=(8,), n_scenes=200, window_sizes=(1, 4))
    assert [r.argmax for r in again] == [r.argmax for r in noisy]
    assert window_matching(synthetic(0.0), n_list=(13,), n_scenes=5) == []  # only 12 tracks


def test_moment_retrieval_and_cotemporal() -> None:
    good = moment_retrieval(synthetic(0.0), query="imu", candidate="pointcloud")
    assert good["R@1"] == 1.0
    assert good["R@50"] == 1.0
    bad = moment_retrieval(synthetic(100.0), query="imu", candidate="pointcloud")
    assert bad["R@1"] < 0.6
    assert bad["R@1"] <= bad["R@10"] <= bad["R@50"]
    co = cotemporal_matching(synthetic(0.0), query="imu", candidate="pointcloud")
    assert co["argmax"] == 1.0
    assert co["chance"] == pytest.approx(0.25)


def test_har_transfer_learns_labels() -> None:
    data = synthetic(0.0)
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16)) * 3
    emb = centres[data.labels] + rng.normal(size=(len(data.labels), 16))
    data.embeddings["pointcloud"] = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(
        np.float32
    )
    result = har_transfer(data, data, "pointcloud", epochs=200)
    assert result["knn1"] == 1.0
    assert result["linear"] > 0.9
    assert result["majority"] < 0.5
