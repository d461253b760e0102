"""Encoder inference behind one interface: TensorRT engine, ONNX Runtime CUDA or ONNX Runtime CPU.

`EncoderSet` reads the model manifest, refuses a model that does not match (layout, channel
count, file hash, missing file, input/output names and shapes of the ONNX graph itself), picks
the best backend that is installed and verifies it at start-up with a warm-up run. ONNX Runtime
silently falls back to the CPU when the CUDA provider cannot load, so the provider that actually
runs is read back from the session and logged. Embeddings come back L2-normalised.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from rt_reid.arrays import FloatArray
from rt_reid.errors import InferenceError, ManifestError
from rt_reid.names import RUNTIME_MODALITIES
from rt_reid.runtime.manifest import EncoderSpec, Manifest, load_manifest

LOG = logging.getLogger(__name__)

Backend = Literal["auto", "tensorrt", "cuda", "cpu"]
BACKENDS: tuple[Backend, ...] = ("auto", "tensorrt", "cuda", "cpu")
# TensorRT engines next to their ONNX file as `rt-reid build-engine` names them, preferred first
ENGINE_NAMES = ("{stem}.fp16.engine", "{stem}.fp32.engine", "{stem}.engine")


class Encoder(Protocol):
    """One loaded encoder: (B, *input shape) float32 -> (B, D) raw embeddings."""

    modality: str
    provider: str

    def run(self, batch: FloatArray) -> FloatArray:
        """Embed a batch of windows (not normalised)."""
        ...


def _static_dims(shape: Sequence[int | str]) -> list[int | None]:
    """Manifest shape with named (dynamic) axes as None."""
    return [d if isinstance(d, int) else None for d in shape]


def _check_io(
    kind: str,
    actual_name: str,
    actual_shape: Sequence[Any],
    *,
    spec_name: str,
    spec_shape: Sequence[int | str],
    where: str,
) -> None:
    """Refuse a graph tensor whose name, rank or static dims differ from the manifest."""
    if actual_name != spec_name:
        raise ManifestError(
            f"{where}: {kind} is named {actual_name!r} in the graph, the manifest says "
            f"{spec_name!r}"
        )
    expected = _static_dims(spec_shape)
    if len(actual_shape) != len(expected):
        raise ManifestError(
            f"{where}: {kind} {actual_name!r} has rank {len(actual_shape)} in the graph "
            f"{list(actual_shape)}, the manifest declares {list(spec_shape)}"
        )
    if isinstance(actual_shape[0], int) and actual_shape[0] > 0:
        raise ManifestError(
            f"{where}: {kind} {actual_name!r} has a fixed batch size {actual_shape[0]}; "
            "the runtime needs a dynamic batch axis"
        )
    for axis, (got, want) in enumerate(zip(actual_shape, expected, strict=True)):
        if want is not None and isinstance(got, int) and got > 0 and got != want:
            raise ManifestError(
                f"{where}: {kind} {actual_name!r} axis {axis} is {got} in the graph, the manifest "
                f"declares {want} (shape {list(spec_shape)})"
            )


class OnnxEncoder:
    """ONNX Runtime session for one encoder, checked against the manifest's tensor specs."""

    def __init__(
        self,
        path: Path,
        spec: EncoderSpec,
        *,
        modality: str,
        device: Literal["cuda", "cpu"],
        intra_op_threads: int,
    ) -> None:
        import onnxruntime as ort

        self.modality = modality
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # ORT raises its own Fail/InvalidGraph/... types
            raise InferenceError(f"ONNX Runtime cannot load {path}: {err}") from err
        actual = self._session.get_providers()
        self.provider = actual[0]
        if device == "cuda" and self.provider != "CUDAExecutionProvider":
            raise InferenceError(
                f"{path.name}: CUDAExecutionProvider was requested but ONNX Runtime runs {actual} "
                "(onnxruntime-gpu missing, or CUDA/cuDNN libraries not found)"
            )
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ManifestError(
                f"{path}: expected one input and an output, graph has inputs "
                f"{[i.name for i in inputs]} and outputs {[o.name for o in outputs]}"
            )
        _check_io(
            "input",
            inputs[0].name,
            inputs[0].shape,
            spec_name=spec.input.name,
            spec_shape=spec.input.shape,
            where=str(path),
        )
        by_name = {o.name: o for o in outputs}
        if spec.output.name not in by_name:
            raise ManifestError(
                f"{path}: graph has no output {spec.output.name!r} (it has {sorted(by_name)})"
            )
        out = by_name[spec.output.name]
        _check_io(
            "output",
            out.name,
            out.shape,
            spec_name=spec.output.name,
            spec_shape=spec.output.shape,
            where=str(path),
        )
        if inputs[0].type != "tensor(float)":
            raise ManifestError(f"{path}: input {inputs[0].name!r} is {inputs[0].type}, not float")
        self._input, self._output = spec.input.name, spec.output.name

    def run(self, batch: FloatArray) -> FloatArray:
        """Embed a batch (B, ...) float32 with ONNX Runtime."""
        try:
            (result,) = self._session.run([self._output], {self._input: batch})
        except Exception as err:
            raise InferenceError(f"{self.modality} encoder failed on {batch.shape}: {err}") from err
        return np.asarray(result, dtype=np.float32)


