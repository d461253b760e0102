"""`rt-reid train --config despite/configs/<x>.yaml`: contrastive training with checkpoints."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch-backed modules load only when training runs (fast --help)
    from despite.config import TrainConfig
    from despite.windows import FrameStore

LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rt-reid train`."""
    parser.add_argument("--config", type=Path, required=True, help="training YAML")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda:0")
    parser.add_argument("--out-dir", type=Path, default=None, help="override config out_dir")
    parser.add_argument("--steps", type=int, default=None, help="override config steps")
    parser.add_argument(
        "--time-limit-min",
        type=float,
        default=None,
        help="stop and checkpoint after this many minutes",
    )
    parser.add_argument(
        "--no-resume", action="store_true", help="start over even if OUT_DIR/last.pt exists"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def training_store(config: TrainConfig, *, progress: bool) -> FrameStore:
    """Training frames for the configured source (simulator scenes or the LIPD pickle)."""
    if config.source == "lipd":
        from despite.lipd import load_lipd

        assert config.lipd_pickle is not None  # checked by parse_config
        return load_lipd(Path(config.lipd_pickle), config.window, sets=config.lipd_sets)
    return _simulated_store(config, config.sim.train_seeds, progress=progress)


def validation_store(config: TrainConfig, *, progress: bool) -> FrameStore | None:
    """Held-out scenes (`sim.val_seeds`, built like the training scenes) when validating."""
    if not config.val_every or config.source != "sim":
        return None
    return _simulated_store(config, config.sim.val_seeds, progress=progress)


def run(args: argparse.Namespace) -> int:
    """Load the config, build the data, train, print the checkpoint path."""
    from despite.config import load_config
    from despite.train import Trainer

    config = load_config(args.config)
    overrides = {
        k: v
        for k, v in {
            "out_dir": None if args.out_dir is None else str(args.out_dir),
            "steps": args.steps,
            "time_limit_min": args.time_limit_min,
        }.items()
        if v is not None
    }
    config = dataclasses.replace(config, **overrides)
    store = training_store(config, progress=not args.no_progress)
    val_store = validation_store(config, progress=not args.no_progress)
    LOG.info("training %s on %d frames", config.name, len(store))
    trainer = Trainer(
        config,
        store=store,
        val_store=val_store,
        device=args.device,
        resume=not args.no_resume,
        progress=not args.no_progress,
    )
    path = trainer.run()
    if trainer.dist.main:
        print(f"checkpoint: {path} (step {trainer.step})")
    trainer.close()
    return 0


def _simulated_store(config: TrainConfig, seeds: tuple[int, int], *, progress: bool) -> FrameStore:
    """Frames of the simulated scenes `range(*seeds)`, built with the configured scene options."""
    from despite.train import sim_store

    return sim_store(
        range(*seeds),
        config.window,
        scene_options=config.sim.scene,
        cache_dir=Path(config.cache_dir),
        progress=progress,
        randomize=config.sim.randomize,
        windows=config.sim.windows,
    )
