"""Training configuration (`despite/configs/*.yaml`): one typed object, every field defaulted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from despite.encoders import PRESETS
from despite.loss import sensor_pairs
from despite.text import TEXT_ENCODERS
from despite.windows import WindowSpec
from rt_reid.errors import ConfigError
from rt_reid.names import MODALITIES, ModalityType

BATCHINGS = ("scene", "random")
SIM_WINDOWS = ("truth", "perceived")
SOURCES = ("sim", "lipd")


@dataclass(frozen=True)
class SimData:
    """Simulated training/validation scenes: seeds, scene options (SceneConfig keywords)."""

    train_seeds: tuple[int, int] = (1000, 1012)  # [first, last) scene seeds for training
    val_seeds: tuple[int, int] = (5000, 5002)  # held-out scenes for the end-of-run check
    scene: dict[str, Any] = field(default_factory=lambda: {"people": 8, "duration_s": 60.0})
    randomize: bool = False  # draw each scene's world from rt_reid_sim.randomize (scene: fixed)
    windows: str = "truth"  # "truth": each person's own returns; "perceived": runtime tracks
    gt_share: float = 0.25  # perceived: chance a person's batch window is ground-truth-cut


@dataclass(frozen=True)
class TrainConfig:
    """Everything `rt-reid train` needs; see despite/README.md for each field."""

    name: str = "run"
    out_dir: str = "runs/run"
    seed: int = 0
    preset: str = "small"
    modalities: tuple[str, ...] = (ModalityType.POINTCLOUD, ModalityType.IMU, ModalityType.SKELETON)
    pairs: tuple[tuple[str, str], ...] | None = None  # None: every sensor pair
    window: WindowSpec = field(default_factory=WindowSpec)
    source: str = "sim"
    sim: SimData = field(default_factory=SimData)
    cache_dir: str = "runs/cache"  # shards are not committed (runs/ is git-ignored)
    lipd_pickle: str | None = None
    lipd_sets: tuple[str, ...] | None = None
    window_stride: int = 1
    batching: str = "scene"  # "scene": co-temporal windows of one scene (hard negatives)
    augment: bool = True
    temperature: float = 0.1
    learn_temperature: bool = False
    text_encoder: str = "minilm"
    clip_weights: str | None = None
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    steps: int = 2000
    time_limit_min: float | None = None  # stop (and save) after this many minutes
    checkpoint_every: int = 200
    log_every: int = 20
    threads: int = 1  # torch CPU threads
    val_every: int = 0  # steps between validations on sim.val_seeds (0: none)
    val_stride: int = 5  # validation windows start every val_stride frames (co-temporal groups)
    amp: bool = True  # mixed precision on CUDA only

    def resolved_pairs(self) -> list[tuple[str, str]]:
        """Configured sensor pairs, or all combinations of the sensor modalities."""
        return [tuple(p) for p in self.pairs] if self.pairs else sensor_pairs(self.modalities)  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored in checkpoints and manifests)."""
        return asdict(self)


def _build(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Keyword arguments for dataclass `cls` from `data`; unknown keys are an error."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(names)}")
    return dict(data)


def parse_config(data: dict[str, Any], *, source: str = "config") -> TrainConfig:
    """Validate a decoded YAML mapping into a TrainConfig (ConfigError names the bad field)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    kwargs = _build(TrainConfig, data, source)
    try:
        if "window" in kwargs:
            kwargs["window"] = WindowSpec(
                **_build(WindowSpec, kwargs["window"], f"{source}.window")
            )
        if "sim" in kwargs:
            sim = _build(SimData, kwargs["sim"], f"{source}.sim")
            for key in ("train_seeds", "val_seeds"):
                if key in sim:
                    sim[key] = tuple(sim[key])
            kwargs["sim"] = SimData(**sim)
        for key in ("modalities", "lipd_sets"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        if kwargs.get("pairs") is not None:
            kwargs["pairs"] = tuple(tuple(p) for p in kwargs["pairs"])
        config = TrainConfig(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: {err}") from err
    checks = [
        (config.preset in PRESETS, f"preset {config.preset!r} not in {sorted(PRESETS)}"),
        (set(config.modalities) <= set(MODALITIES), f"modalities must be within {MODALITIES}"),
        (
            len([m for m in config.modalities if m != ModalityType.TEXT]) >= 1,
            "need a sensor modality",
        ),
        (config.source in SOURCES, f"source must be one of {SOURCES}"),
        (config.batching in BATCHINGS, f"batching must be one of {BATCHINGS}"),
        (config.text_encoder in TEXT_ENCODERS, f"text_encoder must be one of {TEXT_ENCODERS}"),
        (config.batch_size >= 2, "batch_size must be >= 2 (in-batch negatives)"),
        (config.sim.windows in SIM_WINDOWS, f"sim.windows must be one of {SIM_WINDOWS}"),
        (0.0 <= config.sim.gt_share <= 1.0, "sim.gt_share must be 0..1"),
        (config.val_every >= 0 and config.val_stride >= 1, "val_every >= 0, val_stride >= 1"),
        (config.steps >= 1 and config.lr > 0, "steps must be >= 1 and lr > 0"),
        (
            config.source != "lipd" or config.lipd_pickle is not None,
            "source lipd needs lipd_pickle",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{source}: {message}")
    for a, b in config.resolved_pairs():
        if a not in config.modalities or b not in config.modalities:
            raise ConfigError(
                f"{source}: pair ({a}, {b}) uses a modality not in {config.modalities}"
            )
    return config


def load_config(path: Path) -> TrainConfig:
    """Read and validate a training YAML file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read training config {path}: {err}") from err
    return parse_config(data, source=str(path))
