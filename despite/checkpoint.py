"""Training checkpoints: model weights plus everything needed to rebuild and export the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from despite.encoders import DespiteModel, EncoderPreset
from despite.windows import DataError, WindowSpec

CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    """A model with its window spec and the training state it was saved with."""

    model: DespiteModel
    spec: WindowSpec
    epoch: int
    step: int
    optimizer: dict[str, Any] | None
    training: dict[str, Any]


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically (temp file + rename) so an interrupted save never corrupts a resume."""
    model = checkpoint.model
    payload = {
        "version": CHECKPOINT_VERSION,
        "preset": model.preset.to_dict(),
        "modalities": list(model.modalities),
        "layout": model.layout,
        "text_dim": model.text_dim,
        "spec": checkpoint.spec.to_dict(),
        "model": model.state_dict(),
        "epoch": checkpoint.epoch,
        "step": checkpoint.step,
        "optimizer": checkpoint.optimizer,
        "training": checkpoint.training,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, *, map_location: str = "cpu") -> Checkpoint:
    """Rebuild the model from a checkpoint written by `save_checkpoint`."""
    try:
        payload = torch.load(Path(path), map_location=map_location, weights_only=False)
    except (OSError, RuntimeError, EOFError) as err:
        raise DataError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
        raise DataError(f"{path} is not a despite checkpoint (version {CHECKPOINT_VERSION})")
    spec = WindowSpec(**payload["spec"])
    model = DespiteModel(
        EncoderPreset.from_dict(payload["preset"]),
        modalities=tuple(payload["modalities"]),
        layout=payload["layout"],
        text_dim=payload["text_dim"],
    )
    model.load_state_dict(payload["model"])
    return Checkpoint(
        model=model,
        spec=spec,
        epoch=int(payload["epoch"]),
        step=int(payload["step"]),
        optimizer=payload["optimizer"],
        training=dict(payload["training"]),
    )
