"""An "oracle" encoder pair built with `onnx.helper`, for inference and pipeline tests.

Its embeddings are the vertical acceleration of a window (point-cloud centroid second difference
vs. IMU vertical acceleration), so similarities are meaningful and pipeline tests can check
identities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rt_reid.layouts import get_layout
from rt_reid.runtime.features import GRAVITY, IMU_FEATURES
from rt_reid.runtime.manifest import EncoderSpec, Manifest, TensorSpec, sha256_of

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
