"""PointNet++ grouping ops with the exact semantics of PST-Transformer's CUDA kernels.

Written with static shapes only (unrolled loops, argmax, top-k, gather), so they run on CPU and
export to ONNX / TensorRT, while selecting the same points as `pointnet2._ext` does.
"""

from __future__ import annotations

import torch
from torch import Tensor

NEAR_ORIGIN_SQ = 1e-3  # CUDA FPS never picks points with x^2 + y^2 + z^2 <= 1e-3 after the first
UNSET_DISTANCE = 1e10  # CUDA FPS initial per-point minimum distance


def furthest_point_sample(xyz: Tensor, m: int) -> Tensor:
    """Indices (B, m) of farthest point sampling on xyz (B, N, 3), as the CUDA kernel does.

    Starts at index 0; points within sqrt(1e-3) of the origin are never candidates; when no
    candidate is left (all near the origin) index 0 is taken. Ties go to the lowest index.
    """
    batch = xyz.shape[0]
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]  # per-coordinate: no (B, N, 3) broadcasts
    valid = (x * x + y * y + z * z) > NEAR_ORIGIN_SQ
    dist = torch.full_like(x, UNSET_DISTANCE)
    last = xyz[:, 0, :]
    picked = [torch.zeros(batch, dtype=torch.int64, device=xyz.device)]
    for _ in range(m - 1):
        dx, dy, dz = x - last[:, 0:1], y - last[:, 1:2], z - last[:, 2:3]
        dist = torch.minimum(dist, dx * dx + dy * dy + dz * dz)
        nxt = torch.argmax(torch.where(valid, dist, -1.0), dim=-1)
        picked.append(nxt)
        last = gather_points(xyz, nxt[:, None])[:, 0, :]
    return torch.stack(picked, dim=1)


def gather_points(xyz: Tensor, idx: Tensor) -> Tensor:
    """Points (B, m, C) at indices idx (B, m) of xyz (B, N, C)."""
    return torch.gather(xyz, 1, idx[..., None].expand(-1, -1, xyz.shape[-1]))


def ball_query(radius: float, nsample: int, xyz: Tensor, centres: Tensor) -> Tensor:
    """Indices (B, m, k) of the first k points (index order) with squared distance < radius^2.

    Unfilled slots repeat the first hit; a centre without any hit gets index 0 in every slot
    (the CUDA kernel's zero-initialised output). Needs N >= k.
    """
    n = xyz.shape[1]
    # (c - p)^2 summed x + y + z in the kernel's order, per coordinate (cheap 2-D broadcasts)
    d2 = (centres[:, :, None, 0] - xyz[:, None, :, 0]) ** 2
    d2 = d2 + (centres[:, :, None, 1] - xyz[:, None, :, 1]) ** 2
    d2 = d2 + (centres[:, :, None, 2] - xyz[:, None, :, 2]) ** 2  # (B, m, N)
    order = torch.arange(n, device=xyz.device, dtype=xyz.dtype)
    key = torch.where(d2 < radius * radius, order, float(n))
    first = torch.topk(key, nsample, dim=-1, largest=False, sorted=True).values
    first = torch.where(first >= n, first[..., :1], first)
    first = torch.where(first >= n, 0.0, first)
    return first.to(torch.int64)


def group_points(xyz: Tensor, idx: Tensor) -> Tensor:
    """Grouped points (B, m, k, C) of xyz (B, N, C) at neighbour indices idx (B, m, k)."""
    batch, m, k = idx.shape
    flat = gather_points(xyz, idx.reshape(batch, m * k))
    return flat.reshape(batch, m, k, xyz.shape[-1])
