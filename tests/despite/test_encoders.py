"""Encoders: official parameter names/shapes/counts, official checkpoint loading, shapes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from despite.encoders import (
    DespiteModel,
    EncoderPreset,
    PSTTransformer,
    count_parameters,
    get_preset,
)
from despite.ops import ball_query, furthest_point_sample, gather_points, group_points
from rt_reid.errors import ConfigError, ReidError
from rt_reid.names import SENSOR_MODALITIES

# Copy of shared/reference/despite_official_state_dict.json (official checkpoint names and shapes).
REFERENCE = Path(__file__).resolve().parent / "data" / "despite_official_state_dict.json"
# The parameter counts of the official encoders (despite_code_digest.md section 1).
OFFICIAL_COUNTS = {"pointcloud": 591_432, "imu": 3_252_224, "skeleton": 16_860_672}


@pytest.fixture(scope="module")
def paper() -> DespiteModel:
    torch.manual_seed(0)
    return DespiteModel(get_preset("paper"), modalities=SENSOR_MODALITIES).eval()


def official_spec() -> dict[str, list[int]]:
    data = json.loads(REFERENCE.read_text())
    shapes = {**data["tensors"], **data["buffers"]}
    return {key: shapes[key] for key in data["state_dict_key_order"]}


def test_parameter_counts_match_official(paper: DespiteModel) -> None:
    for modality, count in OFFICIAL_COUNTS.items():
        assert count_parameters(paper.encoders[modality]) == count


def test_state_dict_keys_and_shapes_equal_official_spec(paper: DespiteModel) -> None:
    spec = official_spec()
    state = paper.official_state_dict()
    assert list(state) == list(spec)  # same keys in the official order
    for key, shape in spec.items():
        assert list(state[key].shape) == shape, key


def test_official_checkpoint_loads_strict_and_reproduces(paper: DespiteModel) -> None:
    state = {k: v.clone() + 0.01 for k, v in paper.official_state_dict().items()}
    other = DespiteModel(get_preset("paper"), modalities=SENSOR_MODALITIES).eval()
    other.load_official_state_dict(state, strict=True)
    for key, value in other.official_state_dict().items():
        assert torch.equal(value, state[key])
    with pytest.raises(ConfigError, match="unexpected checkpoint keys"):
        other.load_official_state_dict({**state, "clip.extra": torch.zeros(1)})
    broken = dict(state)
    broken["imu_encoder.lstm.weight_ih_l0"] = torch.zeros(2048, 12)
    with pytest.raises(ConfigError, match="imu"):
        other.load_official_state_dict(broken)


def test_forward_shapes_and_determinism() -> None:
    torch.manual_seed(0)
    model = DespiteModel(get_preset("small"), modalities=SENSOR_MODALITIES, layout="watch").eval()
    inputs = {
        "pointcloud": torch.rand(3, 24, 256, 3) - 0.5,
        "imu": torch.randn(3, 24, 12),
        "skeleton": torch.randn(3, 24, 24, 3),
    }
    with torch.no_grad():
        first = model(inputs)
        second = model(inputs)
    for modality in SENSOR_MODALITIES:
        assert first[modality].shape == (3, 128)
        assert torch.equal(first[modality], second[modality])
    # permuting the batch permutes the embeddings (no cross-sample leakage)
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        permuted = model({m: x[perm] for m, x in inputs.items()})
    for modality in SENSOR_MODALITIES:
        torch.testing.assert_close(permuted[modality], first[modality][perm], atol=1e-5, rtol=0)


def test_modality_subsets_and_errors() -> None:
    model = DespiteModel(get_preset("small"), modalities=("imu", "pointcloud"))
    assert set(model.encoders) == {"imu", "pointcloud"}
    assert model.modalities == ("pointcloud", "imu")
    with pytest.raises(ConfigError, match="modalities"):
        DespiteModel(get_preset("small"), modalities=("lidar",))
    with pytest.raises(ConfigError, match="text_dim"):
        DespiteModel(get_preset("small"), modalities=("imu", "text"))
    with pytest.raises(ConfigError, match="unknown encoder preset"):
        get_preset("huge")
    with pytest.raises(ReidError, match="even"):
        model.encoders["pointcloud"](torch.rand(1, 23, 256, 3))


def test_preset_round_trip() -> None:
    preset = get_preset("small")
    assert EncoderPreset.from_dict(preset.to_dict()) == preset
    with pytest.raises(ConfigError):
        EncoderPreset.from_dict({"name": "x"})


def official_tube_embedding(
    conv: torch.nn.Conv2d, xyzs: torch.Tensor, *, radius: float, k: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """P4DConv.forward of PST-Transformer written as the original loops (kernel 3, stride 2)."""
    frames = [xyzs[:, t] for t in range(xyzs.shape[1])]
    frames = [frames[0], *frames]  # temporal_padding [1, 0], replicate
    new_xyzs, new_features = [], []
    for t in range(1, len(frames) - 1, 2):
        anchor_idx = furthest_point_sample(frames[t], frames[t].shape[1] // stride)
        anchor = gather_points(frames[t], anchor_idx)
        per_frame = []
        for i in range(t - 1, t + 2):
            idx = ball_query(radius, k, frames[i], anchor)
            xyz_disp = (group_points(frames[i], idx) - anchor[:, :, None, :]).permute(0, 3, 1, 2)
            t_disp = torch.ones_like(xyz_disp[:, :1]) * (i - t)
            feature = conv(torch.cat([xyz_disp, t_disp], dim=1))  # (B, C, m, k)
            per_frame.append(feature.max(dim=-1)[0])
        new_xyzs.append(anchor)
        new_features.append(torch.stack(per_frame, dim=1).max(dim=1)[0])
    return torch.stack(new_xyzs, dim=1), torch.stack(new_features, dim=1)


def test_tube_embedding_equals_the_official_loops() -> None:
    torch.manual_seed(1)
    encoder = PSTTransformer(get_preset("paper").pointcloud, embed_dim=512)
    tube = encoder.tube_embedding
    conv = tube.conv_d[0]
    assert isinstance(conv, torch.nn.Conv2d)
    xyzs = (torch.rand(2, 24, 256, 3) - 0.5) * torch.tensor([0.6, 0.6, 1.8])
    xyzs[:, 4:7, :40] = 0.0  # near-origin points (never FPS candidates) and duplicates
    with torch.no_grad():
        got_xyz, got_features = tube(xyzs)
        want_xyz, want_features = official_tube_embedding(conv, xyzs, radius=0.3, k=32, stride=32)
    assert got_xyz.shape == (2, 12, 8, 3)
    torch.testing.assert_close(got_xyz, want_xyz, atol=0, rtol=0)
    torch.testing.assert_close(
        got_features, want_features.permute(0, 1, 3, 2), atol=1e-5, rtol=1e-5
    )