class TensorRTEncoder:
    """Serialized TensorRT engine (TensorRT >= 10 Python API, CUDA memory via cuda-python)."""

    def __init__(self, engine_path: Path, spec: EncoderSpec, *, modality: str) -> None:
        try:
            import tensorrt as trt
            from cuda.bindings import runtime as cudart
        except ImportError as err:
            raise InferenceError(
                f"TensorRT backend needs the 'tensorrt' and 'cuda-python' packages: {err}"
            ) from err
        self.modality, self.provider = modality, "TensorRT"
        self._cudart = cudart
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if engine is None:
            raise InferenceError(
                f"{engine_path}: TensorRT cannot deserialize this engine "
                "(built for another TensorRT version or GPU?)"
            )
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [spec.input.name] or spec.output.name not in names:
            raise ManifestError(
                f"{engine_path}: engine tensors {names} do not match the manifest's input "
                f"{spec.input.name!r} and output {spec.output.name!r}"
            )
        _check_io(
            "input",
            spec.input.name,
            list(engine.get_tensor_shape(spec.input.name)),
            spec_name=spec.input.name,
            spec_shape=spec.input.shape,
            where=str(engine_path),
        )
        self._engine, self._context = engine, engine.create_execution_context()
        self._input, self._output = spec.input.name, spec.output.name
        _, _, max_shape = engine.get_tensor_profile_shape(self._input, 0)
        self.max_batch = int(max_shape[0])
        self._in_shape = tuple(int(d) for d in max_shape[1:])
        self._dim = int(spec.output.shape[-1])
        self._stream = self._check(cudart.cudaStreamCreate())
        in_bytes = 4 * self.max_batch * int(np.prod(self._in_shape))
        self._d_in = self._check(cudart.cudaMalloc(in_bytes))
        self._d_out = self._check(cudart.cudaMalloc(4 * self.max_batch * self._dim))
        self._context.set_tensor_address(self._input, int(self._d_in))
        self._context.set_tensor_address(self._output, int(self._d_out))

    def _check(self, result: tuple[Any, ...]) -> Any:
        """Unpack a cuda-python (error, value...) tuple, raising InferenceError on failure."""
        error, *values = result
        if int(error) != 0:
            raise InferenceError(f"CUDA runtime error {error} in the TensorRT backend")
        return values[0] if values else None

    def run(self, batch: FloatArray) -> FloatArray:
        """Embed a batch with the engine, in chunks of the engine's largest profile batch."""
        cudart = self._cudart
        outputs = []
        for start in range(0, len(batch), self.max_batch):
            chunk = np.ascontiguousarray(batch[start : start + self.max_batch], dtype=np.float32)
            out = np.empty((len(chunk), self._dim), dtype=np.float32)
            self._context.set_input_shape(self._input, chunk.shape)
            self._check(
                cudart.cudaMemcpyAsync(
                    self._d_in,
                    chunk.ctypes.data,
                    chunk.nbytes,
                    cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                    self._stream,
                )
            )
            if not self._context.execute_async_v3(self._stream):
                raise InferenceError(f"TensorRT {self.modality} engine failed on {chunk.shape}")
            self._check(
                cudart.cudaMemcpyAsync(
                    out.ctypes.data,
                    self._d_out,
                    out.nbytes,
                    cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                    self._stream,
                )
            )
            self._check(cudart.cudaStreamSynchronize(self._stream))
            outputs.append(out)
        return np.concatenate(outputs)


def _tensorrt_available() -> bool:
    """Whether the tensorrt and cuda-python packages import."""
    try:
        import tensorrt  # noqa: F401
        from cuda.bindings import runtime  # noqa: F401
    except ImportError:
        return False
    return True


