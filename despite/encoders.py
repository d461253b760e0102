"""DeSPITE encoders in plain PyTorch and the modality-keyed model that holds any subset of them.

`PSTTransformer`, `ImuEncoder` and `SkeletonEncoder` reproduce the official modules (same
parameter names and shapes, see `OFFICIAL_PREFIXES`), so the published checkpoints load with
`strict=True`; the PointNet++ CUDA ops are replaced by the export-safe ops in `despite.ops`.
Every encoder returns an un-normalised (B, D) embedding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from despite.ops import ball_query, furthest_point_sample, gather_points, group_points
from rt_reid.errors import ConfigError
from rt_reid.layouts import get_layout
from rt_reid.names import MODALITIES, ModalityType

# state_dict prefix of each encoder in the official SPIE/SPITE binders, in their key order
OFFICIAL_PREFIXES = {
    ModalityType.IMU: "imu_encoder.",
    ModalityType.POINTCLOUD: "pointcloud_encoder.",
    ModalityType.SKELETON: "skeleton_encoder.",
}
SMPL_JOINTS = 24


@dataclass(frozen=True)
class PointCloudConfig:
    """PST-Transformer hyper-parameters (official: r 0.3, k 32, stride 32, dim 80, depth 5...)."""

    radius: float = 0.3
    nsamples: int = 32
    spatial_stride: int = 32
    temporal_kernel_size: int = 3
    temporal_stride: int = 2
    dim: int = 80
    depth: int = 5
    heads: int = 2
    dim_head: int = 40
    mlp_dim: int = 512


@dataclass(frozen=True)
class ImuConfig:
    """LSTM hyper-parameters; the hidden size is the embedding size (no projection head)."""

    num_layers: int = 2


@dataclass(frozen=True)
class SkeletonConfig:
    """ACTOR / MotionCLIP transformer encoder hyper-parameters (latent size = embedding size)."""

    ff_size: int = 1024
    num_layers: int = 8
    num_heads: int = 4
    dropout: float = 0.1


@dataclass(frozen=True)
class EncoderPreset:
    """A complete encoder configuration: embedding size plus one config per sensor encoder."""

    name: str
    embed_dim: int
    pointcloud: PointCloudConfig = field(default_factory=PointCloudConfig)
    imu: ImuConfig = field(default_factory=ImuConfig)
    skeleton: SkeletonConfig = field(default_factory=SkeletonConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints and manifests."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncoderPreset:
        """Inverse of `to_dict`; raises ConfigError on unknown or missing fields."""
        try:
            return cls(
                name=str(data["name"]),
                embed_dim=int(data["embed_dim"]),
                pointcloud=PointCloudConfig(**data.get(ModalityType.POINTCLOUD, {})),
                imu=ImuConfig(**data.get("imu", {})),
                skeleton=SkeletonConfig(**data.get(ModalityType.SKELETON, {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"invalid encoder preset {dict(data)!r}: {err}") from err


PRESETS: dict[str, EncoderPreset] = {
    # exact official DeSPITE configuration (591,432 / 3,252,224 / 16,860,672 parameters)
    "paper": EncoderPreset(name="paper", embed_dim=512),
    # CPU-sized: same architecture, narrower and shallower
    "small": EncoderPreset(
        name="small",
        embed_dim=128,
        pointcloud=PointCloudConfig(dim=64, depth=2, heads=2, dim_head=32, mlp_dim=128),
        imu=ImuConfig(num_layers=2),
        skeleton=SkeletonConfig(ff_size=256, num_layers=2, num_heads=4, dropout=0.1),
    ),
}


def get_preset(name: str, **overrides: Any) -> EncoderPreset:
    """Preset by name (`paper`, `small`), optionally with top-level fields replaced."""
    try:
        preset = PRESETS[name]
    except KeyError as err:
        raise ConfigError(f"unknown encoder preset {name!r}; known: {sorted(PRESETS)}") from err
    return replace(preset, **overrides) if overrides else preset


class P4DConv(nn.Module):
    """PST tube embedding: per anchor frame, FPS anchors, ball query in 3 frames, 1x1 conv, max.

    Only the configuration DeSPITE uses: no input features, conv without BN/activation,
    replicate temporal padding [1, 0], max spatial and temporal pooling.
    """

    def __init__(
        self,
        *,
        out_planes: int,
        radius: float,
        nsamples: int,
        spatial_stride: int,
        temporal_kernel_size: int,
        temporal_stride: int,
    ) -> None:
        super().__init__()
        if temporal_kernel_size % 2 != 1:
            raise ConfigError(f"temporal_kernel_size must be odd, got {temporal_kernel_size}")
        self.radius = radius
        self.nsamples = nsamples
        self.spatial_stride = spatial_stride
        self.temporal_kernel_size = temporal_kernel_size
        self.temporal_stride = temporal_stride
        self.temporal_padding = (1, 0)
        self.conv_d = nn.Sequential(nn.Conv2d(4, out_planes, kernel_size=1, bias=False))

    def forward(self, xyzs: Tensor) -> tuple[Tensor, Tensor]:
        """xyzs (B, T, N, 3) -> anchor xyz (B, L, m, 3) and features (B, L, m, C)."""
        frames, npoints = xyzs.shape[1], xyzs.shape[2]
        radius_t = self.temporal_kernel_size // 2
        if (frames + sum(self.temporal_padding) - self.temporal_kernel_size) % self.temporal_stride:
            raise ConfigError(
                f"window of {frames} frames does not fit temporal kernel "
                f"{self.temporal_kernel_size} / stride {self.temporal_stride} (use an even T)"
            )
        if npoints < self.nsamples:
            raise ConfigError(f"{npoints} points per frame < {self.nsamples} neighbours")
        b = xyzs.shape[0]
        # replicate padding as frame indices; anchor frames t, neighbour frames t + offset
        padded = [0] * self.temporal_padding[0] + list(range(frames))
        padded += [frames - 1] * self.temporal_padding[1]
        centres = list(range(radius_t, len(padded) - radius_t, self.temporal_stride))
        n_anchor, anchors = len(centres), npoints // self.spatial_stride
        conv: nn.Conv2d = self.conv_d[0]  # type: ignore[assignment]
        weight = conv.weight[:, :, 0, 0]  # (C, 4): the 1x1 conv as a matrix
        # all anchor frames of all windows in one batch (few, large ops: fast in ONNX Runtime)
        anchor_frames = xyzs[:, [padded[t] for t in centres]].reshape(b * n_anchor, npoints, 3)
        anchor_xyz = gather_points(anchor_frames, furthest_point_sample(anchor_frames, anchors))
        per_offset = []
        for offset in range(-radius_t, radius_t + 1):
            frames_at = xyzs[:, [padded[t + offset] for t in centres]]
            neighbours = frames_at.reshape(b * n_anchor, npoints, 3)
            idx = ball_query(self.radius, self.nsamples, neighbours, anchor_xyz)
            displacement = group_points(neighbours, idx) - anchor_xyz[:, :, None, :]
            # conv over (dx, dy, dz, dt) then max over neighbours; dt = offset is constant
            feature = (displacement @ weight[:, :3].T).amax(dim=2)
            per_offset.append(feature + weight[:, 3] * float(offset))
        features = torch.stack(per_offset, dim=0).amax(dim=0)  # max over the temporal kernel
        return anchor_xyz.reshape(b, n_anchor, anchors, 3), features.reshape(
            b, n_anchor, anchors, -1
        )


class Attention(nn.Module):
    """PST-Transformer attention: pre-LN multi-head attention plus attended xyz displacements."""

    def __init__(self, dim: int, *, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.spatial_op = nn.Linear(3, dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.GELU(), nn.Dropout(0.0))

    def forward(self, xyzs: Tensor, features: Tensor) -> Tensor:
        """xyzs (B, M, 3), features (B, M, C) -> features with the attention residual added."""
        b, m, _ = features.shape
        qkv = self.to_qkv(self.norm(features)).reshape(b, m, 3, self.heads, -1)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (B, h, M, d)
        attn = torch.softmax((q @ k.transpose(-1, -2)) * self.scale, dim=-1)
        # sum_j a_ij (x_j - x_i) = (A X)_i - x_i because softmax rows sum to one
        delta = attn @ xyzs[:, None] - xyzs[:, None]
        out = attn @ v + self.spatial_op(delta)
        projected: Tensor = self.to_out(out.transpose(1, 2).reshape(b, m, -1))
        return projected + features


class FeedForward(nn.Module):
    """PST-Transformer pre-LN feed-forward block (returns the update, residual added outside)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(0.0),
            nn.Linear(hidden, dim),
            nn.Dropout(0.0),
        )

    def forward(self, features: Tensor) -> Tensor:
        """(B, M, C) -> (B, M, C)."""
        out: Tensor = self.net(features)
        return out


