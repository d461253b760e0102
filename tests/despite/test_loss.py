"""Symmetric InfoNCE and the DeSPITE total loss against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from despite.loss import DespiteLoss, info_nce, sensor_pairs
from rt_reid.errors import ConfigError


def test_info_nce_hand_computed() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised inside: scale must not matter
    b = torch.tensor([[3.0, 0.0], [1.0, 0.0]])
    # logits / 0.1 = [[10, 10], [0, 0]]: a->b rows give log 2 each;
    # b->a rows: [10, 0] with label 0 -> log(1 + e^-10), [10, 0] with label 1 -> log(1 + e^10)
    expected = math.log(2) + 0.5 * (math.log1p(math.exp(-10)) + math.log1p(math.exp(10)))
    got = info_nce(a, b, temperature=0.1)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # perfectly aligned pairs: 2 * log(1 + e^-10) (sum over the two directions, not the mean)
    eye = torch.eye(2)
    assert info_nce(eye, eye, temperature=0.1).item() == pytest.approx(
        2 * math.log1p(math.exp(-10)), abs=2e-6
    )


def test_total_loss_weights_text_and_masks() -> None:
    torch.manual_seed(0)
    emb = {m: torch.randn(6, 4) for m in ("pointcloud", "imu", "skeleton", "text")}
    loss = DespiteLoss(pairs=sensor_pairs(("pointcloud", "imu", "skeleton")))
    mask = torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool)
    total, terms = loss(emb, mask)
    pair_sum: torch.Tensor = sum(  # type: ignore[assignment]
        info_nce(emb[a], emb[b], temperature=0.1)
        for a, b in [("pointcloud", "imu"), ("pointcloud", "skeleton"), ("imu", "skeleton")]
    )
    text_sum: torch.Tensor = sum(  # type: ignore[assignment]
        info_nce(emb[m][mask], emb["text"][mask], temperature=0.1)
        for m in ("pointcloud", "imu", "skeleton")
    )
    assert total.item() == pytest.approx(0.5 * text_sum.item() + 0.5 * pair_sum.item(), rel=1e-6)
    assert set(terms) == {
        "pointcloud-imu",
        "pointcloud-skeleton",
        "imu-skeleton",
        "pointcloud-text",
        "imu-text",
        "skeleton-text",
    }
    # without text: the plain sum of the pair terms (official DeSPIE)
    no_text = {m: e for m, e in emb.items() if m != "text"}
    assert loss(no_text)[0].item() == pytest.approx(pair_sum.item(), rel=1e-6)


def test_temperature_fixed_or_learnable() -> None:
    fixed = DespiteLoss(pairs=[("pointcloud", "imu")])
    assert not fixed.log_temperature.requires_grad
    assert fixed.temperature.item() == pytest.approx(0.1)
    learn = DespiteLoss(pairs=[("pointcloud", "imu")], temperature=0.07, learn_temperature=True)
    emb = {"pointcloud": torch.randn(4, 3), "imu": torch.randn(4, 3)}
    learn(emb)[0].backward()
    assert learn.log_temperature.grad is not None
    with pytest.raises(ConfigError):
        DespiteLoss(pairs=[("imu", "imu")])
    with pytest.raises(ConfigError):
        DespiteLoss(pairs=[("imu", "pointcloud")], temperature=0.0)
