"""EncoderSet: manifest checks, graph checks, ONNX Runtime CPU backend, batching, normalisation.

The models are built here with `onnx.helper`: an "oracle" encoder pair whose embeddings are the
vertical acceleration of a window (point-cloud centroid second difference vs. IMU vertical
acceleration), so similarities are meaningful and the pipeline tests can check identities.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rt_reid.errors import InferenceError, ManifestError
from rt_reid.features import GRAVITY, IMU_FEATURES
from rt_reid.inference import EncoderSet, l2_normalise
from rt_reid.layouts import get_layout
from rt_reid.manifest import EncoderSpec, Manifest, TensorSpec, sha256_of

OPSET = 17


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _second_difference(frames: int) -> np.ndarray:
    """(T, T-2) matrix: column k = z[k] - 2 z[k+1] + z[k+2]."""
    matrix = np.zeros((frames, frames - 2), np.float32)
    for k in range(frames - 2):
        matrix[k, k], matrix[k + 1, k], matrix[k + 2, k] = 1.0, -2.0, 1.0
    return matrix


def build_oracle_model(
    directory: Path,
    *,
    layout: str = "lipd4",
    window_frames: int = 24,
    points_per_frame: int = 64,
    points_input_name: str = "points",
    fixed_batch: bool = False,
) -> Path:
    """Write an oracle encoder pair + manifest into `directory` and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    sites = len(get_layout(layout).sites)
    channels = 12 * sites
    dim = window_frames - 2
    batch: int | str = 1 if fixed_batch else "batch"
    # Point cloud: mean over points -> z -> second difference -> zero mean.
    pts = helper.make_tensor_value_info(
        points_input_name, TensorProto.FLOAT, [batch, window_frames, points_per_frame, 3]
    )
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])
    select_z = numpy_helper.from_array(np.array([[0.0], [0.0], [1.0]], np.float32), "select_z")
    diff = numpy_helper.from_array(_second_difference(window_frames), "diff")
    flat = numpy_helper.from_array(np.array([0, window_frames], np.int64), "flat")
    nodes = [
        helper.make_node("ReduceMean", [points_input_name], ["centroid"], axes=[2], keepdims=0),
        helper.make_node("MatMul", ["centroid", "select_z"], ["z3"]),
        helper.make_node("Reshape", ["z3", "flat"], ["z"]),
        helper.make_node("MatMul", ["z", "diff"], ["acc"]),
        helper.make_node("ReduceMean", ["acc"], ["acc_mean"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["acc", "acc_mean"], ["embedding"]),
    ]
    _save(
        helper.make_graph(nodes, "points_oracle", [pts], [out], [select_z, diff, flat]),
        directory / "pointcloud.onnx",
    )
    # IMU: mean vertical acceleration of the sites, frames 1..T-2, zero mean.
    imu = helper.make_tensor_value_info("imu", TensorProto.FLOAT, [batch, window_frames, channels])
    selector = np.zeros((channels, 1), np.float32)
    for site in range(sites):
        selector[9 * sites + 3 * site + 2, 0] = 1.0 / sites
    shift = np.zeros((window_frames, dim), np.float32)
    for k in range(dim):
        shift[k + 1, k] = 1.0
    nodes = [
        helper.make_node("MatMul", ["imu", "selector"], ["vertical3"]),
        helper.make_node("Reshape", ["vertical3", "flat"], ["vertical"]),
        helper.make_node("MatMul", ["vertical", "shift"], ["acc"]),
        helper.make_node("ReduceMean", ["acc"], ["acc_mean"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["acc", "acc_mean"], ["embedding"]),
    ]
    inits = [
        numpy_helper.from_array(selector, "selector"),
        numpy_helper.from_array(shift, "shift"),
        flat,
    ]
    _save(helper.make_graph(nodes, "imu_oracle", [imu], [out], inits), directory / "imu.onnx")
    manifest = Manifest(
        name="oracle",
        layout=layout,
        window_frames=window_frames,
        frame_rate_hz=10.0,
        points_per_frame=points_per_frame,
        centring="window",
        imu_features=IMU_FEATURES,
        imu_channels=get_layout(layout).channel_names(),
        acc_unit=GRAVITY,
        embedding_dim=dim,
        opset=OPSET,
        encoders={
            "pointcloud": EncoderSpec(
                "pointcloud.onnx",
                sha256_of(directory / "pointcloud.onnx"),
                TensorSpec("points", ["batch", window_frames, points_per_frame, 3]),
                TensorSpec("embedding", ["batch", dim]),
            ),
            "imu": EncoderSpec(
                "imu.onnx",
                sha256_of(directory / "imu.onnx"),
                TensorSpec("imu", ["batch", window_frames, channels]),
                TensorSpec("embedding", ["batch", dim]),
            ),
        },
        training={"source": "oracle test model built with onnx.helper"},
    )
    manifest.write(directory)
    return directory


@pytest.fixture(scope="module")
def oracle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_oracle_model(tmp_path_factory.mktemp("oracle"))


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
    caplog.set_level("INFO", logger="rt_reid.inference")
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
