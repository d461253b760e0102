"""LIPD pickle loader on a small synthetic pickle with the official structure."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from despite.lipd import load_lipd
from despite.windows import DataError, WindowSpec, make_batch


def leaf(frames: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "PCD": torch.randn(frames, 256, 3, generator=gen),
        "IMU": torch.randn(frames, 48, generator=gen),
        "gt_joint": torch.randn(frames, 72, generator=gen),
        "gt": torch.randn(frames, 72, generator=gen),
    }


@pytest.fixture
def pickle_path(tmp_path: Path) -> Path:
    data = {
        "ACCAD": {"s1": {"seq1": leaf(30, 0), "short": leaf(10, 1)}},
        "eLIPD": {"923": {"seq2": leaf(26, 2)}, "924": {"seq0": leaf(40, 3)}},
    }
    path = tmp_path / "LIPD_SEQUENCES_256p.pkl"
    path.write_bytes(pickle.dumps(data))
    return path


def test_loads_sets_drops_short_sequences(pickle_path: Path) -> None:
    store = load_lipd(pickle_path, WindowSpec(), sets=["eLIPD"])
    assert len(store) == 26 + 40
    assert sorted(set(store.track.tolist())) == [0, 1]
    assert store.imu_vectors is not None
    everything = load_lipd(pickle_path, WindowSpec())
    assert len(everything) == 30 + 26 + 40  # the 10-frame sequence is dropped (< 25)
    starts = everything.window_starts(24)
    assert len(starts) == (30 - 23) + (26 - 23) + (40 - 23)  # stride-1 windows per sequence
    batch = make_batch(everything, starts[:2], WindowSpec(), ["pointcloud", "imu", "skeleton"])
    source = leaf(30, 0)
    np.testing.assert_array_equal(batch["imu"][1], source["IMU"][1:25].numpy())
    np.testing.assert_array_equal(batch["pointcloud"][0], source["PCD"][:24].numpy())
    joints = source["gt_joint"][:24].numpy().reshape(24, 24, 3)
    np.testing.assert_allclose(batch["skeleton"][0], joints - joints[:, :1], atol=1e-6)


def test_rejects_bad_pickles(pickle_path: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not in the pickle"):
        load_lipd(pickle_path, WindowSpec(), sets=["eDIP"])
    with pytest.raises(DataError, match="per-frame centred"):
        load_lipd(pickle_path, WindowSpec(centring="window"))
    bad = tmp_path / "bad.pkl"
    broken = leaf(30, 0)
    broken["IMU"] = torch.zeros(30, 12)
    bad.write_bytes(pickle.dumps({"eTC": {"s": {"q": broken}}}))
    with pytest.raises(DataError, match="eTC/s/q"):
        load_lipd(bad, WindowSpec())
    with pytest.raises(DataError, match="cannot read"):
        load_lipd(tmp_path / "missing.pkl", WindowSpec())
