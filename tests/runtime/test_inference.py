"""EncoderSet: manifest checks, graph checks, ONNX Runtime CPU backend, batching, normalisation.

The models are the oracle encoder pair of `tests/runtime/oracle.py` (fixture `oracle_dir`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rt_reid.errors import InferenceError, ManifestError
from rt_reid.layouts import get_layout
from rt_reid.runtime.inference import EncoderSet, l2_normalise
from tests.runtime.oracle import build_oracle_model


def _edit_manifest(directory: Path, edit) -> None:
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_cpu_backend_batches_and_normalises(oracle_dir: Path) -> None:
    encoders = EncoderSet(model_dir=oracle_dir, backend="cpu", layout="lipd4")
    assert encoders.backend_name == "cpu (CPUExecutionProvider)"
    rng = np.random.default_rng(0)
    points = rng.normal(size=(5, 24, 64, 3)).astype(np.float32)
    batched = encoders.encode("pointcloud", points)
    assert batched.shape == (5, 22)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # One call with 5 windows equals 5 calls with one window each.
    single = np.concatenate([encoders.encode("pointcloud", points[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    # The oracle really computes the centroid's vertical second difference.
    z = points[0, :, :, 2].mean(axis=1)
    expected = z[:-2] - 2 * z[1:-1] + z[2:]
    expected -= expected.mean()
    np.testing.assert_allclose(batched[0], expected / np.linalg.norm(expected), atol=1e-4)
    assert encoders.encode("imu", np.zeros((0, 24, 48), np.float32)).shape == (0, 22)


def test_auto_backend_logs_what_runs(oracle_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="rt_reid.runtime.inference")
    encoders = EncoderSet(model_dir=oracle_dir, backend="auto")
    assert "CPUExecutionProvider" in encoders.backend_name  # no GPU/TensorRT on this machine
    assert "runs on" in caplog.text


def test_explicit_missing_backends_are_refused(oracle_dir: Path) -> None:
    with pytest.raises(InferenceError, match="build-engine"):
        EncoderSet(model_dir=oracle_dir, backend="tensorrt")
    with pytest.raises(InferenceError, match="onnxruntime-gpu"):
        EncoderSet(model_dir=oracle_dir, backend="cuda")
    with pytest.raises(InferenceError, match="unknown backend"):
        EncoderSet(model_dir=oracle_dir, backend="npu")  # type: ignore[arg-type]


def test_wrong_window_shape_is_refused(oracle_dir: Path) -> None:
    encoders = EncoderSet(model_dir=oracle_dir, backend="cpu")
    with pytest.raises(InferenceError, match="expects"):
        encoders.encode("imu", np.zeros((2, 24, 12), np.float32))


def test_wrong_layout_is_refused(oracle_dir: Path) -> None:
    with pytest.raises(ManifestError, match=r"layout 'lipd4'.*wear 'watch'"):
        EncoderSet(model_dir=oracle_dir, backend="cpu", layout="watch")


def test_hash_mismatch_and_missing_file(tmp_path: Path) -> None:
    model = build_oracle_model(tmp_path / "m")
    (model / "imu.onnx").write_bytes((model / "imu.onnx").read_bytes() + b"\0")
    with pytest.raises(ManifestError, match="sha256"):
        EncoderSet(model_dir=model, backend="cpu")
    (model / "imu.onnx").unlink()
    with pytest.raises(ManifestError, match="does not exist"):
        EncoderSet(model_dir=model, backend="cpu")


def test_graph_input_name_must_match_manifest(tmp_path: Path) -> None:
    model = build_oracle_model(tmp_path / "m", points_input_name="clouds")
    with pytest.raises(ManifestError, match="named 'clouds' in the graph"):
        EncoderSet(model_dir=model, backend="cpu")


def test_graph_shape_must_match_manifest(tmp_path: Path) -> None:
    model = build_oracle_model(tmp_path / "m", points_per_frame=32)

    def declare_64(data) -> None:
        data["points_per_frame"] = 64
        data["encoders"]["pointcloud"]["input"]["shape"] = ["batch", 24, 64, 3]

    _edit_manifest(model, declare_64)
    with pytest.raises(ManifestError, match="axis 2 is 32 in the graph"):
        EncoderSet(model_dir=model, backend="cpu")


def test_fixed_batch_graph_is_refused(tmp_path: Path) -> None:
    model = build_oracle_model(tmp_path / "m", fixed_batch=True)
    with pytest.raises(ManifestError, match="fixed batch size 1"):
        EncoderSet(model_dir=model, backend="cpu")


def test_wrong_channel_count_is_refused(tmp_path: Path) -> None:
    model = build_oracle_model(tmp_path / "m", layout="watch")

    def claim_lipd4(data) -> None:
        data["layout"] = "lipd4"
        data["imu_channels"] = get_layout("lipd4").channel_names()

    _edit_manifest(model, claim_lipd4)
    with pytest.raises(ManifestError, match="imu input shape"):
        EncoderSet(model_dir=model, backend="cpu")


def test_l2_normalise_keeps_zero_rows() -> None:
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]], np.float32))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_engines_without_tensorrt_fall_back_or_are_refused(tmp_path: Path) -> None:
    model = build_oracle_model(tmp_path / "m")
    for stem in ("pointcloud", "imu"):  # as `rt-reid build-engine` names them
        (model / f"{stem}.fp16.engine").write_bytes(b"not a real engine")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorrt is installed here; this test covers machines without it")
    with pytest.raises(InferenceError, match="needs the 'tensorrt'"):
        EncoderSet(model_dir=model, backend="tensorrt")
    assert EncoderSet(model_dir=model, backend="auto").backend_name.startswith("cpu")
