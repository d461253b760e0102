"""Paper evaluation protocols, corrected (ARCHITECTURE.md): window matching, moment retrieval, HAR.

All protocols take per-window embeddings of held-out tracks (a track = one person in one scene,
the simulator's "sequence"). Matching scenes draw n *distinct* tracks with a seeded generator and
score every ordered (query -> candidate) pair in its true direction, by argmax and by Hungarian
assignment. Encoders run either from a training checkpoint (torch) or from an exported model
directory (ONNX Runtime: what the runtime ships).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from despite.windows import FrameStore, WindowSpec, make_batch, window_labels
from rt_reid.arrays import FloatArray, I64Array
from rt_reid.names import ModalityType

N_LIST = (2, 4, 8, 12, 16, 20, 24, 28, 32)
RECALL_KS = (1, 10, 20, 50)
MOMENT_TOLERANCE = 10  # frames: a retrieved window start within +-10 frames is a hit


class Embedder(Protocol):
    """Runs the sensor encoders on window batches."""

    spec: WindowSpec
    modalities: tuple[str, ...]

    def embed(self, modality: str, inputs: FloatArray) -> FloatArray:
        """Un-normalised (B, D) embeddings of one modality's input windows."""
        ...


class TorchEmbedder:
    """Embeds with a torch model in eval mode (dropout off, unlike the official scripts)."""

    def __init__(self, model: Any, spec: WindowSpec) -> None:
        self.model = model.eval()
        self.spec = spec
        self.modalities = tuple(m for m in model.modalities if m != ModalityType.TEXT)

    def embed(self, modality: str, inputs: FloatArray) -> FloatArray:
        """Forward one batch without gradients."""
        import torch

        with torch.no_grad():
            out = self.model.encoders[modality](torch.from_numpy(inputs))
        return np.asarray(out.numpy(), dtype=np.float32)


