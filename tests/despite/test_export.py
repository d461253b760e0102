"""ONNX export: parity with PyTorch in ONNX Runtime, manifest round trip, the export CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from despite.encoders import DespiteModel, get_preset
from despite.export import (
    PARITY_TOLERANCE,
    check_parity,
    example_input,
    export_model,
    normalised_error,
)
from despite.windows import WindowSpec
from rt_reid.cli import main
from rt_reid.errors import InferenceError, ManifestError
from rt_reid.layouts import get_layout
from rt_reid.names import SENSOR_MODALITIES
from rt_reid.runtime.features import IMU_FEATURES
from rt_reid.runtime.manifest import load_manifest


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[DespiteModel, WindowSpec, Path]:
    torch.manual_seed(3)
    model = DespiteModel(get_preset("small"), modalities=SENSOR_MODALITIES, layout="watch")
    spec = WindowSpec(layout="watch", centring="window")
    out = tmp_path_factory.mktemp("model")
    export_model(model, spec, out, name="unit", training={"note": "test"})
    return model, spec, out


def test_manifest_round_trip(
    exported: tuple[DespiteModel, WindowSpec, Path], tmp_path: Path
) -> None:
    _, _, out = exported
    manifest = load_manifest(out)
    assert manifest.layout == "watch"
    assert manifest.centring == "window"
    assert manifest.imu_features == IMU_FEATURES
    assert manifest.imu_channels == get_layout("watch").channel_names()
    assert manifest.opset >= 17
    assert manifest.embedding_dim == 128
    assert manifest.encoders["pointcloud"].input.name == "points"
    assert manifest.encoders["pointcloud"].input.shape == ["batch", 24, 256, 3]
    assert manifest.encoders["imu"].input.shape == ["batch", 24, 12]
    assert manifest.encoders["skeleton"].input.name == "skeleton"
    assert manifest.training["note"] == "test"
    assert set(manifest.training["parity_max_abs_error"]) == set(SENSOR_MODALITIES)
    # a replaced model file is detected through the sha256
    out = Path(shutil.copytree(out, tmp_path / "copy"))
    (out / "imu.onnx").write_bytes((out / "imu.onnx").read_bytes() + b"\0")
    with pytest.raises(ManifestError, match="sha256"):
        load_manifest(out)


@pytest.mark.parametrize("modality", SENSOR_MODALITIES)
def test_onnx_runtime_parity_dynamic_batch(
    exported: tuple[DespiteModel, WindowSpec, Path], modality: str
) -> None:
    model, spec, out = exported
    module = model.encoders[modality].eval()
    name = {"pointcloud": "points", "imu": "imu", "skeleton": "skeleton"}[modality]
    session = ort.InferenceSession(
        str(out / f"{modality}.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == [name]
    assert session.get_inputs()[0].shape[0] == "batch"
    assert [o.name for o in session.get_outputs()] == ["embedding"]
    for batch in (1, 5):
        x = example_input(modality, spec, batch, seed=batch)
        with torch.no_grad():
            ref = module(x).numpy()
        got = session.run(["embedding"], {name: x.numpy()})[0]
        assert normalised_error(ref, got) <= PARITY_TOLERANCE
    if modality != "imu":  # the recorded parity check itself
        assert check_parity(module, modality, spec, out / f"{modality}.onnx").ok


def test_export_cli_random(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dev"
    assert (
        main(
            [
                "export",
                str(out),
                "--random",
                "--preset",
                "small",
                "--layout",
                "lipd4",
                "--modalities",
                "imu",
            ]
        )
        == 0
    )
    assert "parity" in capsys.readouterr().out
    manifest = load_manifest(out)
    assert set(manifest.encoders) == {"imu"}
    assert manifest.training["source"] == "random"
    data = json.loads((out / "manifest.json").read_text())
    assert data["encoders"]["imu"]["input"]["shape"] == ["batch", 24, 48]


def test_export_rejects_bad_requests(tmp_path: Path) -> None:
    model = DespiteModel(get_preset("small"), modalities=("imu",))
    with pytest.raises(InferenceError, match="opset"):
        export_model(model, WindowSpec(), tmp_path, name="x", training={}, opset=13)
    with pytest.raises(InferenceError, match="cannot export"):
        export_model(
            model, WindowSpec(), tmp_path, name="x", training={}, modalities=("pointcloud",)
        )
    with pytest.raises(InferenceError, match="layout"):
        export_model(model, WindowSpec(layout="watch"), tmp_path, name="x", training={})
    assert main(["export", "--official", str(tmp_path / "missing.pth"), str(tmp_path / "o")]) == 2


def test_export_official_checkpoint_strict(tmp_path: Path) -> None:
    """An official-style checkpoint (DePIE: PC + IMU, paper sizes) exports with its weights."""
    torch.manual_seed(5)
    official = DespiteModel(get_preset("paper"), modalities=("pointcloud", "imu"))
    weights = tmp_path / "DePIE_v1.pth"
    torch.save(official.official_state_dict(), weights)
    out = tmp_path / "official"
    assert main(["export", str(out), "--official", str(weights), "--modalities", "imu"]) == 0
    manifest = load_manifest(out)
    assert manifest.embedding_dim == 512
    assert manifest.training["source"] == "official"
    session = ort.InferenceSession(str(out / "imu.onnx"), providers=["CPUExecutionProvider"])
    x = example_input("imu", WindowSpec(), 3)
    with torch.no_grad():
        ref = official.encoders["imu"].eval()(x).numpy()
    assert normalised_error(ref, session.run(["embedding"], {"imu": x.numpy()})[0]) < 1e-4
    broken = tmp_path / "broken.pth"
    torch.save(
        {**official.official_state_dict(), "pointcloud_encoder.extra": torch.zeros(1)}, broken
    )
    assert main(["export", str(tmp_path / "b"), "--official", str(broken)]) == 2
