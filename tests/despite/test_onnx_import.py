"""Warm start from a shipped model: the rebuilt torch encoders reproduce the ONNX files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from despite.checkpoint import load_checkpoint
from despite.onnx_import import PARITY, main, model_from_onnx
from despite.windows import DataError
from rt_reid.paths import shipped_model


def test_shipped_watch_model_is_rebuilt_exactly(tmp_path: Path) -> None:
    model, spec, parity = model_from_onnx(shipped_model("watch"))
    assert set(parity) == {"pointcloud", "imu", "skeleton"}
    assert max(parity.values()) <= PARITY
    assert spec.layout == "watch"
    out = tmp_path / "run" / "last.pt"
    assert main([str(shipped_model("watch")), str(out)]) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.step == 0
    assert ckpt.optimizer is None
    torch.testing.assert_close(ckpt.model.state_dict(), model.state_dict())
    assert main([str(shipped_model("watch")), str(out)]) == 2  # never overwrites a run


def test_a_wrong_mapping_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import despite.onnx_import as module

    original = module._lstm_gates
    monkeypatch.setattr(module, "_lstm_gates", lambda a: original(a)[::-1].copy())
    with pytest.raises(DataError, match="imu"):
        model_from_onnx(shipped_model("watch"))