class Transformer(nn.Module):
    """Stack of (Attention, FeedForward) pairs, keys `layers.<i>.0` / `layers.<i>.1`."""

    def __init__(self, dim: int, *, depth: int, heads: int, dim_head: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [Attention(dim, heads=heads, dim_head=dim_head), FeedForward(dim, mlp_dim)]
            )
            for _ in range(depth)
        )

    def forward(self, xyzs: Tensor, features: Tensor) -> Tensor:
        """Apply every layer to the flattened tokens (B, M, C)."""
        for pair in self.layers:
            attn: nn.Module = pair[0]  # type: ignore[index]
            ff: nn.Module = pair[1]  # type: ignore[index]
            features = attn(xyzs, features)
            features = ff(features) + features
        return features


class PSTTransformer(nn.Module):
    """Point-cloud window encoder: (B, T, N, 3) metres -> (B, D) embedding (SimCLR head)."""

    def __init__(self, config: PointCloudConfig, *, embed_dim: int) -> None:
        super().__init__()
        self.config = config
        self.tube_embedding = P4DConv(
            out_planes=config.dim,
            radius=config.radius,
            nsamples=config.nsamples,
            spatial_stride=config.spatial_stride,
            temporal_kernel_size=config.temporal_kernel_size,
            temporal_stride=config.temporal_stride,
        )
        self.transformer = Transformer(
            config.dim,
            depth=config.depth,
            heads=config.heads,
            dim_head=config.dim_head,
            mlp_dim=config.mlp_dim,
        )
        self.head = nn.Sequential(
            nn.Linear(config.dim, config.dim), nn.ReLU(), nn.Linear(config.dim, embed_dim)
        )

    def features(self, points: Tensor) -> Tensor:
        """Pre-head pooled feature (B, dim): max over time, then over anchor points."""
        xyzs, feats = self.tube_embedding(points)  # (B, L, m, 3), (B, L, m, C)
        b, frames, m, c = feats.shape
        out = self.transformer(xyzs.reshape(b, frames * m, 3), feats.reshape(b, frames * m, c))
        pooled: Tensor = out.reshape(b, frames, m, c).amax(dim=1).amax(dim=1)
        return pooled

    def forward(self, points: Tensor) -> Tensor:
        """(B, T, N, 3) -> (B, D)."""
        out: Tensor = self.head(self.features(points))
        return out


