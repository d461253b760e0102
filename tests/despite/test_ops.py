"""PointNet++ ops against brute-force transcriptions of the CUDA kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from despite.ops import ball_query, furthest_point_sample, gather_points, group_points


def fps_reference(xyz: np.ndarray, m: int) -> list[int]:
    """furthest_point_sampling_kernel, one thread: start 0, skip |p|^2 <= 1e-3, strict >."""
    n = len(xyz)
    temp = np.full(n, 1e10, dtype=np.float32)
    idxs, old = [0], 0
    for _ in range(1, m):
        best, besti = -1.0, 0
        for k in range(n):
            x2 = xyz[k]
            if float(x2[0] * x2[0] + x2[1] * x2[1] + x2[2] * x2[2]) <= 1e-3:
                continue
            d = float(((x2 - xyz[old]) ** 2).sum())
            d2 = min(d, float(temp[k]))
            temp[k] = d2
            if d2 > best:
                best, besti = d2, k
        old = besti
        idxs.append(old)
    return idxs


def ball_query_reference(radius: float, k: int, xyz: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """query_ball_point_kernel: first k hits in index order, padded with the first hit, else 0."""
    out = np.zeros((len(centres), k), dtype=np.int64)
    for j, c in enumerate(centres):
        cnt = 0
        for i, p in enumerate(xyz):
            if cnt >= k:
                break
            if float(((c - p) ** 2).sum()) < radius * radius:
                if cnt == 0:
                    out[j, :] = i
                out[j, cnt] = i
                cnt += 1
    return out


def clouds(seed: int, b: int = 3, n: int = 64) -> torch.Tensor:
    """Random clouds with duplicates and points at/near the origin."""
    gen = torch.Generator().manual_seed(seed)
    xyz = torch.rand(b, n, 3, generator=gen) * 2 - 1
    xyz[0, 0] = 0.0  # start point exactly at the origin
    xyz[1, 5:9] = torch.tensor([0.01, 0.01, 0.01])  # inside the 1e-3 exclusion ball
    xyz[2, 10:20] = xyz[2, 0:10]  # tiled duplicates as official preprocessing makes
    return xyz


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fps_matches_cuda_semantics(seed: int) -> None:
    xyz = clouds(seed)
    got = furthest_point_sample(xyz, 16)
    for b in range(xyz.shape[0]):
        assert got[b].tolist() == fps_reference(xyz[b].numpy(), 16)
    # near-origin points are never chosen after the start
    picked = gather_points(xyz, got)[:, 1:]
    assert bool(((picked**2).sum(-1) > 1e-3).all())


def test_fps_all_points_near_origin_gives_index_zero() -> None:
    xyz = torch.full((1, 10, 3), 0.001)
    assert furthest_point_sample(xyz, 4).tolist() == [[0, 0, 0, 0]]
    assert fps_reference(xyz[0].numpy(), 4) == [0, 0, 0, 0]


def test_fps_fewer_points_than_samples_repeats() -> None:
    xyz = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]])
    got = furthest_point_sample(xyz, 5)[0].tolist()
    assert got == fps_reference(xyz[0].numpy(), 5)
    assert sorted(set(got)) == [0, 1, 2]


@pytest.mark.parametrize(("seed", "radius"), [(0, 0.3), (1, 0.5), (2, 0.15)])
def test_ball_query_matches_cuda_semantics(seed: int, radius: float) -> None:
    xyz = clouds(seed)
    centres = torch.cat([xyz[:, :4], torch.full((3, 2, 3), 5.0)], dim=1)  # 2 empty balls
    got = ball_query(radius, 8, xyz, centres)
    for b in range(xyz.shape[0]):
        want = ball_query_reference(radius, 8, xyz[b].numpy(), centres[b].numpy())
        np.testing.assert_array_equal(got[b].numpy(), want)
    assert bool((got[:, 4:] == 0).all())  # empty balls stay zero


def test_ball_query_fewer_than_k_hits_pads_with_first() -> None:
    xyz = torch.tensor([[[9.0, 9, 9], [0.1, 0, 0], [5.0, 5, 5], [0.0, 0.1, 0], [7.0, 7, 7]]])
    got = ball_query(0.3, 4, xyz, torch.zeros(1, 1, 3))
    assert got.tolist() == [[[1, 3, 1, 1]]]
    # the radius test is strict: a point exactly on the sphere is out
    on_sphere = torch.tensor([[[0.5, 0.0, 0.0]] * 4])
    assert ball_query(0.5, 2, on_sphere, torch.zeros(1, 1, 3)).tolist() == [[[0, 0]]]


def test_group_points_gathers_per_neighbour() -> None:
    xyz = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)
    idx = torch.tensor([[[0, 5], [2, 2]], [[1, 0], [4, 3]]])
    got = group_points(xyz, idx)
    for b in range(2):
        for m in range(2):
            for k in range(2):
                assert torch.equal(got[b, m, k], xyz[b, idx[b, m, k]])
