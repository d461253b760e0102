"""DeSPITE contrastive objective: symmetric InfoNCE per modality pair, summed as officially."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rt_reid.errors import ConfigError
from rt_reid.names import SENSOR_MODALITIES, ModalityType

DEFAULT_TEMPERATURE = 0.1
TEXT_WEIGHT = 0.5  # total = 0.5 * sum(text terms) + 0.5 * sum(sensor-pair terms)


def info_nce(a: Tensor, b: Tensor, *, temperature: Tensor | float) -> Tensor:
    """Symmetric InfoNCE of paired rows (in-batch negatives): CE(a->b) + CE(b->a), a sum."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    labels = torch.arange(a.shape[0], device=a.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)


def sensor_pairs(modalities: Sequence[str]) -> list[tuple[str, str]]:
    """All unordered pairs of the sensor modalities, in canonical order (official combinations)."""
    sensors = [m for m in SENSOR_MODALITIES if m in modalities]
    return list(itertools.combinations(sensors, 2))


class DespiteLoss(nn.Module):
    """Total loss over the configured pairs; with text: 0.5 masked text terms + 0.5 sensor pairs.

    The temperature is fixed (official, 0.1) unless `learn_temperature`, in which case its log is
    a parameter (optimise it together with the encoders).
    """

    def __init__(
        self,
        *,
        pairs: Sequence[tuple[str, str]],
        temperature: float = DEFAULT_TEMPERATURE,
        learn_temperature: bool = False,
        text_weight: float = TEXT_WEIGHT,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        for a, b in pairs:
            if a not in SENSOR_MODALITIES or b not in SENSOR_MODALITIES or a == b:
                raise ConfigError(f"bad sensor pair ({a}, {b}); sensors are {SENSOR_MODALITIES}")
        self.pairs = [tuple(p) for p in pairs]
        self.text_weight = text_weight
        log_t = torch.tensor(math.log(temperature))
        self.log_temperature = nn.Parameter(log_t, requires_grad=learn_temperature)

    @property
    def temperature(self) -> Tensor:
        """Current temperature."""
        return self.log_temperature.exp()

    def forward(
        self, embeddings: Mapping[str, Tensor], text_mask: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Total loss and each term (for logging) from {modality: (B, D)} embeddings."""
        tau = self.temperature
        terms: dict[str, Tensor] = {}
        for a, b in self.pairs:
            terms[f"{a}-{b}"] = info_nce(embeddings[a], embeddings[b], temperature=tau)
        total = sum(terms.values(), torch.zeros((), device=tau.device))
        if ModalityType.TEXT in embeddings:
            mask = (
                torch.ones(
                    embeddings[ModalityType.TEXT].shape[0], dtype=torch.bool, device=tau.device
                )
                if text_mask is None
                else text_mask.bool()
            )
            text_terms: dict[str, Tensor] = {}
            if int(mask.sum()) >= 2:  # a single labelled window has no negative to contrast
                text = embeddings[ModalityType.TEXT][mask]
                for m in SENSOR_MODALITIES:
                    if m in embeddings:
                        text_terms[f"{m}-text"] = info_nce(
                            embeddings[m][mask], text, temperature=tau
                        )
            text_total = sum(text_terms.values(), torch.zeros((), device=tau.device))
            total = self.text_weight * text_total + (1.0 - self.text_weight) * total
            terms.update(text_terms)
        return total, {k: float(v.detach()) for k, v in terms.items()}
