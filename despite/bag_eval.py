"""Model-alone evaluation on recorded bags: IMU→point-cloud matching of the runtime's own tracks.

The bag is replayed through the real runtime (`rt_reid.evaluation.replay.BagReplayer`: perception,
track windows, IMU buffers, ONNX encoders) with every confirmed track encoded every frame. Each
frame, the runtime's tracks are associated with `/sim/ground_truth` (Hungarian on horizontal
distance, 0.5 m gate); the tracks that hold a wearer and were encoded form one group, and each
wearer's IMU window is matched to the group's point-cloud windows (argmax per IMU and a Hungarian
assignment). This judges the encoders apart from the identity evidence that sits on top of them.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from rt_reid.arrays import F64Array
from rt_reid.config import ReidConfig
from rt_reid.errors import BagError
from rt_reid.evaluation.metrics import Frame, match_frame

GATE_M = 0.5
HISTOGRAM_BINS = np.linspace(-1.0, 1.0, 41)


@dataclass
class BagMatching:
    """Per-bag result: window counts, accuracies and true/false pair similarities."""

    bag: str
    windows: int = 0  # IMU queries scored (one per wearer per frame with a matched window)
    argmax_hits: int = 0
    hungarian_hits: int = 0
    groups: int = 0  # frames with at least two co-present encoded wearers
    frames: int = 0
    true_similarity: list[float] = field(default_factory=list)
    false_similarity: list[float] = field(default_factory=list)

    @property
    def argmax(self) -> float:
        """Share of IMU queries whose most similar co-present track is their wearer."""
        return self.argmax_hits / self.windows if self.windows else float("nan")

    @property
    def hungarian(self) -> float:
        """Share of IMU queries the frame's Hungarian assignment gives to their wearer."""
        return self.hungarian_hits / self.windows if self.windows else float("nan")

    def summary(self) -> dict[str, Any]:
        """JSON row: bag, windows, argmax, hungarian, and the similarity distributions."""
        true, false = np.asarray(self.true_similarity), np.asarray(self.false_similarity)

        def stats(values: F64Array) -> dict[str, Any]:
            if len(values) == 0:
                return {"count": 0}
            q = np.percentile(values, [5, 25, 50, 75, 95])
            histogram, _ = np.histogram(values, HISTOGRAM_BINS)
            return {
                "count": len(values),
                "mean": float(values.mean()),
                "percentiles_5_25_50_75_95": [round(float(v), 4) for v in q],
                "histogram": histogram.tolist(),
            }

        separable = float("nan")
        if len(true) and len(false):  # AUC: P(true pair scores above a false pair)
            ranks = np.searchsorted(np.sort(false), true, side="left")
            separable = float(ranks.mean() / len(false))
        return {
            "bag": self.bag,
            "windows": self.windows,
            "argmax": self.argmax,
            "hungarian": self.hungarian,
            "frames": self.frames,
            "groups": self.groups,
            "true_pairs": stats(true),
            "false_pairs": stats(false),
            "auc": separable,
            "histogram_bins": HISTOGRAM_BINS.tolist(),
        }


def score_frame(
    result: BagMatching,
    truth: Frame,
    output: Frame,
    similarity: dict[str, F64Array],
    identities: tuple[str, ...] | list[str],
    *,
    gate_m: float = GATE_M,
) -> None:
    """Add one frame: associate tracks with ground truth, then match IMUs to encoded tracks."""
    result.frames += 1
    pairs = match_frame(truth.boxes, output.boxes, gate_m=gate_m)
    column = {name: k for k, name in enumerate(identities)}
    tracks: list[str] = []
    wearers: list[int] = []
    for gt_index, out_index in pairs.items():
        identity = truth.boxes[gt_index].identity
        key = output.boxes[out_index].key
        row = similarity.get(key)
        if identity is None or identity not in column or row is None:
            continue
        if not np.isfinite(row[column[identity]]):
            continue  # not encoded this frame, or its IMU window was incomplete
        tracks.append(key)
        wearers.append(column[identity])
    if not tracks:
        return
    # similarity (tracks x wearers); a wearer whose IMU was missing is dropped with its track
    matrix = np.array([[similarity[t][w] for w in wearers] for t in tracks])
    usable = np.isfinite(matrix).all(axis=0) & np.isfinite(matrix).all(axis=1)
    matrix = matrix[np.ix_(usable, usable)]
    k = len(matrix)
    if k == 0:
        return
    result.groups += int(k >= 2)
    result.windows += k
    result.argmax_hits += int((matrix.argmax(axis=0) == np.arange(k)).sum())
    rows, cols = linear_sum_assignment(-matrix)
    result.hungarian_hits += int((rows == cols).sum())  # track i holds wearer i
    result.true_similarity.extend(np.diag(matrix).tolist())
    result.false_similarity.extend(matrix[~np.eye(k, dtype=bool)].tolist())


def evaluate_bag(
    bag: Path, *, model_dir: Path, config: ReidConfig, gate_m: float = GATE_M
) -> BagMatching:
    """Replay `bag` through the runtime and score IMU→point-cloud matching per frame."""
    from rt_reid.evaluation.replay import BagReplayer

    data = config.to_dict()
    data["inference"]["encoding_stride"] = 1  # every confirmed track every frame
    data["inference"]["max_windows_per_frame"] = 0
    data["identity"]["learned_weight"] = 1.0  # the encoders are what is judged: always run them
    full = ReidConfig.from_dict(data)
    replayer = BagReplayer(config=full, model_dir=model_dir, gate_m=gate_m)
    with tempfile.TemporaryDirectory(prefix="rt_reid_eval_") as tmp:
        replay = replayer.run(Path(bag), Path(tmp) / "out")
    if not replay.truth:
        raise BagError(f"{bag} has no /sim/ground_truth messages to evaluate against")
    truth_by_stamp = {frame.stamp_ns: frame for frame in replay.truth}
    result = BagMatching(bag=Path(bag).name)
    for output, similarity in zip(replay.outputs, replay.similarity, strict=True):
        truth = truth_by_stamp.get(output.stamp_ns)
        if truth is not None:
            score_frame(result, truth, output, similarity, replay.identities, gate_m=gate_m)
    return result
