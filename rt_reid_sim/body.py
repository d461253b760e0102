"""Articulated bodies: SMPL-topology skeleton, per-person proportions, kinematics, surface meshes.

Body frame (as REP-103): x forward, y left, z up. The rest pose stands upright, arms hanging.
Local joint rotations are Euler angles (x, y, z) composed as Rz @ Ry @ Rx in the parent's frame, so
hip/shoulder flexion forward is a negative y angle, knee flexion a positive y angle, spine bending
forward a positive y angle, left abduction a positive x angle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rt_reid.arrays import F64Array, I64Array

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip
J = {name: index for index, name in enumerate(JOINT_NAMES)}
REFERENCE_HEIGHT = 1.75


@dataclass(frozen=True)
class BodyShape:
    """One person's proportions: rest offsets of every joint from its parent (body frame)."""

    height: float
    girth: float
    offsets: F64Array  # (24, 3), row 0 unused (the root)
    reflectivity: float  # clothing reflectivity 0..1 (LiDAR intensity)

    @property
    def heel_drop(self) -> float:
        """Height of the ankle joint above the floor in the rest pose."""
        return 0.039 * self.height

    @property
    def pelvis_height(self) -> float:
        """Pelvis height above the floor in the rest pose."""
        return (
            float(-(self.offsets[1, 2] + self.offsets[4, 2] + self.offsets[7, 2])) + self.heel_drop
        )


def spread_range(lo: float, hi: float, spread: float) -> tuple[float, float]:
    """[lo, hi] widened (spread > 1) or narrowed about its centre; exactly (lo, hi) at 1."""
    if spread == 1.0:
        return lo, hi
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * spread
    return centre - half, centre + half


def random_shape(rng: np.random.Generator, spread: float = 1.0) -> BodyShape:
    """Draw a person: height 1.50-1.95 m, limb ratios +-6 %, shoulders +-10 %, girth 0.85-1.25.

    `spread` scales every range about its centre (domain randomisation, `SceneConfig.body_spread`).
    """
    height = float(rng.uniform(*spread_range(1.50, 1.95, spread)))
    leg, arm, torso = rng.uniform(*spread_range(0.94, 1.06, spread), size=3)
    shoulder = rng.uniform(*spread_range(0.9, 1.1, spread))
    h = height
    thigh, shin = 0.245 * h * leg, 0.246 * h * leg
    offsets = np.zeros((24, 3))
    spec = {
        "left_hip": (0, 0.051, -0.035), "right_hip": (0, -0.051, -0.035),
        "spine1": (-0.005, 0, 0.06), "spine2": (0, 0, 0.075 * torso), "spine3": (0, 0, 0.03),
        "left_foot": (0.075, 0, -0.03), "right_foot": (0.075, 0, -0.03),
        "neck": (0, 0, 0.12 * torso), "left_collar": (0, 0.04 * shoulder, 0.09 * torso),
        "right_collar": (0, -0.04 * shoulder, 0.09 * torso), "head": (0.01, 0, 0.05),
        "left_shoulder": (0, 0.07 * shoulder, 0), "right_shoulder": (0, -0.07 * shoulder, 0),
        "left_elbow": (0, 0, -0.17 * arm), "right_elbow": (0, 0, -0.17 * arm),
        "left_wrist": (0, 0, -0.145 * arm), "right_wrist": (0, 0, -0.145 * arm),
        "left_hand": (0, 0, -0.05 * arm), "right_hand": (0, 0, -0.05 * arm),
    }  # fmt: skip
    for name, value in spec.items():
        offsets[J[name]] = np.asarray(value) * h
    offsets[J["left_knee"]] = offsets[J["right_knee"]] = (0, 0, -thigh)
    offsets[J["left_ankle"]] = offsets[J["right_ankle"]] = (0, 0, -shin)
    girth = float(rng.uniform(*spread_range(0.85, 1.25, spread)))
    return BodyShape(height, girth, offsets, float(rng.uniform(0.1, 0.6)))


def euler_matrices(angles: F64Array) -> F64Array:
    """Rotation matrices (..., 3, 3) = Rz(az) @ Ry(ay) @ Rx(ax) from angles (..., 3)."""
    cx, cy, cz = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
    sx, sy, sz = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
    out = np.empty((*angles.shape[:-1], 3, 3))
    out[..., 0, 0] = cz * cy
    out[..., 0, 1] = cz * sy * sx - sz * cx
    out[..., 0, 2] = cz * sy * cx + sz * sx
    out[..., 1, 0] = sz * cy
    out[..., 1, 1] = sz * sy * sx + cz * cx
    out[..., 1, 2] = sz * sy * cx - cz * sx
    out[..., 2, 0] = -sy
    out[..., 2, 1] = cy * sx
    out[..., 2, 2] = cy * cx
    return out


def with_ancestors(joints: set[int]) -> tuple[int, ...]:
    """The joints plus all their ancestors, in kinematic (parent before child) order."""
    needed = set()
    for start in joints:
        joint = start
        while joint >= 0:
            needed.add(joint)
            joint = PARENTS[joint]
    return tuple(sorted(needed))


def forward_kinematics(
    offsets: F64Array,
    root_rotation: F64Array,
    local: F64Array,
    joints: tuple[int, ...] = tuple(range(24)),
) -> tuple[F64Array, F64Array]:
    """Global joint rotations (N, 24, 3, 3) and positions (N, 24, 3) with the root at the origin.

    `root_rotation` (N, 3, 3) is the pelvis orientation; `local` (N, 24, 3, 3) the joint rotations
    relative to their parents (row 0 is applied after `root_rotation`). Only `joints` (closed under
    ancestors, in kinematic order) are computed; the others stay zero.
    """
    n = local.shape[0]
    rotations = np.zeros((n, 24, 3, 3))
    positions = np.zeros((n, 24, 3))
    rotations[:, 0] = root_rotation @ local[:, 0]
    for joint in joints[1:]:
        parent = PARENTS[joint]
        rotations[:, joint] = rotations[:, parent] @ local[:, joint]
        positions[:, joint] = positions[:, parent] + rotations[:, parent] @ offsets[joint]
    return rotations, positions


