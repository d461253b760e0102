"""Procedural motion library: activities as analytic functions of time, blended smoothly.

A person's motion is a timeline of activity segments (from the planner) plus smooth root splines
(x, y, yaw, gait phase). Joint angles are the person's idle posture plus the weighted sum of the
active segments' offsets; weights are quintic smoothsteps that sum to one, so poses are smooth in
time and IMU derivatives can be taken by fine finite differences. Feet stay on the floor: the pelvis
height comes from a soft minimum over heel and toe heights, and planted activities cancel foot slip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline

from rt_reid.arrays import F64Array
from rt_reid_sim.body import (
    BodyShape,
    J,
    euler_matrices,
    forward_kinematics,
    spread_range,
    with_ancestors,
)

ACTIVITIES: tuple[str, ...] = (
    "stand", "walk", "jog", "wave_one_arm", "wave_both_arms", "talk_gesture", "squat", "lunge",
    "reach_up", "jump", "turn_in_place", "sit_down", "sitting", "stand_up", "bend_pick_up",
)  # fmt: skip
ACTIVITY_INDEX = {name: index for index, name in enumerate(ACTIVITIES)}
LOCOMOTION = ("walk", "jog")
JOG_SPEED_FACTOR = 1.7  # jogging speed relative to the person's walking speed
# Segment kinds are activity names, except "sit" which is labelled sit_down / sitting / stand_up.
SIT_TRANSITION_S = 1.5
BLEND_S = 0.6
FOOT_SOFTMIN_M = 0.005
FEET = {J["left_foot"], J["right_foot"]}


def smoother(x: F64Array) -> F64Array:
    """Quintic smoothstep 6x^5 - 15x^4 + 10x^3 on [0, 1], clamped outside (C2)."""
    x = np.clip(x, 0.0, 1.0)
    result: F64Array = x * x * x * (x * (6.0 * x - 15.0) + 10.0)
    return result


def bump(u: F64Array, start: float, end: float) -> F64Array:
    """sin^2 pulse that is 0 outside [start, end] and 1 in its middle (C1)."""
    x = np.clip((u - start) / (end - start), 0.0, 1.0)
    result: F64Array = np.sin(np.pi * x) ** 2
    return result


@dataclass(frozen=True)
class Style:
    """Per-person motion style: what makes one person's walk and gestures differ from another's."""

    gait_freq: float  # walking gait cycles per second
    jog_freq: float
    walk_speed: float  # m/s
    hip_amp: float
    knee_amp: float
    arm_amp: float
    elbow_bend: float
    arm_abduction: float
    lean: float
    head_pitch: float
    twist: float
    tempo: float  # speed factor for repetitive activities
    sway_amp: float
    freqs: F64Array  # (6,) idle and gesture frequencies in Hz
    phases: F64Array  # (8,) phases in rad


def random_style(rng: np.random.Generator, shape: BodyShape, spread: float = 1.0) -> Style:
    """Draw a style; walking speed follows gait frequency and leg length like real gait.

    `spread` scales every range about its centre (cadence, stride, speed limits, arm swing,
    tempo, idle sway: domain randomisation, `SceneConfig.motion_spread`).
    """

    def draw(lo: float, hi: float) -> float:
        return float(rng.uniform(*spread_range(lo, hi, spread)))

    gait_freq = draw(0.82, 1.05)
    leg = float(-(shape.offsets[J["left_knee"], 2] + shape.offsets[J["left_ankle"], 2]))
    stride = leg * draw(1.45, 1.75)
    walk_speed = float(np.clip(gait_freq * stride, *spread_range(0.9, 1.6, spread)))
    # The stance leg sweeps from +A to -A in half a gait cycle while the body moves one step
    # (v / 2f), so 2 L sin(A) = v / (2f) keeps the planted foot from skating on average.
    hip_to_floor = leg + shape.heel_drop
    hip_amp = float(np.arcsin(min(0.6, walk_speed / (4 * gait_freq * hip_to_floor))))
    return Style(
        gait_freq=gait_freq,
        jog_freq=draw(1.3, 1.55),
        walk_speed=walk_speed,
        hip_amp=hip_amp * draw(0.95, 1.05),
        knee_amp=draw(0.85, 1.15),
        arm_amp=max(0.0, draw(0.12, 0.6)),
        elbow_bend=max(0.0, draw(0.05, 0.5)),
        arm_abduction=max(0.0, draw(0.04, 0.16)),
        lean=draw(-0.04, 0.12),
        head_pitch=draw(-0.1, 0.15),
        twist=max(0.0, draw(0.03, 0.1)),
        tempo=draw(0.8, 1.25),
        sway_amp=max(0.0, draw(0.006, 0.02)),
        freqs=rng.uniform(0.12, 1.2, size=6),
        phases=rng.uniform(0.0, 2 * np.pi, size=8),
    )


@dataclass(frozen=True)
class Segment:
    """One activity from `start` to `end` (s) with its parameters (drawn by the planner)."""

    kind: str
    start: float
    end: float
    params: dict[str, float] = field(default_factory=dict)

    def labels(self, t: F64Array) -> NDArray[np.int64]:
        """Activity index per time (sit segments split into sit_down / sitting / stand_up)."""
        if self.kind != "sit":
            return np.full(t.shape, ACTIVITY_INDEX[self.kind], dtype=np.int64)
        tau = t - self.start
        labels = np.full(t.shape, ACTIVITY_INDEX["sitting"], dtype=np.int64)
        labels[tau < SIT_TRANSITION_S] = ACTIVITY_INDEX["sit_down"]
        labels[tau > (self.end - self.start) - SIT_TRANSITION_S] = ACTIVITY_INDEX["stand_up"]
        return labels


@dataclass
class Pose:
    """Joint-angle offsets (n, 24, 3), extra pelvis lift (n,) for one activity at n times."""

    angles: F64Array
    lift: F64Array

    @classmethod
    def zeros(cls, n: int) -> Pose:
        """Neutral offsets."""
        return cls(np.zeros((n, 24, 3)), np.zeros(n))


def _idle(t: F64Array, style: Style) -> Pose:
    """Base posture: arms hanging, lean, breathing, weight shifts, looking around."""
    pose = Pose.zeros(len(t))
    a, f, p = pose.angles, style.freqs, style.phases
    a[:, J["spine1"], 1] = style.lean
    a[:, J["spine2"], 1] = 0.015 * np.sin(2 * np.pi * 0.25 * t + p[0])
    a[:, J["head"], 1] = style.head_pitch + 0.05 * np.sin(2 * np.pi * 0.5 * f[0] * t + p[1])
    a[:, J["neck"], 2] = 0.25 * np.sin(2 * np.pi * 0.15 * f[1] * t + p[2])
    a[:, J["pelvis"], 0] = 0.025 * np.sin(2 * np.pi * 0.3 * f[2] * t + p[3])
    a[:, J["left_hip"], 0] = -a[:, J["pelvis"], 0]
    a[:, J["right_hip"], 0] = -a[:, J["pelvis"], 0]
    a[:, J["left_shoulder"], 0] = style.arm_abduction
    a[:, J["right_shoulder"], 0] = -style.arm_abduction
    a[:, J["left_elbow"], 1] = -style.elbow_bend * 0.5
    a[:, J["right_elbow"], 1] = -style.elbow_bend * 0.5
    return pose


def _gait(phase: F64Array, style: Style, jog: float, amplitude: F64Array) -> Pose:
    """Walking or jogging cycle at gait phase `phase` (left leg swings forward for sin > 0)."""
    pose = Pose.zeros(len(phase))
    a = pose.angles
    hip = style.hip_amp * (1 + 0.2 * jog)
    knee = style.knee_amp * (1 + 0.35 * jog)
    arm = style.arm_amp * (1 + 0.4 * jog)
    for side, shift in (("left", 0.0), ("right", np.pi)):
        ph = phase + shift
        swing = ((1 + np.cos(ph)) / 2) ** 3
        a[:, J[f"{side}_hip"], 1] = -hip * np.sin(ph)
        a[:, J[f"{side}_knee"], 1] = 0.08 + knee * swing + 0.15 * jog
        a[:, J[f"{side}_ankle"], 1] = -0.15 * swing + 0.12 * np.sin(ph - 1.0)
        a[:, J[f"{side}_shoulder"], 1] = arm * np.sin(ph)
        a[:, J[f"{side}_elbow"], 1] = -(0.15 + 1.1 * jog + 0.1 * arm * (1 - np.sin(ph)))
    a[:, J["pelvis"], 2] = -style.twist * np.sin(phase)
    a[:, J["spine3"], 2] = 0.8 * style.twist * np.sin(phase)
    a[:, J["spine1"], 1] = 0.14 * jog
    pose.angles = a * amplitude[:, None, None]
    pose.lift = 0.035 * jog * np.maximum(0.0, -np.cos(2 * phase)) ** 2 * amplitude
    return pose


def _wave_one_arm(tau: F64Array, seg: Segment, _style: Style) -> Pose:
    """One arm raised sideways, waving from shoulder and elbow."""
    pose = Pose.zeros(len(tau))
    a, s = pose.angles, (1.0 if seg.params["side"] > 0 else -1.0)
    side = "left" if s > 0 else "right"
    w = 2 * np.pi * seg.params["freq"] * tau
    a[:, J[f"{side}_shoulder"], 0] = s * (2.3 + 0.25 * np.sin(w))
    a[:, J[f"{side}_shoulder"], 1] = -0.3
    a[:, J[f"{side}_elbow"], 1] = -(0.5 + 0.35 * np.sin(w + 0.6))
    a[:, J["head"], 2] = 0.1 * s
    return pose


def _wave_both_arms(tau: F64Array, seg: Segment, _style: Style) -> Pose:
    """Both arms overhead, waving in or out of phase."""
    pose = Pose.zeros(len(tau))
    a = pose.angles
    w = 2 * np.pi * seg.params["freq"] * tau
    a[:, J["left_shoulder"], 0] = 2.5 + 0.4 * np.sin(w)
    a[:, J["right_shoulder"], 0] = -(2.5 + 0.4 * np.sin(w + seg.params["offset"]))
    a[:, J["left_elbow"], 1] = a[:, J["right_elbow"], 1] = -0.2
    return pose


def _talk_gesture(tau: F64Array, _seg: Segment, style: Style) -> Pose:
    """Forearms up, gesturing at the person's own frequencies, nodding."""
    pose = Pose.zeros(len(tau))
    a, f, p = pose.angles, style.freqs * style.tempo + 0.3, style.phases
    for k, side, s in ((0, "left", 1.0), (1, "right", -1.0)):
        a[:, J[f"{side}_elbow"], 1] = -(1.1 + 0.35 * np.sin(2 * np.pi * f[2 + k] * tau + p[4 + k]))
        a[:, J[f"{side}_shoulder"], 1] = -(0.25 + 0.15 * np.sin(2 * np.pi * f[4] * tau + p[k]))
        a[:, J[f"{side}_shoulder"], 2] = s * 0.3 * np.sin(2 * np.pi * f[5 - k] * tau + p[6 + k])
        a[:, J[f"{side}_shoulder"], 0] = s * 0.1
    a[:, J["head"], 1] = 0.08 * np.sin(2 * np.pi * 1.1 * tau + p[7])
    a[:, J["spine3"], 2] = 0.1 * np.sin(2 * np.pi * 0.3 * tau + p[3])
    return pose


