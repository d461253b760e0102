"""Model manifest: round trip, hash verification, and clear refusals of inconsistent manifests."""

import json
from pathlib import Path

import pytest

from rt_reid.errors import ManifestError
from rt_reid.layouts import get_layout
from rt_reid.runtime.features import IMU_FEATURES
from rt_reid.runtime.manifest import EncoderSpec, Manifest, TensorSpec, load_manifest, sha256_of


def _write_model(directory: Path, *, layout: str = "lipd4", imu_channels: int = 48) -> Manifest:
    (directory / "pointcloud.onnx").write_bytes(b"pc-model")
    (directory / "imu.onnx").write_bytes(b"imu-model")
    manifest = Manifest(
        name="test",
        layout=layout,
        window_frames=24,
        frame_rate_hz=10.0,
        points_per_frame=256,
        centring="frame",
        imu_features=IMU_FEATURES,
        imu_channels=get_layout(layout).channel_names(),
        acc_unit=9.80665,
        embedding_dim=128,
        opset=17,
        encoders={
            "pointcloud": EncoderSpec(
                "pointcloud.onnx",
                sha256_of(directory / "pointcloud.onnx"),
                TensorSpec("points", ["batch", 24, 256, 3]),
                TensorSpec("embedding", ["batch", 128]),
            ),
            "imu": EncoderSpec(
                "imu.onnx",
                sha256_of(directory / "imu.onnx"),
                TensorSpec("imu", ["batch", 24, imu_channels]),
                TensorSpec("embedding", ["batch", 128]),
            ),
        },
        training={"preset": "small", "seed": 0},
    )
    manifest.write(directory)
    return manifest


def test_round_trip(tmp_path: Path):
    written = _write_model(tmp_path)
    assert load_manifest(tmp_path) == written
    assert written.encoder_path(tmp_path, "imu") == tmp_path / "imu.onnx"
    with pytest.raises(ManifestError, match="no 'skeleton' encoder"):
        written.encoder_path(tmp_path, "skeleton")


def test_replaced_model_file_is_refused(tmp_path: Path):
    _write_model(tmp_path)
    (tmp_path / "imu.onnx").write_bytes(b"someone else's model")
    with pytest.raises(ManifestError, match=r"imu encoder imu\.onnx has sha256"):
        load_manifest(tmp_path)


def test_channel_count_must_match_layout(tmp_path: Path):
    _write_model(tmp_path, layout="watch", imu_channels=48)
    with pytest.raises(ManifestError, match=r"imu input shape \[24, 48\]"):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("centring", "world", "centring 'world'"),
        ("layout", "lipd6", "unknown wearable layout"),
        ("imu_features", "raw_v0", "differs from this runtime"),
        ("window_frames", "24", "must be"),
        ("format_version", 2, "not supported"),
    ],
)
def test_inconsistent_manifest_is_refused(tmp_path: Path, field: str, value: object, message: str):
    _write_model(tmp_path)
    path = tmp_path / "manifest.json"
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=message):
        load_manifest(tmp_path)


def test_missing_and_garbled_manifests(tmp_path: Path):
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path)