class ImuEncoder(nn.Module):
    """Official IMU encoder: batch-first LSTM from zero state, top layer's last hidden state."""

    def __init__(self, config: ImuConfig, *, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, embed_dim, num_layers=config.num_layers, batch_first=True)

    def forward(self, imu: Tensor) -> Tensor:
        """(B, T, C) -> (B, D)."""
        out, _ = self.lstm(imu)
        last: Tensor = out[:, -1, :]
        return last


class PositionalEncoding(nn.Module):
    """ACTOR sinusoidal positional encoding (buffer `pe` (5000, 1, D)) followed by dropout."""

    def __init__(self, d_model: int, *, dropout: float, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(0, max_len, dtype=torch.float32)[:, None]
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe[:, None, :])

    def forward(self, x: Tensor) -> Tensor:
        """x (L, B, D) sequence-first."""
        pe: Tensor = self.get_buffer("pe")
        # a python int: the exported graph then keeps only the rows it uses (static window)
        length = int(x.shape[0])
        out: Tensor = self.dropout(x + pe[:length])
        return out


class SkeletonEncoder(nn.Module):
    """ACTOR/MotionCLIP `Encoder_TRANSFORMER`: (B, T, 24, 3) joints -> mu token (B, D)."""

    def __init__(
        self, config: SkeletonConfig, *, embed_dim: int, joints: int = SMPL_JOINTS
    ) -> None:
        super().__init__()
        self.muQuery = nn.Parameter(torch.randn(1, embed_dim))
        self.sigmaQuery = nn.Parameter(torch.randn(1, embed_dim))
        self.skelEmbedding = nn.Linear(joints * 3, embed_dim)
        self.sequence_pos_encoder = PositionalEncoding(embed_dim, dropout=config.dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=embed_dim,
            nhead=config.num_heads,
            dim_feedforward=config.ff_size,
            dropout=config.dropout,
            activation="gelu",
        )
        self.seqTransEncoder = nn.TransformerEncoder(
            layer, num_layers=config.num_layers, enable_nested_tensor=False
        )

    def forward(self, skeleton: Tensor) -> Tensor:
        """(B, T, J, 3) -> (B, D); every frame is valid (the official all-ones mask)."""
        b, t = skeleton.shape[0], skeleton.shape[1]
        x = self.skelEmbedding(skeleton.reshape(b, t, -1).transpose(0, 1))  # (T, B, D)
        queries = torch.stack([self.muQuery[0], self.sigmaQuery[0]])[:, None, :].expand(2, b, -1)
        xseq = self.sequence_pos_encoder(torch.cat([queries, x], dim=0))
        final: Tensor = self.seqTransEncoder(xseq)
        return final[0]