def _flat_feet(a: F64Array) -> None:
    """Set ankle pitch so both feet stay flat given pelvis, hip and knee pitch."""
    for side in ("left", "right"):
        a[:, J[f"{side}_ankle"], 1] = -(
            a[:, J["pelvis"], 1] + a[:, J[f"{side}_hip"], 1] + a[:, J[f"{side}_knee"], 1]
        )


def _squat(tau: F64Array, seg: Segment, _style: Style) -> Pose:
    """Repeated squats, feet flat, arms forward for balance."""
    pose = Pose.zeros(len(tau))
    a = pose.angles
    d = seg.params["depth"] * (0.5 - 0.5 * np.cos(2 * np.pi * tau / seg.params["period"]))
    for side in ("left", "right"):
        a[:, J[f"{side}_hip"], 1] = -1.7 * d
        a[:, J[f"{side}_knee"], 1] = 2.0 * d
        a[:, J[f"{side}_shoulder"], 1] = -1.3 * d
    a[:, J["spine1"], 1] = 0.5 * d
    _flat_feet(a)
    return pose


def _lunge(tau: F64Array, seg: Segment, _style: Style) -> Pose:
    """Alternating forward lunges."""
    pose = Pose.zeros(len(tau))
    a, period = pose.angles, seg.params["period"]
    d = np.sin(np.pi * tau / period) ** 2
    lead_left = (np.floor(tau / period) % 2) == 0
    for side, front in (("left", lead_left), ("right", ~lead_left)):
        a[:, J[f"{side}_hip"], 1] = np.where(front, -1.2 * d, 0.35 * d)
        a[:, J[f"{side}_knee"], 1] = 1.35 * d
        a[:, J[f"{side}_ankle"], 1] = np.where(front, -0.15 * d, 0.6 * d)
    a[:, J["left_elbow"], 1] = a[:, J["right_elbow"], 1] = -0.4 * d
    return pose


