"""Loader for the official `LIPD_SEQUENCES_256p.pkl` (set -> subject -> sequence -> fields).

Each leaf holds torch float32 tensors "PCD" (T, 256, 3) (per-frame centred, sampled), "IMU"
(T, 48) (official channel order, used as stored), "gt_joint" (T, 72) and "gt". The pickle is
trusted local data (pickle can run code: never load one from an unknown source).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from despite.encoders import SMPL_JOINTS
from despite.windows import DataError, FrameStore, WindowSpec
from rt_reid.layouts import get_layout

LIPD_SETS = ("ACCAD", "BMLmovi", "LIPD_train", "AIST", "CMU", "eLIPD", "eTC", "eDIP")
TRAIN_SETS_V1 = ("ACCAD", "BMLmovi", "LIPD_train", "AIST", "CMU")
TEST_SETS_V1 = ("eLIPD", "eTC", "eDIP")
LEAF_KEYS = ("PCD", "IMU", "gt_joint")
MIN_FRAMES = 25  # official: sequences shorter than 25 frames are dropped


def _array(value: Any, where: str) -> np.ndarray[Any, Any]:
    """Tensor or array leaf -> float32 numpy."""
    try:
        return np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: not a numeric array ({type(value).__name__})") from err


def load_lipd(
    path: Path, spec: WindowSpec, *, sets: Sequence[str] | None = None, min_frames: int = MIN_FRAMES
) -> FrameStore:
    """Frames of every sequence of `sets` (default all) in the pickle, one track per sequence."""
    if spec.layout != "lipd4" or spec.centring != "frame":
        raise DataError("LIPD gives lipd4 IMU vectors and per-frame centred clouds only")
    try:
        with Path(path).open("rb") as stream:
            data = pickle.load(stream)  # trusted local file, see module docstring
    except (OSError, pickle.UnpicklingError, EOFError) as err:
        raise DataError(f"cannot read LIPD pickle {path}: {err}") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: top level must be a dict of sets")
    chosen = list(data) if sets is None else list(sets)
    unknown = [s for s in chosen if s not in data]
    if unknown:
        raise DataError(f"{path}: sets {unknown} not in the pickle (has {list(data)})")
    channels = get_layout("lipd4").channels
    stores: list[FrameStore] = []
    for set_index, set_name in enumerate(chosen):
        for subject_index, (subject, sequences) in enumerate(data[set_name].items()):
            for sequence, leaf in sequences.items():
                where = f"{path}: {set_name}/{subject}/{sequence}"
                if not isinstance(leaf, dict) or any(k not in leaf for k in LEAF_KEYS):
                    raise DataError(f"{where}: expected fields {LEAF_KEYS}")
                points = _array(leaf["PCD"], f"{where}/PCD")
                imu = _array(leaf["IMU"], f"{where}/IMU")
                joints = _array(leaf["gt_joint"], f"{where}/gt_joint")
                t = len(points)
                if (
                    points.shape != (t, spec.points_per_frame, 3)
                    or imu.shape != (t, channels)
                    or joints.shape != (t, SMPL_JOINTS * 3)
                ):
                    raise DataError(
                        f"{where}: shapes PCD {points.shape}, IMU {imu.shape}, gt_joint "
                        f"{joints.shape} do not match ({t}, {spec.points_per_frame}, 3), "
                        f"({t}, {channels}), ({t}, {SMPL_JOINTS * 3})"
                    )
                if t < min_frames:
                    continue
                sites = channels // 12
                stores.append(
                    FrameStore(
                        points=points,
                        centroids=np.zeros((t, 3)),
                        orientation=np.tile([0.0, 0.0, 0.0, 1.0], (t, sites, 1)),
                        acceleration=np.zeros((t, sites, 3)),
                        skeleton=joints.reshape(t, SMPL_JOINTS, 3),
                        activity=np.full(t, -1, np.int64),
                        observed=np.ones(t, bool),
                        track=np.zeros(t, np.int64),  # renumbered by concat
                        scene=np.full(t, set_index, np.int64),
                        person=np.full(t, subject_index, np.int64),
                        time=np.arange(t, dtype=np.int64),
                        imu_vectors=imu,
                    )
                )
    if not stores:
        raise DataError(f"{path}: no sequence of {chosen} has >= {min_frames} frames")
    return FrameStore.concat(stores)