class TextProjection(nn.Module):
    """Trainable map from frozen text embeddings to the shared space (identity if sizes match)."""

    def __init__(self, *, text_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.proj: nn.Module = (
            nn.Identity() if text_dim == embed_dim else nn.Linear(text_dim, embed_dim, bias=False)
        )

    def forward(self, text_embedding: Tensor) -> Tensor:
        """(B, text_dim) -> (B, D)."""
        out: Tensor = self.proj(text_embedding)
        return out


class DespiteModel(nn.Module):
    """ImageBind-style binder: `encoders` is a ModuleDict keyed by modality (any subset)."""

    def __init__(
        self,
        preset: EncoderPreset,
        *,
        modalities: tuple[str, ...],
        layout: str = "lipd4",
        text_dim: int | None = None,
    ) -> None:
        super().__init__()
        unknown = sorted(set(modalities) - set(MODALITIES))
        if unknown or not modalities:
            raise ConfigError(f"modalities {modalities} invalid; choose from {MODALITIES}")
        self.preset = preset
        self.layout = layout
        self.text_dim = text_dim
        self.modalities = tuple(m for m in MODALITIES if m in modalities)
        dim = preset.embed_dim
        built: dict[str, nn.Module] = {}
        if ModalityType.POINTCLOUD in modalities:
            built[ModalityType.POINTCLOUD] = PSTTransformer(preset.pointcloud, embed_dim=dim)
        if ModalityType.IMU in modalities:
            channels = get_layout(layout).channels
            built[ModalityType.IMU] = ImuEncoder(preset.imu, channels=channels, embed_dim=dim)
        if ModalityType.SKELETON in modalities:
            built[ModalityType.SKELETON] = SkeletonEncoder(preset.skeleton, embed_dim=dim)
        if ModalityType.TEXT in modalities:
            if text_dim is None:
                raise ConfigError(
                    "the text modality needs text_dim (the frozen text encoder's size)"
                )
            built[ModalityType.TEXT] = TextProjection(text_dim=text_dim, embed_dim=dim)
        self.encoders = nn.ModuleDict(built)

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Embed every given modality: {modality: input} -> {modality: (B, D) un-normalised}."""
        return {m: self.encoders[m](x) for m, x in inputs.items()}

    def official_state_dict(self) -> dict[str, Tensor]:
        """Sensor encoder weights under the official binder's key names."""
        out: dict[str, Tensor] = {}
        for modality, prefix in OFFICIAL_PREFIXES.items():
            if modality in self.encoders:
                for key, value in self.encoders[modality].state_dict().items():
                    out[prefix + key] = value
        return out

    def load_official_state_dict(self, state: Mapping[str, Tensor], *, strict: bool = True) -> None:
        """Load an official SPIE/SPITE checkpoint (keys `imu_encoder.*` ...) into the encoders.

        With `strict`, every official key of a present encoder must match exactly and keys of
        encoders this model does not hold are an error.
        """
        used: set[str] = set()
        for modality, prefix in OFFICIAL_PREFIXES.items():
            sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            used.update(prefix + k for k in sub)
            if modality not in self.encoders:
                if sub and strict:
                    raise ConfigError(
                        f"checkpoint has {modality} weights; model lacks that encoder"
                    )
                continue
            try:
                self.encoders[modality].load_state_dict(sub, strict=strict)
            except RuntimeError as err:
                raise ConfigError(f"official {modality} weights do not fit: {err}") from err
        leftover = sorted(set(state) - used)
        if leftover and strict:
            raise ConfigError(f"unexpected checkpoint keys: {leftover[:5]}")


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (buffers excluded)."""
    return sum(p.numel() for p in module.parameters())