def _reach_up(tau: F64Array, seg: Segment, _style: Style) -> Pose:
    """Reaching up with one or both arms, heels rising."""
    pose = Pose.zeros(len(tau))
    a = pose.angles
    d = np.sin(np.pi * tau / seg.params["period"]) ** 2
    sides = (
        ("left", "right")
        if seg.params["side"] == 0
        else (("left",) if seg.params["side"] > 0 else ("right",))
    )
    for side in sides:
        a[:, J[f"{side}_shoulder"], 1] = -2.9 * d
        a[:, J[f"{side}_elbow"], 1] = -0.1 * d
    for side in ("left", "right"):
        a[:, J[f"{side}_ankle"], 1] = 0.35 * d
    a[:, J["spine1"], 1] = -0.1 * d
    a[:, J["head"], 1] = -0.3 * d
    return pose


def _jump(tau: F64Array, seg: Segment, _style: Style) -> Pose:
    """Repeated jumps: crouch, arm swing, flight of the given height."""
    pose = Pose.zeros(len(tau))
    a = pose.angles
    u = np.mod(tau / seg.params["period"], 1.0)
    crouch = 0.6 * bump(u, 0.0, 0.45)
    flight = bump(u, 0.45, 0.8)
    for side in ("left", "right"):
        a[:, J[f"{side}_hip"], 1] = -1.2 * crouch
        a[:, J[f"{side}_knee"], 1] = 1.6 * crouch
        a[:, J[f"{side}_shoulder"], 1] = 0.7 * crouch - 1.6 * flight
    _flat_feet(a)
    for side in ("left", "right"):
        a[:, J[f"{side}_ankle"], 1] += 0.45 * flight
    a[:, J["spine1"], 1] = 0.4 * crouch
    pose.lift = seg.params["height"] * flight
    return pose