def _cuda_available() -> bool:
    """Whether this ONNX Runtime build offers the CUDA execution provider."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def l2_normalise(embeddings: FloatArray) -> FloatArray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    result: FloatArray = (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


class EncoderSet:
    """The point-cloud and IMU encoders of one model directory on one verified backend.

    Input: windows (B, T, n, 3) for "pointcloud" and (B, T, C) for "imu", shapes as the manifest
    declares. Output: L2-normalised embeddings (B, D). `backend_name` says what actually runs.
    """

    def __init__(
        self,
        *,
        model_dir: Path,
        backend: Backend = "auto",
        layout: str | None = None,
        intra_op_threads: int = 0,
    ) -> None:
        if backend not in BACKENDS:
            raise InferenceError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        self.model_dir = Path(model_dir)
        self.manifest: Manifest = load_manifest(self.model_dir)
        if layout is not None and layout != self.manifest.layout:
            raise ManifestError(
                f"model {self.manifest.name!r} in {self.model_dir} was trained for wearable layout "
                f"{self.manifest.layout!r}, but the identities wear {layout!r}"
            )
        missing = [m for m in RUNTIME_MODALITIES if m not in self.manifest.encoders]
        if missing:
            raise ManifestError(
                f"model {self.manifest.name!r} lacks the {missing} encoder(s) the runtime needs"
            )
        chosen = self._choose(backend)
        self.encoders: dict[str, Encoder] = {}
        for modality in RUNTIME_MODALITIES:
            spec = self.manifest.encoders[modality]
            onnx_path = self.manifest.encoder_path(self.model_dir, modality)
            if chosen == "tensorrt":
                engine = self._engine_path(modality)
                assert engine is not None  # _choose checked that every engine exists
                self.encoders[modality] = TensorRTEncoder(engine, spec, modality=modality)
            else:
                self.encoders[modality] = OnnxEncoder(
                    onnx_path,
                    spec,
                    modality=modality,
                    device=chosen,
                    intra_op_threads=intra_op_threads,
                )
        self._verify()
        providers = sorted({encoder.provider for encoder in self.encoders.values()})
        self.backend_name = f"{chosen} ({', '.join(providers)})"
        LOG.info("model %s (%s) runs on %s", self.manifest.name, self.model_dir, self.backend_name)

    def _engine_path(self, modality: str) -> Path | None:
        """The first existing TensorRT engine of `modality` (ENGINE_NAMES order), or None."""
        onnx_path = self.manifest.encoder_path(self.model_dir, modality)
        for pattern in ENGINE_NAMES:
            candidate = onnx_path.with_name(pattern.format(stem=onnx_path.stem))
            if candidate.is_file():
                return candidate
        return None

    def _choose(self, backend: Backend) -> Literal["tensorrt", "cuda", "cpu"]:
        """Resolve "auto" to the best installed backend; refuse an explicit one that is missing."""
        has_engines = all(self._engine_path(m) is not None for m in RUNTIME_MODALITIES)
        if backend == "tensorrt":
            if not has_engines:
                names = [p.format(stem="<encoder>") for p in ENGINE_NAMES]
                raise InferenceError(
                    f"backend 'tensorrt' needs an engine per encoder in {self.model_dir} "
                    f"(one of {names}); build them with `rt-reid build-engine`"
                )
            if not _tensorrt_available():
                raise InferenceError(
                    "backend 'tensorrt' needs the 'tensorrt' and 'cuda-python' packages"
                )
            return "tensorrt"
        if backend == "cuda":
            if not _cuda_available():
                raise InferenceError("backend 'cuda' needs onnxruntime-gpu with CUDA libraries")
            return "cuda"
        if backend == "cpu":
            return "cpu"
        if has_engines and _tensorrt_available():
            return "tensorrt"
        return "cuda" if _cuda_available() else "cpu"

    def _verify(self) -> None:
        """Warm-up run with batch 2 per encoder: output shape (2, D) and finite values."""
        for modality, encoder in self.encoders.items():
            shape = [2, *(int(d) for d in self.manifest.encoders[modality].input.shape[1:])]
            out = encoder.run(np.zeros(shape, dtype=np.float32))
            if out.shape != (2, self.manifest.embedding_dim) or not np.all(np.isfinite(out)):
                raise ManifestError(
                    f"{modality} encoder returned {out.shape} (finite: "
                    f"{bool(np.all(np.isfinite(out)))}) for a batch of 2; manifest says "
                    f"(batch, {self.manifest.embedding_dim})"
                )

    def encode(self, modality: str, batch: FloatArray) -> FloatArray:
        """L2-normalised embeddings (B, D) of a batch of windows; (0, D) for an empty batch."""
        if len(batch) == 0:
            return np.zeros((0, self.manifest.embedding_dim), dtype=np.float32)
        expected = tuple(self.manifest.encoders[modality].input.shape[1:])
        if tuple(batch.shape[1:]) != expected:
            raise InferenceError(
                f"{modality} windows have shape {batch.shape[1:]}, the model expects {expected}"
            )
        out = self.encoders[modality].run(np.ascontiguousarray(batch, dtype=np.float32))
        if not np.all(np.isfinite(out)):
            raise InferenceError(f"{modality} encoder produced non-finite embeddings")
        return l2_normalise(out)
