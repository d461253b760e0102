"""`rt-reid build-engine`: TensorRT engines (FP16/FP32) from an exported model, with parity.

Engines are specific to the GPU and TensorRT version, so they are built on the deployment
machine and never committed. Each engine is checked against ONNX Runtime (CPU) on random
windows; the result goes into `engines.json` next to the engines.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rt_reid.errors import InferenceError
from rt_reid.names import ModalityType

if TYPE_CHECKING:  # torch and the manifest's preprocessing load only when a build runs
    from rt_reid.runtime.manifest import Manifest

LOG = logging.getLogger(__name__)
PRECISIONS = ("fp16", "fp32")
# max abs error of L2-normalised embeddings against ONNX Runtime CPU fp32
ENGINE_TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}
MISSING_TRT = (
    "TensorRT is not available here ({reason}). Engines are built on the deployment machine: "
    "an NVIDIA GPU with its driver, then `pip install 'rt_reid[trt]'` (tensorrt>=10, "
    "cuda-python) and torch with CUDA. Without TensorRT the exported ONNX model still runs "
    "with ONNX Runtime (CPU, or CUDA with onnxruntime-gpu); nothing else needs an engine."
)


@dataclass(frozen=True)
class EngineInfo:
    """One built engine and its parity against ONNX Runtime."""

    modality: str
    precision: str
    file: str
    max_batch: int
    parity_max_abs_error: float
    tolerance: float


def require_tensorrt() -> Any:
    """Import tensorrt and check for a CUDA GPU; raise InferenceError explaining what is missing."""
    try:
        import tensorrt as trt
    except ImportError as err:
        raise InferenceError(
            MISSING_TRT.format(reason="the tensorrt package is not installed")
        ) from err
    try:
        import torch
    except ImportError as err:
        raise InferenceError(MISSING_TRT.format(reason="torch is not installed")) from err
    if not torch.cuda.is_available():
        raise InferenceError(MISSING_TRT.format(reason="no CUDA GPU is visible"))
    return trt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rt-reid build-engine`."""
    parser.add_argument("model_dir", type=Path, help="exported model directory (manifest.json)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        nargs="+",
        default=["fp16"],
        help="engine precisions to build (default fp16)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="engine directory (default MODEL_DIR)"
    )
    parser.add_argument("--max-batch", type=int, default=64, help="largest batch (tracks) per call")
    parser.add_argument("--opt-batch", type=int, default=8, help="batch TensorRT tunes for")
    parser.add_argument("--workspace-gb", type=float, default=2.0)


def build_engine(
    trt: Any,
    onnx_path: Path,
    input_name: str,
    window_shape: list[int],
    *,
    precision: str,
    opt_batch: int,
    max_batch: int,
    workspace_gb: float,
) -> bytes:
    """Parse the ONNX file and build a serialized engine with a dynamic batch profile."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise InferenceError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(
        input_name, (1, *window_shape), (opt_batch, *window_shape), (max_batch, *window_shape)
    )
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise InferenceError(f"TensorRT failed to build an engine from {onnx_path}")
    return bytes(serialized)


def run_engine(
    trt: Any, engine_bytes: bytes, input_name: str, inputs: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Execute a serialized engine on one batch (device buffers via torch CUDA tensors)."""
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    context = engine.create_execution_context()
    x = torch.from_numpy(inputs).cuda().contiguous()
    context.set_input_shape(input_name, tuple(x.shape))
    out_shape = tuple(context.get_tensor_shape("embedding"))
    y = torch.empty(out_shape, dtype=torch.float32, device="cuda")
    context.set_tensor_address(input_name, x.data_ptr())
    context.set_tensor_address("embedding", y.data_ptr())
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise InferenceError("TensorRT execution failed")
    stream.synchronize()
    out: np.ndarray[Any, Any] = y.cpu().numpy()
    return out


def engine_parity(
    trt: Any, engine_bytes: bytes, manifest: Manifest, model_dir: Path, modality: str, *, batch: int
) -> float:
    """Max abs error of normalised embeddings: engine vs ONNX Runtime CPU on random windows."""
    import onnxruntime as ort

    spec = manifest.encoders[modality]
    shape = [batch, *(int(d) for d in spec.input.shape[1:])]
    from despite.export import normalised_error

    rng = np.random.default_rng(0)
    x = (rng.uniform(-0.5, 0.5, shape) * (1.0 if modality == ModalityType.IMU else 0.6)).astype(
        np.float32
    )
    session = ort.InferenceSession(str(model_dir / spec.file), providers=["CPUExecutionProvider"])
    ref = session.run(["embedding"], {spec.input.name: x})[0]
    return normalised_error(ref, run_engine(trt, engine_bytes, spec.input.name, x))


def run(args: argparse.Namespace) -> int:
    """Build every encoder's engine at every requested precision and check parity."""
    from rt_reid.runtime.manifest import load_manifest

    manifest = load_manifest(args.model_dir)
    trt = require_tensorrt()
    if not 1 <= args.opt_batch <= args.max_batch:
        raise InferenceError("need 1 <= --opt-batch <= --max-batch")
    out = args.out or args.model_dir
    out.mkdir(parents=True, exist_ok=True)
    infos: list[EngineInfo] = []
    for modality, spec in manifest.encoders.items():
        window_shape = [int(d) for d in spec.input.shape[1:]]
        for precision in args.precision:
            engine = build_engine(
                trt,
                args.model_dir / spec.file,
                spec.input.name,
                window_shape,
                precision=precision,
                opt_batch=args.opt_batch,
                max_batch=args.max_batch,
                workspace_gb=args.workspace_gb,
            )
            name = f"{Path(spec.file).stem}.{precision}.engine"
            (out / name).write_bytes(engine)
            error = engine_parity(
                trt,
                engine,
                manifest,
                args.model_dir,
                modality,
                batch=min(args.opt_batch, args.max_batch),
            )
            info = EngineInfo(
                modality, precision, name, args.max_batch, error, ENGINE_TOLERANCE[precision]
            )
            infos.append(info)
            status = "ok" if error <= info.tolerance else "FAILED"
            print(f"{name}: parity vs ONNX Runtime {error:.2e} ({status}, tol {info.tolerance})")
    import torch

    (out / "engines.json").write_text(
        json.dumps(
            {
                "tensorrt": str(trt.__version__),
                "gpu": torch.cuda.get_device_name(0),
                "model_sha256": {m: s.sha256 for m, s in manifest.encoders.items()},
                "engines": [asdict(i) for i in infos],
            },
            indent=2,
        )
        + "\n"
    )
    failed = [i for i in infos if i.parity_max_abs_error > i.tolerance]
    if failed:
        raise InferenceError(f"engine parity failed for {[i.file for i in failed]}")
    return 0