def _turn_in_place(tau: F64Array, _seg: Segment, style: Style) -> Pose:
    """Small stepping while the planner turns the body."""
    return _gait(2 * np.pi * 1.6 * tau, style, 0.0, np.full(len(tau), 0.3))


def _sit(tau: F64Array, seg: Segment, style: Style) -> Pose:
    """Sit down, sit with small gestures, stand up (transitions of 1.5 s)."""
    pose = Pose.zeros(len(tau))
    a, duration = pose.angles, seg.end - seg.start
    s = smoother(tau / SIT_TRANSITION_S) * smoother((duration - tau) / SIT_TRANSITION_S)
    rise = bump(tau, 0.0, SIT_TRANSITION_S) + bump(tau, duration - SIT_TRANSITION_S, duration)
    for side in ("left", "right"):
        a[:, J[f"{side}_hip"], 1] = -1.55 * s
        a[:, J[f"{side}_knee"], 1] = 1.55 * s
        a[:, J[f"{side}_shoulder"], 1] = -0.45 * s - 0.4 * rise
        a[:, J[f"{side}_elbow"], 1] = -0.8 * s
    a[:, J["spine1"], 1] = 0.45 * rise - 0.05 * s
    _flat_feet(a)
    gesture = _talk_gesture(tau, seg, style).angles
    a[:, J["left_elbow"] :, :] += 0.4 * s[:, None, None] * gesture[:, J["left_elbow"] :, :]
    return pose


