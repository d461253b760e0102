"""Contrastive training loop: data from simulated scenes (cached shards) or LIPD, checkpoints,
resume, seeds, AMP on CUDA and `torchrun` DDP.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from despite.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from despite.config import TrainConfig
from despite.encoders import DespiteModel, get_preset
from despite.loss import DespiteLoss
from despite.text import activity_prompt, load_text_encoder
from despite.windows import (
    Augmentation,
    DataError,
    FrameStore,
    WindowSpec,
    make_batch,
    scene_frames,
    window_labels,
)
from rt_reid.names import ModalityType

LOG = logging.getLogger(__name__)
LAST = "last.pt"
BEST = "best.pt"  # the checkpoint with the best validation score


def validation_starts(store: FrameStore, spec: WindowSpec, stride: int) -> NDArray[np.int64]:
    """Held-out windows: perceived ones where the store has them, starting every `stride`
    frames of scene time (so people share start times), one per person and start time."""
    starts = store.window_starts(spec.window_frames)
    if store.perceived is not None and store.perceived[starts].any():
        starts = starts[store.perceived[starts]]
    starts = starts[store.time[starts] % stride == 0]
    keys = np.stack([store.scene[starts], store.time[starts], store.person[starts]], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    kept: NDArray[np.int64] = starts[np.sort(first)]
    return kept


def plot_learning_curve(out_dir: Path) -> Path | None:
    """learning_curve.png from log.jsonl (loss) and val.jsonl (validation accuracies)."""
    logs = [out_dir / "log.jsonl", out_dir / "val.jsonl"]
    if not all(p.is_file() for p in logs):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [json.loads(line) for line in logs[0].read_text("utf-8").splitlines() if line]
    val = [json.loads(line) for line in logs[1].read_text("utf-8").splitlines() if line]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([e["step"] for e in train], [e["loss"] for e in train], lw=0.8)
    left.set(xlabel="step", ylabel="training loss (sum over pairs)", title="loss")
    for key, style in (
        ("cotemporal_hungarian", "-o"), ("cotemporal_argmax", "--o"),
        ("n8_hungarian", "-s"), ("n8_argmax", "--s"),
    ):  # fmt: skip
        points = [(e["step"], 100 * e[key]) for e in val if key in e]
        if points:
            right.plot(*zip(*points, strict=True), style, ms=3, label=f"IMU→PC {key}")
    right.set(xlabel="step", ylabel="held-out accuracy (%)", ylim=(0, 100), title="validation")
    right.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "learning_curve.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scene_store(
    seed: int,
    spec: WindowSpec,
    *,
    scene_options: dict[str, Any],
    cache_dir: Path | None,
    randomize: bool = False,
    windows: str = "truth",
) -> FrameStore:
    """Frames of the simulated scene with this seed, from the shard cache or simulated now.

    `randomize` draws the scene's world from `rt_reid_sim.randomize` (`scene_options` stay
    fixed); `windows="perceived"` cuts the points by the runtime's perception
    (`despite.perceived`) and keeps each person's ground-truth-cut frames beside them.
    """
    from rt_reid_sim import SceneConfig, simulate_scene
    from rt_reid_sim.randomize import randomized_config

    options = {**scene_options, "layout": spec.layout, "seed": seed}
    tag = "_".join(f"{k}-{options[k]}" for k in sorted(options))
    tag += ("_rand" if randomize else "") + ("_perceived" if windows == "perceived" else "")
    path = None if cache_dir is None else cache_dir / f"scene_{tag}_n{spec.points_per_frame}.npz"
    if path is not None and path.is_file():
        return FrameStore.load(path, spec)
    try:
        cfg = (
            randomized_config(seed, **{k: v for k, v in options.items() if k != "seed"})
            if randomize
            else SceneConfig(**options)
        )
        scene = simulate_scene(cfg)
    except TypeError as err:
        raise DataError(f"scene options {scene_options} do not fit SceneConfig: {err}") from err
    if windows == "perceived":
        from despite.perceived import perceived_frames

        perceived, truth = perceived_frames(scene, spec, scene_index=seed)
        if truth is None:
            raise DataError(f"scene {seed} has no person with {spec.layout} wearables in view")
        parts = []
        if perceived is not None:
            perceived.perceived = np.ones(len(perceived), bool)
            parts.append(perceived)
        truth.perceived = np.zeros(len(truth), bool)
        store = FrameStore.concat([*parts, truth])
    else:
        store = scene_frames(scene, spec, scene_index=seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        store.save(path, spec)
    return store


def sim_store(
    seeds: range,
    spec: WindowSpec,
    *,
    scene_options: dict[str, Any],
    cache_dir: Path | None,
    progress: bool = True,
    randomize: bool = False,
    windows: str = "truth",
) -> FrameStore:
    """Frames of several simulated scenes (one per seed)."""
    stores = [
        scene_store(
            seed,
            spec,
            scene_options=scene_options,
            cache_dir=cache_dir,
            randomize=randomize,
            windows=windows,
        )
        for seed in tqdm(seeds, desc="scenes", disable=not progress)
    ]
    return FrameStore.concat(stores)


class WindowSampler:
    """Draws batches of window starts: uniformly, or as groups of co-temporal windows of one
    scene (the people a LiDAR sees at the same time, pairs walking in step included: the
    negatives that matter at run time).

    Co-temporal groups hold one window per person: where a store has both perceived and
    ground-truth-cut windows of a person at that time, the perceived one is taken (a random one
    of them if the person was split into several tracks) except with probability `gt_share`.
    """

    def __init__(
        self,
        store: FrameStore,
        starts: NDArray[np.int64],
        *,
        batch_size: int,
        batching: str,
        rng: np.random.Generator,
        gt_share: float = 0.0,
    ) -> None:
        if len(starts) < batch_size:
            raise DataError(f"only {len(starts)} windows for batch size {batch_size}")
        self.starts = starts
        self.batch_size = batch_size
        self.batching = batching
        self.rng = rng
        self.gt_share = gt_share
        perceived = np.zeros(len(store), bool) if store.perceived is None else store.perceived
        groups: dict[tuple[int, int], dict[int, tuple[list[int], list[int]]]] = defaultdict(dict)
        for s in starts:
            key = (int(store.scene[s]), int(store.time[s]))
            person = groups[key].setdefault(int(store.person[s]), ([], []))
            person[0 if perceived[s] else 1].append(int(s))
        self.groups = list(groups.values())

    def _pick(self, group: dict[int, tuple[list[int], list[int]]]) -> list[int]:
        """One window per person of a co-temporal group."""
        picks = []
        for seen, truth in group.values():
            use_truth = bool(truth) and (not seen or self.rng.random() < self.gt_share)
            options = truth if use_truth else seen
            picks.append(options[int(self.rng.integers(len(options)))])
        return picks

    def sample(self) -> NDArray[np.int64]:
        """One batch of distinct window starts."""
        if self.batching == "random":
            return self.rng.choice(self.starts, self.batch_size, replace=False)
        chosen: list[int] = []
        for g in self.rng.permutation(len(self.groups)):
            chosen.extend(self._pick(self.groups[g]))
            if len(chosen) >= self.batch_size:
                break
        return np.asarray(chosen[: self.batch_size], dtype=np.int64)


@dataclass
class DistContext:
    """Rank/world of this process (1 process when not launched by torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this process logs and writes checkpoints."""
        return self.rank == 0


def init_distributed(device: torch.device) -> DistContext:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size())


def pick_device(name: str) -> torch.device:
    """'auto' -> this rank's CUDA device when available, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return torch.device("cuda", local)
        return torch.device("cpu")
    return torch.device(name)


def text_table(config: TrainConfig) -> tuple[torch.Tensor, int]:
    """Frozen text embeddings of every simulated activity caption, (n_activities, dim)."""
    from rt_reid_sim import ACTIVITIES

    encoder = load_text_encoder(
        config.text_encoder,
        clip_weights=None if config.clip_weights is None else Path(config.clip_weights),
    )
    table = encoder.encode([activity_prompt(a) for a in ACTIVITIES])
    return torch.from_numpy(table), encoder.dim


class Trainer:
    """Owns model, loss, optimiser and data for one run; `run()` trains to `config.steps`."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        store: FrameStore,
        val_store: FrameStore | None = None,
        device: str = "auto",
        resume: bool = True,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.device = pick_device(device)
        self.dist = init_distributed(self.device)
        self.progress = progress and self.dist.main
        if self.device.type == "cpu":
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed + self.dist.rank)
        self.rng = np.random.default_rng(config.seed + 7919 * self.dist.rank)
        self.out_dir = Path(config.out_dir)
        self.store = store
        spec = config.window
        starts = store.window_starts(spec.window_frames, stride=config.window_stride)
        self.sampler = WindowSampler(
            store,
            starts,
            batch_size=config.batch_size,
            batching=config.batching,
            rng=self.rng,
            gt_share=config.sim.gt_share,
        )
        self.val_store = val_store
        self.val_starts = (
            None if val_store is None else validation_starts(val_store, spec, config.val_stride)
        )
        self.best: float | None = None  # best validation score so far (kept across resumes)
        self.text: torch.Tensor | None = None
        text_dim = None
        if ModalityType.TEXT in config.modalities:
            table, text_dim = text_table(config)
            self.text = table.to(self.device)
        self.model = DespiteModel(
            get_preset(config.preset),
            modalities=config.modalities,
            layout=spec.layout,
            text_dim=text_dim,
        ).to(self.device)
        self.loss = DespiteLoss(
            pairs=config.resolved_pairs(),
            temperature=config.temperature,
            learn_temperature=config.learn_temperature,
        ).to(self.device)
        params = list(self.model.parameters())
        if config.learn_temperature:
            params.append(self.loss.log_temperature)
        self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.step = 0
        if resume and (self.out_dir / LAST).is_file():
            self._resume(self.out_dir / LAST)
        self.network: torch.nn.Module = (
            DistributedDataParallel(self.model) if self.dist.world > 1 else self.model
        )
        self.augment = Augmentation() if config.augment else None

    def _resume(self, path: Path) -> None:
        """Continue from a checkpoint of the same run."""
        ckpt = load_checkpoint(path, map_location=str(self.device))
        self.model.load_state_dict(ckpt.model.state_dict())
        if ckpt.optimizer is not None:
            self.optimizer.load_state_dict(ckpt.optimizer)
        if "log_temperature" in ckpt.training:
            self.loss.log_temperature.data.fill_(float(ckpt.training["log_temperature"]))
        self.step = ckpt.step
        self.best = ckpt.training.get("best_val")
        LOG.info("resumed %s at step %d", path, self.step)

    def batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Endless stream of augmented training batches on the device."""
        spec = self.config.window
        sensors = [m for m in self.config.modalities if m != ModalityType.TEXT]
        while True:
            starts = self.sampler.sample()
            arrays = make_batch(
                self.store, starts, spec, sensors, augment=self.augment, rng=self.rng
            )
            batch = {m: torch.from_numpy(a).to(self.device) for m, a in arrays.items()}
            if self.text is not None:
                labels = torch.from_numpy(window_labels(self.store, starts, spec))
                batch["text_mask"] = (labels >= 0).to(self.device)
                batch[ModalityType.TEXT] = self.text[labels.clamp(min=0).to(self.device)]
            yield batch

    def train_step(self, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        """One optimiser step; returns the loss and its terms."""
        self.network.train()
        mask = batch.get("text_mask")
        inputs = {m: x for m, x in batch.items() if m != "text_mask"}
        autocast: AbstractContextManager[Any] = (
            torch.autocast("cuda", dtype=torch.float16) if self.use_amp else nullcontext()
        )
        with autocast:
            embeddings = self.network(inputs)
        loss, terms = self.loss({m: e.float() for m, e in embeddings.items()}, mask)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach()), terms

    def save(self, name: str = LAST) -> Path:
        """Checkpoint the run (rank 0 only)."""
        path = self.out_dir / name
        if self.dist.main:
            training = {
                "config": self.config.to_dict(),
                "device": str(self.device),
                "world_size": self.dist.world,
                "log_temperature": float(self.loss.log_temperature.detach()),
                "train_windows": len(self.sampler.starts),
                "best_val": self.best,
            }
            save_checkpoint(
                path,
                Checkpoint(
                    model=self.model,
                    spec=self.config.window,
                    epoch=0,
                    step=self.step,
                    optimizer=self.optimizer.state_dict(),
                    training=training,
                ),
            )
        return path

    def validate(self) -> dict[str, float] | None:
        """Matching accuracy on the held-out scenes; keeps best.pt, appends val.jsonl, plots.

        Score: IMU→point-cloud Hungarian accuracy among co-temporal wearers (the runtime's
        situation); also the paper protocol at n = 8 (IMU→PC, argmax and Hungarian).
        """
        if self.val_store is None or self.val_starts is None or len(self.val_starts) == 0:
            return None
        from despite.evaluate import (
            TorchEmbedder,
            cotemporal_matching,
            embed_windows,
            window_matching,
        )

        tic = time.monotonic()
        embedder = TorchEmbedder(self.model, self.config.window)
        data = embed_windows(embedder, self.val_store, self.val_starts, progress=False)
        self.model.train()
        co = cotemporal_matching(
            data, query=ModalityType.IMU, candidate=ModalityType.POINTCLOUD, time_stride=1
        )
        paper = window_matching(
            data, n_list=[8], n_scenes=300, pairs=[(ModalityType.IMU, ModalityType.POINTCLOUD)]
        )
        entry: dict[str, float] = {"step": float(self.step), "windows": float(len(data.track))}
        if co.get("groups"):
            entry |= {"cotemporal_argmax": co["argmax"], "cotemporal_hungarian": co["hungarian"]}
        if paper:
            summary = paper[0].summary()
            entry |= {"n8_argmax": summary["argmax"], "n8_hungarian": summary["hungarian"]}
        entry["seconds"] = time.monotonic() - tic
        score = entry.get("cotemporal_hungarian", entry.get("n8_hungarian"))
        if score is not None and (self.best is None or score > self.best):
            self.best = score
            self.save(BEST)
        with (self.out_dir / "val.jsonl").open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(entry) + "\n")
        LOG.info("validation at step %d: %s", self.step, entry)
        plot_learning_curve(self.out_dir)
        return entry

    def close(self) -> None:
        """Leave the torchrun process group (no-op for a single process)."""
        if self.dist.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def run(self) -> Path:
        """Train until `steps` (or the time limit), checkpointing on the way; return last.pt."""
        config = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        deadline = (
            None
            if config.time_limit_min is None
            else time.monotonic() + 60.0 * config.time_limit_min
        )
        log_path = self.out_dir / "log.jsonl"
        bar = tqdm(total=config.steps, initial=self.step, desc="train", disable=not self.progress)
        batches = self.batches()
        recent: list[float] = []
        while self.step < config.steps:
            loss, terms = self.train_step(next(batches))
            self.step += 1
            recent.append(loss)
            bar.update(1)
            if self.step % config.log_every == 0 and self.dist.main:
                mean = float(np.mean(recent))
                recent.clear()
                bar.set_postfix(loss=f"{mean:.3f}")
                entry = {"step": self.step, "loss": mean, **terms, "wall": time.time()}
                with log_path.open("a", encoding="utf-8") as stream:
                    stream.write(json.dumps(entry) + "\n")
            if config.val_every and self.step % config.val_every == 0 and self.dist.main:
                self.validate()
            if self.step % config.checkpoint_every == 0:
                self.save()
            if deadline is not None and time.monotonic() > deadline:
                LOG.info("time limit reached at step %d", self.step)
                break
        bar.close()
        return self.save()