def _capsule(
    start: F64Array,
    end: F64Array,
    radius_u: float,
    radius_v: float,
    *,
    around: int = 8,
    cap_rings: int = 2,
) -> tuple[F64Array, I64Array]:
    """Triangle mesh of an elliptic capsule from `start` to `end` (u: forward-ish, v: sideways)."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    axis = axis / length if length > 1e-9 else np.array([0.0, 0.0, 1.0])
    preferred = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    u = preferred - axis * float(axis @ preferred)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    cap = min(radius_u, radius_v)
    phis = np.concatenate(
        [
            np.linspace(-np.pi / 2, 0, cap_rings + 1)[1:],
            np.linspace(0, np.pi / 2, cap_rings + 1)[:-1],
        ]
    )
    thetas = np.linspace(0, 2 * np.pi, around, endpoint=False)
    ring_u = np.cos(thetas)[:, None] * u * radius_u
    ring_v = np.sin(thetas)[:, None] * v * radius_v
    rings = []
    for k, phi in enumerate(phis):
        centre = (start if k < cap_rings else end) + axis * cap * np.sin(phi)
        rings.append(centre + np.cos(phi) * (ring_u + ring_v))
    vertices = np.concatenate([[start - axis * cap], *rings, [end + axis * cap]])
    last = len(vertices) - 1
    triangles: list[tuple[int, int, int]] = []
    for i in range(around):
        j = (i + 1) % around
        triangles.append((0, 1 + j, 1 + i))
        for ring in range(len(phis) - 1):
            a, b = 1 + ring * around, 1 + (ring + 1) * around
            triangles += [(a + i, a + j, b + i), (a + j, b + j, b + i)]
        top = 1 + (len(phis) - 1) * around
        triangles.append((top + i, top + j, last))
    return vertices, np.asarray(triangles, dtype=np.int64)


@dataclass(frozen=True)
class BodyMesh:
    """Template surface of one person: vertices in their joint's frame, posed rigidly."""

    vertices: F64Array  # (V, 3) in the frame of joint `joint_index[v]`
    joint_index: I64Array  # (V,)
    triangles: I64Array  # (F, 3)

    def pose(self, rotations: F64Array, positions: F64Array) -> F64Array:
        """World vertices (V, 3) for global joint rotations (24, 3, 3) and positions (24, 3)."""
        rot = rotations[self.joint_index]
        posed: F64Array = np.einsum("vij,vj->vi", rot, self.vertices) + positions[self.joint_index]
        return posed


def body_mesh(shape: BodyShape) -> BodyMesh:
    """Capsules per segment (torso, head, limbs, hands, feet) sized by height and girth."""
    s, g, off = shape.height / REFERENCE_HEIGHT, shape.girth, shape.offsets
    zero = np.zeros(3)
    up = np.array([0.0, 0.0, 1.0])
    pieces: list[tuple[str, F64Array, F64Array, float, float]] = [
        ("pelvis", off[1] + 0.02 * up, off[2] + 0.02 * up, 0.10 * g * s, 0.10 * g * s),
        ("spine1", -0.02 * up * s, off[6], 0.10 * g * s, 0.15 * g * s),
        ("spine2", zero, off[9] + 0.07 * up * s, 0.11 * g * s, 0.16 * g * s),
        ("spine3", np.array([-0.01, 0.12, 0.08]) * s, np.array([-0.01, -0.12, 0.08]) * s,
         0.08 * g * s, 0.07 * g * s),
        ("neck", zero, off[15], 0.05 * g * s, 0.05 * g * s),
        ("head", np.array([0.01, 0.0, 0.02]) * s, np.array([0.01, 0.0, 0.08]) * s,
         0.09 * s, 0.075 * s),
    ]  # fmt: skip
    for side in ("left", "right"):
        pieces += [
            (f"{side}_shoulder", zero, off[J[f"{side}_elbow"]], 0.05 * g * s, 0.05 * g * s),
            (f"{side}_elbow", zero, off[J[f"{side}_wrist"]], 0.04 * g * s, 0.04 * g * s),
            (f"{side}_wrist", zero, off[J[f"{side}_hand"]] * 1.6, 0.045 * s, 0.022 * s),
            (f"{side}_hip", zero, off[J[f"{side}_knee"]], 0.08 * g * s, 0.08 * g * s),
            (f"{side}_knee", zero, off[J[f"{side}_ankle"]], 0.055 * g * s, 0.055 * g * s),
            (f"{side}_ankle", np.array([-0.04, 0.0, -0.025]) * s,
             np.array([0.15, 0.0, -0.03]) * s, 0.035 * s, 0.045 * s),
        ]  # fmt: skip
    vertices, joints, triangles = [], [], []
    count = 0
    for name, start, end, radius_u, radius_v in pieces:
        verts, tris = _capsule(np.asarray(start, float), np.asarray(end, float), radius_u, radius_v)
        vertices.append(verts)
        joints.append(np.full(len(verts), J[name], dtype=np.int64))
        triangles.append(tris + count)
        count += len(verts)
    return BodyMesh(np.concatenate(vertices), np.concatenate(joints), np.concatenate(triangles))