def _bend_pick_up(tau: F64Array, seg: Segment, _style: Style) -> Pose:
    """Bending forward to pick something up, knees slightly bent."""
    pose = Pose.zeros(len(tau))
    a = pose.angles
    d = np.sin(np.pi * tau / seg.params["period"]) ** 2
    a[:, J["spine1"], 1], a[:, J["spine2"], 1], a[:, J["spine3"], 1] = 0.5 * d, 0.35 * d, 0.25 * d
    for side in ("left", "right"):
        a[:, J[f"{side}_hip"], 1] = -0.7 * d
        a[:, J[f"{side}_knee"], 1] = 0.6 * d
        a[:, J[f"{side}_shoulder"], 1] = -0.6 * d
    a[:, J["head"], 1] = -0.4 * d
    _flat_feet(a)
    return pose


def _stand(tau: F64Array, _seg: Segment, _style: Style) -> Pose:
    """Idle standing: the base posture only."""
    return Pose.zeros(len(tau))


ActivityFn = Callable[[F64Array, Segment, Style], Pose]
STATIONARY: dict[str, ActivityFn] = {
    "stand": _stand, "wave_one_arm": _wave_one_arm, "wave_both_arms": _wave_both_arms,
    "talk_gesture": _talk_gesture, "squat": _squat, "lunge": _lunge, "reach_up": _reach_up,
    "jump": _jump, "turn_in_place": _turn_in_place, "sit": _sit, "bend_pick_up": _bend_pick_up,
}  # fmt: skip


def activity_params(kind: str, rng: np.random.Generator, style: Style) -> dict[str, float]:
    """Random parameters of one activity instance (side, frequency, period, depth, height)."""
    tempo = style.tempo
    side = float(rng.choice([-1.0, 1.0]))
    params: dict[str, dict[str, float]] = {
        "wave_one_arm": {"side": side, "freq": rng.uniform(1.2, 2.4)},
        "wave_both_arms": {"freq": rng.uniform(0.8, 1.6), "offset": float(rng.choice([0, np.pi]))},
        "squat": {"period": rng.uniform(2.4, 3.6) / tempo, "depth": rng.uniform(0.6, 1.0)},
        "lunge": {"period": rng.uniform(2.6, 3.8) / tempo},
        "reach_up": {
            "period": rng.uniform(2.5, 4.0) / tempo,
            "side": float(rng.choice([-1, 0, 1])),
        },
        "jump": {"period": rng.uniform(1.0, 1.5) / tempo, "height": rng.uniform(0.1, 0.3)},
        "bend_pick_up": {"period": rng.uniform(2.5, 4.5) / tempo},
        "turn_in_place": {"rate": side * rng.uniform(0.8, 1.6)},
    }
    return {k: float(v) for k, v in params.get(kind, {}).items()}


@dataclass
class Trajectory:
    """Smooth root path (room frame) and gait phase as cubic splines of time."""

    x: CubicSpline
    y: CubicSpline
    yaw: CubicSpline
    phase: CubicSpline


