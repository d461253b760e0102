"""Rebuild a torch `DespiteModel` from an exported model directory (warm start for retraining).

Training checkpoints live under the git-ignored `runs/`, so a shipped model may be all that is
left of a run. The exporter folds parameters into anonymous ONNX initialisers (linear weights
transposed, LSTM gates reordered to ONNX's i-o-f-c, the PST conv split into a matrix and
per-offset constants); this inverts those foldings for the `small`/`paper` encoders and checks
the result against ONNX Runtime, so a wrong mapping can never pass silently.

    python -m despite.onnx_import models/lipd4 runs/dr_lipd4/last.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from despite.checkpoint import Checkpoint, save_checkpoint
from despite.encoders import DespiteModel, EncoderPreset
from despite.windows import DataError, WindowSpec
from rt_reid.layouts import get_layout
from rt_reid.names import ModalityType
from rt_reid.runtime.manifest import load_manifest

PARITY = 1e-4  # max abs difference of normalised embeddings, as the export check


def _initialisers(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """Name -> array of every initialiser of an ONNX file, in graph order."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def _lstm_gates(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """ONNX gate blocks i, o, f, c -> torch blocks i, f, g, o (along the first axis)."""
    i, o, f, c = np.split(array, 4, axis=0)
    return np.concatenate([i, f, c, o], axis=0)


def _encoder_state(
    modality: str, module: torch.nn.Module, inits: dict[str, np.ndarray[Any, Any]]
) -> dict[str, torch.Tensor]:
    """State dict of one encoder recovered from its ONNX initialisers."""
    state = {k: v.clone() for k, v in module.state_dict().items()}
    anonymous = [n for n in inits if n not in state]
    if modality == ModalityType.IMU:
        lstm = [inits[n] for n in anonymous if n.startswith("onnx::LSTM")]
        for layer in range(len(lstm) // 3):
            w, r, b = lstm[3 * layer : 3 * layer + 3]
            hidden = r.shape[1] // 4
            state[f"lstm.weight_ih_l{layer}"] = torch.from_numpy(_lstm_gates(w[0]).copy())
            state[f"lstm.weight_hh_l{layer}"] = torch.from_numpy(_lstm_gates(r[0]).copy())
            bias_w, bias_r = b[0][: 4 * hidden], b[0][4 * hidden :]
            state[f"lstm.bias_ih_l{layer}"] = torch.from_numpy(_lstm_gates(bias_w).copy())
            state[f"lstm.bias_hh_l{layer}"] = torch.from_numpy(_lstm_gates(bias_r).copy())
        return state
    for name in state:
        if name in inits:
            state[name] = torch.from_numpy(inits[name].copy())
    matmuls = [n for n in anonymous if n.startswith("onnx::MatMul")]
    if modality == ModalityType.POINTCLOUD:
        conv = "tube_embedding.conv_d.0.weight"
        adds = [inits[n] for n in anonymous if n.startswith("onnx::Add")]
        first = inits[matmuls.pop(0)]  # (3, C): displacement part of the 1x1 conv
        weight = np.concatenate([first.T, adds[-1][:, None]], axis=1)  # dt = +1 term: w[:, 3]
        state[conv] = torch.from_numpy(weight[:, :, None, None].astype(np.float32))
    if modality == ModalityType.SKELETON:
        queries = next(inits[n] for n in anonymous if n.startswith("onnx::Expand"))
        state["muQuery"] = torch.from_numpy(queries[0].copy())
        state["sigmaQuery"] = torch.from_numpy(queries[1].copy())
    targets = [
        n for n, v in state.items()
        if n not in inits and n.endswith("weight") and v.ndim == 2 and "conv_d" not in n
    ]  # fmt: skip
    for name, source in zip(targets, matmuls, strict=True):
        array = inits[source].T
        if tuple(array.shape) != tuple(state[name].shape):
            raise DataError(f"{modality}: {source} {array.shape} does not fit {name}")
        state[name] = torch.from_numpy(array.copy())
    return state


def model_from_onnx(model_dir: Path) -> tuple[DespiteModel, WindowSpec, dict[str, float]]:
    """The torch model of an exported directory, its window spec and the parity per encoder."""
    from despite.evaluate import OnnxEmbedder

    manifest = load_manifest(model_dir)
    training = manifest.training
    preset = EncoderPreset.from_dict(training["preset"])
    modalities = tuple(
        m
        for m in (ModalityType.POINTCLOUD, ModalityType.IMU, ModalityType.SKELETON)
        if m in manifest.encoders
    )
    model = DespiteModel(preset, modalities=modalities, layout=manifest.layout)
    for modality in modalities:
        inits = _initialisers(Path(model_dir) / f"{modality}.onnx")
        encoder = model.encoders[modality]
        encoder.load_state_dict(_encoder_state(modality, encoder, inits))
    model.eval()
    spec = WindowSpec(
        window_frames=manifest.window_frames,
        points_per_frame=manifest.points_per_frame,
        centring=manifest.centring,
        layout=manifest.layout,
        frame_rate_hz=manifest.frame_rate_hz,
    )
    reference = OnnxEmbedder(Path(model_dir), threads=1)
    rng = np.random.default_rng(0)
    shapes: dict[str, tuple[int, ...]] = {
        ModalityType.POINTCLOUD: (4, spec.window_frames, spec.points_per_frame, 3),
        ModalityType.IMU: (4, spec.window_frames, get_layout(spec.layout).channels),
        ModalityType.SKELETON: (4, spec.window_frames, 24, 3),
    }
    parity: dict[str, float] = {}
    for modality in modalities:
        x = (rng.normal(0.0, 0.4, shapes[modality])).astype(np.float32)
        with torch.no_grad():
            ours = model.encoders[modality](torch.from_numpy(x)).numpy()
        ours /= np.linalg.norm(ours, axis=1, keepdims=True)
        theirs = reference.embed(modality, x)
        theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
        parity[modality] = float(np.abs(ours - theirs).max())
        if parity[modality] > PARITY:
            raise DataError(
                f"{model_dir}: rebuilt {modality} encoder differs from ONNX by "
                f"{parity[modality]:.2e} (> {PARITY}); cannot warm-start from it"
            )
    return model, spec, parity


def main(argv: list[str] | None = None) -> int:
    """Write a step-0 checkpoint that `rt-reid train` resumes from (its optimiser starts fresh)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("checkpoint", type=Path, help="e.g. runs/<run>/last.pt (must not exist)")
    args = parser.parse_args(argv)
    if args.checkpoint.exists():
        print(f"error: {args.checkpoint} exists", file=sys.stderr)
        return 2
    model, spec, parity = model_from_onnx(args.model_dir)
    model.train()
    training = {"warm_start": str(args.model_dir), "parity": parity}
    save_checkpoint(args.checkpoint, Checkpoint(model, spec, 0, 0, None, training))
    print(f"wrote {args.checkpoint} from {args.model_dir} (parity {parity})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
