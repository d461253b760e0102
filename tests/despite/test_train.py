"""Training: a few steps lower the loss; checkpoints, resume, the train CLI and its config."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from despite.checkpoint import load_checkpoint
from despite.config import TrainConfig, load_config, parse_config
from despite.train import Trainer, WindowSampler
from despite.windows import FrameStore, WindowSpec, scene_frames
from rt_reid.cli import main
from rt_reid.errors import ConfigError
from tests.despite.fakes import fake_scene


@pytest.fixture(scope="module")
def store() -> FrameStore:
    return FrameStore.concat(
        [scene_frames(fake_scene(seed=s, frames=36), WindowSpec(), scene_index=s) for s in range(2)]
    )


def config(tmp_path: Path, **overrides: object) -> TrainConfig:
    base = {
        "out_dir": str(tmp_path / "run"),
        "batch_size": 6,
        "steps": 4,
        "lr": 1e-3,
        "checkpoint_every": 2,
        "log_every": 1,
        "modalities": ["pointcloud", "imu"],
    }
    return parse_config({**base, **overrides})


def test_train_steps_lower_the_loss(store: FrameStore, tmp_path: Path) -> None:
    trainer = Trainer(config(tmp_path, augment=False), store=store, device="cpu", progress=False)
    batch = next(trainer.batches())
    first, terms = trainer.train_step(batch)
    assert set(terms) == {"pointcloud-imu"}
    for _ in range(5):
        last, _ = trainer.train_step(batch)
    assert last < first - 0.05


def test_run_checkpoints_and_resumes(store: FrameStore, tmp_path: Path) -> None:
    cfg = config(tmp_path)
    path = Trainer(cfg, store=store, device="cpu", progress=False).run()
    ckpt = load_checkpoint(path)
    assert ckpt.step == 4
    assert ckpt.spec == cfg.window
    assert ckpt.training["config"]["batch_size"] == 6
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(log) == 4
    more = parse_config(
        {**cfg.to_dict() | {"window": cfg.window.to_dict(), "sim": {"scene": {}}}, "steps": 6}
    )
    resumed = Trainer(more, store=store, device="cpu", progress=False)
    assert resumed.step == 4
    torch.testing.assert_close(resumed.model.state_dict(), ckpt.model.state_dict())
    assert load_checkpoint(resumed.run()).step == 6


def test_scene_batching_groups_cotemporal_windows(store: FrameStore) -> None:
    starts = store.window_starts(24)
    sampler = WindowSampler(
        store, starts, batch_size=6, batching="scene", rng=np.random.default_rng(0)
    )
    batch = sampler.sample()
    assert len(set(batch.tolist())) == 6
    keys = {(int(store.scene[s]), int(store.time[s])) for s in batch}
    assert len(keys) <= 3  # 3 people per scene and time -> at most 3 groups fill 6 slots


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        parse_config({"batch_sise": 4})
    with pytest.raises(ConfigError, match="pair"):
        parse_config({"modalities": ["pointcloud", "imu"], "pairs": [["imu", "skeleton"]]})
    with pytest.raises(ConfigError, match="lipd_pickle"):
        parse_config({"source": "lipd"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(bad)


def test_train_cli_on_a_lipd_pickle(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    leaf = {
        "PCD": torch.randn(40, 256, 3, generator=gen) * 0.3,
        "IMU": torch.randn(40, 48, generator=gen),
        "gt_joint": torch.randn(40, 72),
        "gt": torch.zeros(40, 72),
    }
    pkl = tmp_path / "lipd.pkl"
    pkl.write_bytes(pickle.dumps({"eLIPD": {"1": {"a": leaf}}}))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "source": "lipd",
                "lipd_pickle": str(pkl),
                "out_dir": str(tmp_path / "out"),
                "modalities": ["imu", "skeleton"],
                "batch_size": 4,
                "steps": 2,
                "batching": "random",
            }
        )
    )
    assert main(["train", "--config", str(cfg), "--device", "cpu", "--no-progress"]) == 0
    assert load_checkpoint(tmp_path / "out" / "last.pt").step == 2
    assert (
        main(["export", str(tmp_path / "m"), "--checkpoint", str(tmp_path / "out" / "last.pt")])
        == 0
    )


def test_torchrun_ddp_on_cpu(tmp_path: Path) -> None:
    """Two gloo processes launched by torchrun train one model; rank 0 alone writes."""
    gen = torch.Generator().manual_seed(0)
    leaves = {
        name: {
            "PCD": torch.randn(40, 256, 3, generator=gen) * 0.3,
            "IMU": torch.randn(40, 48, generator=gen),
            "gt_joint": torch.randn(40, 72),
            "gt": torch.zeros(40, 72),
        }
        for name in ("a", "b")
    }
    (tmp_path / "lipd.pkl").write_bytes(pickle.dumps({"eLIPD": {"1": leaves}}))
    (tmp_path / "cfg.yaml").write_text(
        yaml.safe_dump(
            {
                "source": "lipd",
                "lipd_pickle": "lipd.pkl",
                "out_dir": "out",
                "batch_size": 4,
                "modalities": ["pointcloud", "imu"],
                "steps": 2,
                "batching": "random",
                "log_every": 1,
            }
        )
    )
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "-m",
            "rt_reid",
            "train",
            "--config",
            "cfg.yaml",
            "--device",
            "cpu",
            "--no-progress",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("checkpoint:") == 1
    ckpt = load_checkpoint(tmp_path / "out" / "last.pt")
    assert ckpt.step == 2
    assert ckpt.training["world_size"] == 2
    assert len((tmp_path / "out" / "log.jsonl").read_text().splitlines()) == 2