class PersonMotion:
    """Analytic whole-body motion of one person: joint rotations and positions at any time."""

    def __init__(
        self, shape: BodyShape, style: Style, segments: list[Segment], trajectory: Trajectory
    ) -> None:
        self.shape = shape
        self.style = style
        self.segments = segments
        self.trajectory = trajectory
        bounds = [s.start for s in segments] + [segments[-1].end]
        lengths = np.diff(bounds)
        widths = (
            [BLEND_S]
            + [
                min(BLEND_S, 0.45 * lengths[i - 1], 0.45 * lengths[i])
                for i in range(1, len(segments))
            ]
            + [BLEND_S]
        )
        self._widths = widths

    def weights(self, t: F64Array) -> list[F64Array]:
        """Blend weight of every segment at times t (they sum to one)."""
        out = []
        for i, seg in enumerate(self.segments):
            rise = 1.0 if i == 0 else smoother((t - seg.start) / self._widths[i] + 0.5)
            last = i == len(self.segments) - 1
            fall = 1.0 if last else smoother((seg.end - t) / self._widths[i + 1] + 0.5)
            out.append(np.asarray(rise * fall, dtype=np.float64) * np.ones_like(t))
        return out

    def labels(self, t: F64Array) -> NDArray[np.int64]:
        """Activity index per time: the segment with the largest weight."""
        weights = np.stack(self.weights(t))
        best = np.argmax(weights, axis=0)
        labels = np.zeros(t.shape, dtype=np.int64)
        for i, seg in enumerate(self.segments):
            mask = best == i
            if mask.any():
                labels[mask] = seg.labels(t[mask])
        return labels

    def evaluate(self, t: F64Array, joints: set[int] | None = None) -> tuple[F64Array, F64Array]:
        """Global joint rotations (n, 24, 3, 3) and positions (n, 24, 3) in the room frame.

        With `joints`, only those joints (plus what the feet need) are computed, the rest are zero.
        """
        t = np.asarray(t, dtype=np.float64)
        n, style, traj = len(t), self.style, self.trajectory
        base = _idle(t, style)
        angles, lift = base.angles, base.lift
        speed = np.hypot(traj.x(t, 1), traj.y(t, 1))
        locomotion = np.zeros(n)
        for seg, weight in zip(self.segments, self.weights(t), strict=True):
            mask = weight > 0
            if not mask.any():
                continue
            w = weight[mask]
            if seg.kind in LOCOMOTION:
                jog = 1.0 if seg.kind == "jog" else 0.0
                nominal = style.walk_speed * (1.0 + (JOG_SPEED_FACTOR - 1.0) * jog)
                amplitude = np.tanh(1.5 * speed[mask] / nominal) / np.tanh(1.5)
                pose = _gait(traj.phase(t[mask]), style, jog, amplitude)
                locomotion[mask] += w
            else:
                pose = STATIONARY[seg.kind](t[mask] - seg.start, seg, style)
            angles[mask] += w[:, None, None] * pose.angles
            lift[mask] += w * pose.lift
        yaw = traj.yaw(t)
        cos, sin = np.cos(yaw), np.sin(yaw)
        root = np.zeros((n, 3, 3))
        root[:, 0, 0], root[:, 0, 1], root[:, 1, 0], root[:, 1, 1] = cos, -sin, sin, cos
        root[:, 2, 2] = 1.0
        order = tuple(range(24)) if joints is None else with_ancestors(joints | FEET)
        local = np.zeros((n, 24, 3, 3))
        local[:, order] = euler_matrices(angles[:, order])
        rotations, positions = forward_kinematics(self.shape.offsets, root, local, order)
        contact = self._contact_heights(rotations, positions)
        height = FOOT_SOFTMIN_M * np.log(
            np.exp(-(contact - contact.min(1, keepdims=True)) / FOOT_SOFTMIN_M).sum(1)
        ) - contact.min(1)
        ankles = 0.5 * (positions[:, J["left_ankle"], :2] + positions[:, J["right_ankle"], :2])
        planted = np.clip(1.0 - locomotion, 0.0, 1.0)[:, None]
        f, p = style.freqs, style.phases
        sway = style.sway_amp * np.stack(
            [np.sin(2 * np.pi * 0.4 * f[0] * t + p[0]), np.sin(2 * np.pi * 0.4 * f[1] * t + p[1])],
            1,
        )
        sway_world = np.stack(
            [cos * sway[:, 0] - sin * sway[:, 1], sin * sway[:, 0] + cos * sway[:, 1]], 1
        )
        root_xy = np.stack([traj.x(t), traj.y(t)], 1) - planted * ankles + sway_world * planted
        positions[:, :, :2] += root_xy[:, None, :]
        positions[:, :, 2] += (height + lift)[:, None]
        return rotations, positions

    def _contact_heights(self, rotations: F64Array, positions: F64Array) -> F64Array:
        """Heights (n, 4) of both heels and toes relative to the pelvis."""
        s = self.shape.height
        heel = np.array([-0.04 * s / 1.75, 0.0, -self.shape.heel_drop])
        toe = np.array([0.04 * s / 1.75, 0.0, -0.009 * s])
        points = []
        for side in ("left", "right"):
            ankle, foot = J[f"{side}_ankle"], J[f"{side}_foot"]
            points.append(positions[:, ankle, 2] + rotations[:, ankle, 2] @ heel)
            points.append(positions[:, foot, 2] + rotations[:, foot, 2] @ toe)
        return np.stack(points, 1)
