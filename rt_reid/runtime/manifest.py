"""Model manifest (`models/<name>/manifest.json`): all the runtime needs to use an encoder set.

The training module writes it at export time with `Manifest.write`; the runtime reads it with
`load_manifest`, which checks the schema, the model file hashes, and that the declared inputs are
consistent with the layout. Nothing about a model is hard-coded in the runtime.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rt_reid.errors import ManifestError
from rt_reid.layouts import get_layout
from rt_reid.names import MODALITIES, ModalityType
from rt_reid.runtime.features import CENTRINGS, IMU_FEATURES, Centring

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (ints, or strings for dynamic axes such as "batch") and dtype of a tensor."""

    name: str
    shape: list[int | str]
    dtype: str = "float32"


@dataclass(frozen=True)
class EncoderSpec:
    """One exported encoder: its file, the file's sha256, and its single input and output."""

    file: str
    sha256: str
    input: TensorSpec
    output: TensorSpec


@dataclass(frozen=True)
class Manifest:
    """Contract between an exported encoder set and the runtime (see ARCHITECTURE.md)."""

    name: str
    layout: str
    window_frames: int
    frame_rate_hz: float
    points_per_frame: int
    centring: Centring
    imu_features: str
    imu_channels: list[str]
    acc_unit: float
    embedding_dim: int
    opset: int
    encoders: dict[str, EncoderSpec]
    training: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """Serialise as the pretty JSON stored in manifest.json."""
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    def write(self, directory: Path) -> Path:
        """Write manifest.json into `directory` and return its path."""
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    def encoder_path(self, directory: Path, modality: str) -> Path:
        """Path of the encoder file for `modality` inside the model directory."""
        try:
            return Path(directory) / self.encoders[modality].file
        except KeyError as err:
            raise ManifestError(
                f"model {self.name!r} has no {modality!r} encoder; it has {sorted(self.encoders)}"
            ) from err


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ManifestError(f"{where}: missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ManifestError(f"{where}: field {key!r} must be {kind}, got {value!r}")
    return value


def _tensor(data: Any, where: str) -> TensorSpec:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object, got {data!r}")
    shape = _require(data, "shape", list, where)
    if not all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in shape):
        raise ManifestError(f"{where}: shape entries must be ints or axis names, got {shape}")
    return TensorSpec(
        name=_require(data, "name", str, where),
        shape=shape,
        dtype=_require(data, "dtype", str, where),
    )


def parse_manifest(data: dict[str, Any], *, source: str = "manifest") -> Manifest:
    """Validate a decoded manifest object and build a Manifest; ManifestError on any defect."""
    version = _require(data, "format_version", int, source)
    if version != FORMAT_VERSION:
        raise ManifestError(
            f"{source}: format_version {version} is not supported ({FORMAT_VERSION})"
        )
    encoders_raw = _require(data, "encoders", dict, source)
    encoders: dict[str, EncoderSpec] = {}
    for modality, spec in encoders_raw.items():
        where = f"{source}: encoders.{modality}"
        if modality not in MODALITIES:
            raise ManifestError(f"{where}: unknown modality; expected one of {MODALITIES}")
        if not isinstance(spec, dict):
            raise ManifestError(f"{where}: expected an object")
        encoders[modality] = EncoderSpec(
            file=_require(spec, "file", str, where),
            sha256=_require(spec, "sha256", str, where),
            input=_tensor(spec.get("input"), f"{where}.input"),
            output=_tensor(spec.get("output"), f"{where}.output"),
        )
    centring = _require(data, "centring", str, source)
    if centring not in CENTRINGS:
        raise ManifestError(f"{source}: centring {centring!r} is not one of {CENTRINGS}")
    manifest = Manifest(
        name=_require(data, "name", str, source),
        layout=_require(data, "layout", str, source),
        window_frames=_require(data, "window_frames", int, source),
        frame_rate_hz=float(_require(data, "frame_rate_hz", (int, float), source)),
        points_per_frame=_require(data, "points_per_frame", int, source),
        centring=centring,
        imu_features=_require(data, "imu_features", str, source),
        imu_channels=_require(data, "imu_channels", list, source),
        acc_unit=float(_require(data, "acc_unit", (int, float), source)),
        embedding_dim=_require(data, "embedding_dim", int, source),
        opset=_require(data, "opset", int, source),
        encoders=encoders,
        training=_require(data, "training", dict, source),
        format_version=version,
    )
    _check_consistency(manifest, source)
    return manifest


def _check_consistency(manifest: Manifest, source: str) -> None:
    """Cross-field checks: layout channels, feature version, tensor shapes against the window."""
    try:
        layout = get_layout(manifest.layout)
    except Exception as err:
        raise ManifestError(f"{source}: {err}") from err
    if manifest.imu_features != IMU_FEATURES:
        raise ManifestError(
            f"{source}: imu_features {manifest.imu_features!r} differs from this runtime's "
            f"{IMU_FEATURES!r}"
        )
    if manifest.imu_channels != layout.channel_names():
        raise ManifestError(
            f"{source}: imu_channels do not match layout {layout.name!r} "
            f"(expected {layout.channels} channels in the order {layout.channel_names()[:3]}...)"
        )
    expected_inputs: dict[str, list[int]] = {
        ModalityType.POINTCLOUD: [manifest.window_frames, manifest.points_per_frame, 3],
        ModalityType.IMU: [manifest.window_frames, layout.channels],
    }
    for modality, dims in expected_inputs.items():
        if modality not in manifest.encoders:
            continue
        declared = manifest.encoders[modality].input.shape[1:]
        if declared != dims:
            raise ManifestError(
                f"{source}: {modality} input shape {declared} (after batch) differs from the "
                f"window {dims} the manifest declares"
            )
    for modality, spec in manifest.encoders.items():
        if spec.output.shape[1:] != [manifest.embedding_dim]:
            raise ManifestError(
                f"{source}: {modality} output shape {spec.output.shape} does not end in "
                f"embedding_dim {manifest.embedding_dim}"
            )


def load_manifest(directory: Path | str, *, verify_hashes: bool = True) -> Manifest:
    """Read and validate `directory/manifest.json`; with `verify_hashes`, check every model file."""
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ManifestError(f"no {MANIFEST_NAME} in model directory {directory}") from err
    except (OSError, json.JSONDecodeError) as err:
        raise ManifestError(f"cannot read {path}: {err}") from err
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: top level must be a JSON object")
    manifest = parse_manifest(data, source=str(path))
    if verify_hashes:
        for modality, spec in manifest.encoders.items():
            file = directory / spec.file
            if not file.is_file():
                raise ManifestError(f"{path}: {modality} encoder file {file} does not exist")
            actual = sha256_of(file)
            if actual != spec.sha256:
                raise ManifestError(
                    f"{path}: {modality} encoder {file.name} has sha256 {actual[:12]}..., "
                    f"manifest says {spec.sha256[:12]}... (file replaced or corrupted)"
                )
    return manifest
