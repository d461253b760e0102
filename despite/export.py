"""ONNX export of the sensor encoders with a manifest (`models/<name>/`; ARCHITECTURE.md).

One ONNX file per encoder (opset >= 17, dynamic axis "batch", un-normalised output
"embedding"), each checked against PyTorch with ONNX Runtime before the manifest is written.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from despite.encoders import SMPL_JOINTS, DespiteModel
from despite.windows import WindowSpec
from rt_reid.errors import InferenceError
from rt_reid.layouts import get_layout
from rt_reid.names import SENSOR_MODALITIES, ModalityType
from rt_reid.runtime.features import GRAVITY, IMU_FEATURES
from rt_reid.runtime.manifest import EncoderSpec, Manifest, TensorSpec, sha256_of

LOG = logging.getLogger(__name__)
INPUT_NAMES = {
    ModalityType.POINTCLOUD: "points",
    ModalityType.IMU: "imu",
    ModalityType.SKELETON: "skeleton",
}
FILE_NAMES = {
    ModalityType.POINTCLOUD: "pointcloud.onnx",
    ModalityType.IMU: "imu.onnx",
    ModalityType.SKELETON: "skeleton.onnx",
}
OUTPUT_NAME = "embedding"
BATCH_AXIS = "batch"
MIN_OPSET = 17
PARITY_TOLERANCE = 1e-4  # max abs error on L2-normalised embeddings, fp32


@dataclass(frozen=True)
class ParityResult:
    """ONNX Runtime vs PyTorch on one random batch: max abs error of normalised embeddings."""

    modality: str
    batch: int
    max_abs_error: float

    @property
    def ok(self) -> bool:
        """Whether the error is within PARITY_TOLERANCE."""
        return self.max_abs_error <= PARITY_TOLERANCE


def normalised_error(reference: np.ndarray[Any, Any], other: np.ndarray[Any, Any]) -> float:
    """Max abs difference of two (B, D) embedding batches after L2-normalising each row."""

    def unit(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        norm = np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        out: np.ndarray[Any, Any] = a / norm
        return out

    return float(np.abs(unit(reference) - unit(other)).max())


def input_shape(modality: str, spec: WindowSpec) -> list[int]:
    """Per-window input shape (after the batch axis) of a sensor encoder."""
    if modality == ModalityType.POINTCLOUD:
        return [spec.window_frames, spec.points_per_frame, 3]
    if modality == ModalityType.IMU:
        return [spec.window_frames, get_layout(spec.layout).channels]
    if modality == ModalityType.SKELETON:
        return [spec.window_frames, SMPL_JOINTS, 3]
    raise InferenceError(f"no ONNX input for modality {modality!r}")


def example_input(modality: str, spec: WindowSpec, batch: int, *, seed: int = 0) -> torch.Tensor:
    """Plausible random input: clouds/joints within a 1 m person-sized box, features ~N(0,1)."""
    gen = torch.Generator().manual_seed(seed)
    shape = [batch, *input_shape(modality, spec)]
    if modality == ModalityType.IMU:
        return torch.randn(shape, generator=gen)
    scale = torch.tensor([0.3, 0.3, 0.9])
    return (torch.rand(shape, generator=gen) * 2 - 1) * scale


def git_commit(repo: Path | None = None) -> str | None:
    """`git rev-parse HEAD` of the training code, or None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def export_encoder(
    module: nn.Module, modality: str, spec: WindowSpec, path: Path, *, opset: int = MIN_OPSET
) -> None:
    """Trace one encoder (eval mode) into an ONNX file with a dynamic batch axis."""
    if opset < MIN_OPSET:
        raise InferenceError(f"opset {opset} < {MIN_OPSET} (LayerNorm and friends need 17)")
    name = INPUT_NAMES[modality]
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about static python ints are expected
        torch.onnx.export(
            module,
            (example_input(modality, spec, 2),),
            str(path),
            input_names=[name],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=False,
            dynamic_axes={name: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}},
        )


def check_parity(
    module: nn.Module, modality: str, spec: WindowSpec, path: Path, *, batch: int = 8, seed: int = 1
) -> ParityResult:
    """Run the ONNX file with ONNX Runtime (CPU) and the module with torch on the same batch."""
    import onnxruntime as ort

    x = example_input(modality, spec, batch, seed=seed)
    if modality == ModalityType.POINTCLOUD:
        x[:, :, 1] = 0.0  # a point at the origin exercises the FPS near-origin rule
    module.eval()
    with torch.no_grad():
        ref = module(x).numpy()
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run([OUTPUT_NAME], {INPUT_NAMES[modality]: x.numpy()})[0]
    except Exception as err:  # onnxruntime raises several unrelated exception types
        raise InferenceError(f"ONNX Runtime cannot run {path}: {err}") from err
    return ParityResult(modality, batch, normalised_error(ref, got))


def export_model(
    model: DespiteModel,
    spec: WindowSpec,
    out_dir: Path,
    *,
    name: str,
    training: dict[str, Any],
    modalities: tuple[str, ...] | None = None,
    opset: int = MIN_OPSET,
) -> tuple[Manifest, list[ParityResult]]:
    """Export the model's sensor encoders into `out_dir` and write manifest.json.

    Raises InferenceError if any encoder misses the fp32 parity tolerance against PyTorch.
    """
    if model.layout != spec.layout:
        raise InferenceError(f"model layout {model.layout!r} != window layout {spec.layout!r}")
    chosen = modalities or tuple(m for m in SENSOR_MODALITIES if m in model.encoders)
    missing = [m for m in chosen if m not in model.encoders or m not in SENSOR_MODALITIES]
    if missing:
        raise InferenceError(f"cannot export {missing}: model has {list(model.encoders)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoders: dict[str, EncoderSpec] = {}
    results = []
    dim = model.preset.embed_dim
    for modality in chosen:
        module = model.encoders[modality]
        path = out_dir / FILE_NAMES[modality]
        export_encoder(module, modality, spec, path, opset=opset)
        result = check_parity(module, modality, spec, path)
        LOG.info("%s: ONNX Runtime vs torch max abs error %.2e", modality, result.max_abs_error)
        if not result.ok:
            raise InferenceError(
                f"{modality} ONNX parity {result.max_abs_error:.2e} > {PARITY_TOLERANCE:.0e}"
            )
        results.append(result)
        encoders[modality] = EncoderSpec(
            file=path.name,
            sha256=sha256_of(path),
            input=TensorSpec(INPUT_NAMES[modality], [BATCH_AXIS, *input_shape(modality, spec)]),
            output=TensorSpec(OUTPUT_NAME, [BATCH_AXIS, dim]),
        )
    layout = get_layout(spec.layout)
    info = {
        "preset": model.preset.to_dict(),
        "modalities_trained": list(model.modalities),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "parity_max_abs_error": {r.modality: r.max_abs_error for r in results},
        **training,
    }
    manifest = Manifest(
        name=name,
        layout=spec.layout,
        window_frames=spec.window_frames,
        frame_rate_hz=spec.frame_rate_hz,
        points_per_frame=spec.points_per_frame,
        centring=spec.centring,
        imu_features=IMU_FEATURES,
        imu_channels=layout.channel_names(),
        acc_unit=GRAVITY,
        embedding_dim=dim,
        opset=opset,
        encoders=encoders,
        training=info,
    )
    manifest.write(out_dir)
    return manifest, results