class OnnxEmbedder:
    """Embeds with the ONNX files of an exported model directory (ONNX Runtime CPU)."""

    def __init__(self, model_dir: Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        from rt_reid.runtime.manifest import load_manifest

        manifest = load_manifest(model_dir)
        self.spec = WindowSpec(
            window_frames=manifest.window_frames,
            points_per_frame=manifest.points_per_frame,
            centring=manifest.centring,
            layout=manifest.layout,
            frame_rate_hz=manifest.frame_rate_hz,
        )
        self.modalities = tuple(manifest.encoders)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.sessions = {
            m: (
                ort.InferenceSession(
                    str(manifest.encoder_path(model_dir, m)),
                    options,
                    providers=["CPUExecutionProvider"],
                ),
                spec.input.name,
            )
            for m, spec in manifest.encoders.items()
        }

    def embed(self, modality: str, inputs: FloatArray) -> FloatArray:
        """Run one session."""
        session, name = self.sessions[modality]
        return np.asarray(session.run(["embedding"], {name: inputs})[0], dtype=np.float32)


@dataclass
class Embedded:
    """L2-normalised embeddings of windows: per modality (W, D), with each window's metadata."""

    embeddings: dict[str, FloatArray]
    track: I64Array
    start_time: I64Array  # frame index of the window start inside its scene
    scene: I64Array
    labels: I64Array


def embed_windows(
    embedder: Embedder,
    store: FrameStore,
    starts: I64Array,
    *,
    batch: int = 64,
    progress: bool = True,
) -> Embedded:
    """Embed every window starting at `starts` with every modality of the embedder."""
    out: dict[str, list[FloatArray]] = {m: [] for m in embedder.modalities}
    for i in tqdm(range(0, len(starts), batch), desc="embed", disable=not progress):
        chunk = starts[i : i + batch]
        inputs = make_batch(store, chunk, embedder.spec, embedder.modalities)
        for modality, x in inputs.items():
            out[modality].append(embedder.embed(modality, x))
    embeddings = {}
    for modality, parts in out.items():
        e = np.concatenate(parts)
        embeddings[modality] = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return Embedded(
        embeddings,
        store.track[starts],
        store.time[starts],
        store.scene[starts],
        window_labels(store, starts, embedder.spec),
    )


@dataclass
class MatchingResult:
    """Per (query, candidate, n, window_size): per-scene argmax and Hungarian accuracies."""

    query: str
    candidate: str
    n: int
    window_size: int
    argmax: list[float] = field(default_factory=list)
    hungarian: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Means and standard deviations over scenes."""
        return {
            "query": self.query,
            "candidate": self.candidate,
            "n": self.n,
            "window_size": self.window_size,
            "scenes": len(self.argmax),
            "argmax": float(np.mean(self.argmax)),
            "argmax_std": float(np.std(self.argmax)),
            "hungarian": float(np.mean(self.hungarian)),
            "chance": 1.0 / self.n,
        }


def score_scene(similarity: FloatArray) -> tuple[float, float]:
    """Accuracy of row i -> column i by per-row argmax and by Hungarian assignment."""
    n = similarity.shape[0]
    argmax = float(np.mean(np.argmax(similarity, axis=1) == np.arange(n)))
    rows, cols = linear_sum_assignment(-similarity)
    hungarian = float(np.mean(cols[np.argsort(rows)] == np.arange(n)))
    return argmax, hungarian


def window_matching(
    data: Embedded,
    *,
    n_list: Sequence[int] = N_LIST,
    n_scenes: int = 1000,
    window_sizes: Sequence[int] = (1,),
    seed: int = 0,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> list[MatchingResult]:
    """Paper matching protocol with n distinct tracks per scene, seeded, every ordered pair.

    Scene s of size n uses generator seed (seed, n, window_size, s), so the same tracks and
    windows are drawn for every modality pair. Scenes whose n exceeds the tracks are skipped.
    """
    modalities = list(data.embeddings)
    ordered = list(pairs) if pairs else list(itertools.permutations(modalities, 2))
    tracks = np.unique(data.track)
    by_track = {int(t): np.flatnonzero(data.track == t) for t in tracks}
    results: list[MatchingResult] = []
    for w in window_sizes:
        for n in n_list:
            if n > len(tracks):
                continue
            stats = {p: MatchingResult(p[0], p[1], n, w) for p in ordered}
            for s in range(n_scenes):
                rng = np.random.default_rng([seed, n, w, s])
                chosen = rng.choice(tracks, n, replace=False)
                rows = []
                for t in chosen:
                    windows = by_track[int(t)]  # sorted by start; w consecutive windows
                    first = int(rng.integers(0, len(windows) - w + 1))
                    rows.append(windows[first : first + w])
                idx = np.stack(rows)  # (n, w)
                for (q, c), result in stats.items():
                    eq, ec = data.embeddings[q][idx], data.embeddings[c][idx]  # (n, w, D)
                    sim = np.einsum("iwd,jwd->ij", eq, ec) / w  # mean cosine over positions
                    a, h = score_scene(sim)
                    result.argmax.append(a)
                    result.hungarian.append(h)
            results.extend(stats.values())
    return results


def cotemporal_matching(
    data: Embedded, *, query: str, candidate: str, time_stride: int = 10
) -> dict[str, float]:
    """People of one scene at the same time (what the runtime faces): mean accuracies."""
    argmax, hungarian, chance, groups = [], [], [], 0
    for scene, time in sorted(set(zip(data.scene.tolist(), data.start_time.tolist(), strict=True))):
        if time % time_stride:
            continue
        idx = np.flatnonzero((data.scene == scene) & (data.start_time == time))
        if len(idx) < 2:
            continue
        sim = data.embeddings[query][idx] @ data.embeddings[candidate][idx].T
        a, h = score_scene(sim)
        argmax.append(a)
        hungarian.append(h)
        chance.append(1.0 / len(idx))
        groups += 1
    if not groups:
        return {"groups": 0}
    return {
        "groups": groups,
        "argmax": float(np.mean(argmax)),
        "hungarian": float(np.mean(hungarian)),
        "chance": float(np.mean(chance)),
    }


def moment_retrieval(
    data: Embedded,
    *,
    query: str,
    candidate: str,
    ks: Sequence[int] = RECALL_KS,
    tolerance: int = MOMENT_TOLERANCE,
    query_stride: int = 1,
) -> dict[str, float]:
    """Recall@k of finding a window within +-tolerance frames inside the query's own track."""
    hits = dict.fromkeys(ks, 0)
    queries = 0
    for t in np.unique(data.track):
        idx = np.flatnonzero(data.track == t)
        times = data.start_time[idx]
        sim = data.embeddings[query][idx[::query_stride]] @ data.embeddings[candidate][idx].T
        order = np.argsort(-sim, axis=1)
        near = np.abs(times[order] - times[::query_stride][:, None]) <= tolerance
        for k in ks:
            hits[k] += int(near[:, :k].any(axis=1).sum())
        queries += len(order)
    return {f"R@{k}": hits[k] / max(queries, 1) for k in ks} | {"queries": float(queries)}


def har_transfer(
    train: Embedded, test: Embedded, modality: str, *, epochs: int = 300, seed: int = 0
) -> dict[str, float]:
    """Activity recognition from frozen embeddings: 1-NN (cosine) and a linear probe."""
    import torch

    xtr, ytr = train.embeddings[modality], train.labels
    xte, yte = test.embeddings[modality], test.labels
    knn = ytr[np.argmax(xte @ xtr.T, axis=1)]
    classes = int(max(ytr.max(), yte.max())) + 1
    torch.manual_seed(seed)
    probe = torch.nn.Linear(xtr.shape[1], classes)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(xt), yt)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    with torch.no_grad():
        linear = probe(torch.from_numpy(xte)).argmax(dim=1).numpy()
    majority = float(np.mean(yte == np.bincount(ytr).argmax()))
    return {
        "knn1": float(np.mean(knn == yte)),
        "linear": float(np.mean(linear == yte)),
        "majority": majority,
        "train_windows": float(len(ytr)),
        "test_windows": float(len(yte)),
    }
