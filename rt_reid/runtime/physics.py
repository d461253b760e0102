"""Physics evidence: does a LiDAR track move the way a wearable's IMU says it moves?

A learning-free channel of identity evidence, next to the learned DeSPITE similarity. Both
sensors observe the same body, and only quantities that do not depend on the IMU's unknown
heading are compared:
- acceleration, at one or more bandwidths (`smoothing_frames`): the LiDAR sees it as the
  second derivative of the track's centroid, the IMU as specific force rotated into its
  gravity-aligned world frame minus gravity. Both are brought to the same bandwidth exactly:
  the centroids go through a Savitzky-Golay second-derivative filter, and the IMU's per-frame
  accelerations are integrated twice and go through the same filter (which cancels the unknown
  integration constants). Horizontal: the magnitude of the complex inner product of the two
  horizontal series, invariant to a rotation about gravity (the best heading is implied, per
  device). Vertical: the signed inner product (gait bob, squat, sit, jump). Slow bands carry
  walking, starts, stops and turns; fast bands carry bob and quick movements.
- activity: how much the body moves its parts. The LiDAR sees it as the frame-to-frame change
  of the cluster's shape (its point covariance, rotation-invariant in norm), the IMU as the
  rotation speed of each site (forearm, wrist, leg). Gesturing, sitting down or turning while
  standing moves both; their log-envelopes are correlated per site.
Sums are accumulated per (track, identity, site) with exponential forgetting and turned into a
correlation test statistic, n * -log(1 - rho^2) (signed where the sign matters), which stays at
chance level for unrelated motion whatever the energies and grows with time for the same body.
A person standing still gives no energy on either side: no information, never a mismatch.
`PhysicsParams.weights`/`bias` map the statistics (`feature_names`) to a log-likelihood ratio;
they are fitted by logistic regression on our own simulator (`bench/fit_physics.py`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.signal import savgol_coeffs
from scipy.spatial.transform import Rotation

from rt_reid.arrays import F64Array
from rt_reid.errors import ReidError

MAX_RHO2 = 0.98  # a correlation this high is as good as perfect; keeps -log(1 - rho^2) finite
ENERGY_FLOOR = 1e-6  # (m/s^2)^2: below this a series carries no information
HISTORY_SLACK = 4  # frames of track history beyond the window (IMU windows end lag frames back)
ACTIVITY_FRAMES = 3  # frame-to-frame changes averaged into one activity sample
UNEVEN_FRACTION = 0.2  # frame spacing off by more than this share: filters follow the stamps
TRACK_ACTIVITY_FLOOR = 1e-3  # m^2/s: shape change below this is scan noise
IMU_ACTIVITY_FLOOR = 0.05  # rad/s: rotation slower than this is sensor noise


class PhysicsFitError(ReidError):
    """Physics calibration data are insufficient (empty, one class only, or not finite)."""


@dataclass(frozen=True)
class PhysicsParams:
    """Physics channel parameters (from `ReidConfig.physics`; meanings in the schema)."""

    smoothing_frames: tuple[int, ...]
    half_life_s: float
    min_points: int
    weights: tuple[float, ...]  # one per `feature_names(smoothing_frames)`
    bias: float
    max_llr: float

    def __post_init__(self) -> None:
        """Reject weights that do not fit the features, naming both."""
        names = feature_names(self.smoothing_frames)
        if len(self.weights) != len(names):
            raise ReidError(
                f"physics.weights has {len(self.weights)} values but the features are {names}"
            )
        for frames in self.smoothing_frames:
            if frames < 3 or frames % 2 == 0:
                raise ReidError(f"physics.smoothing_frames must be odd and >= 3, got {frames}")


def feature_names(smoothing_frames: Sequence[int]) -> tuple[str, ...]:
    """Names of the feature columns: per band horizontal and vertical, then activity."""
    names = [f"{axis}_{k}" for k in smoothing_frames for axis in ("horizontal", "vertical")]
    return (*names, "activity")


def acceleration_kernels(frames: int, frame_period: float) -> tuple[F64Array, F64Array]:
    """(position kernel, acceleration kernel) that give the same band-limited acceleration.

    `position kernel @ positions[-frames:]` is the Savitzky-Golay (quadratic) second derivative
    at the window's centre; `acceleration kernel @ accelerations[-frames:]` is the same filter
    applied to those accelerations integrated twice (sampled at the same frames).
    """
    if frames < 3 or frames % 2 == 0:
        raise ReidError(f"physics.smoothing_frames must be odd and >= 3, got {frames}")
    position = savgol_coeffs(frames, 2, deriv=2, delta=frame_period, use="dot")
    acceleration = np.empty(frames)
    for k in range(frames):
        impulse = np.zeros(frames)
        impulse[k] = 1.0
        velocity = np.cumsum(impulse) * frame_period  # v at k + 1/2
        displacement = np.concatenate([[0.0], np.cumsum(velocity)[:-1] * frame_period])
        acceleration[k] = float(position @ displacement)
    return np.asarray(position, np.float64), acceleration


def uneven_kernels(stamps: F64Array) -> tuple[F64Array, F64Array]:
    """`acceleration_kernels` for frames at arbitrary (increasing) stamps, e.g. with drops.

    Position kernel: the second derivative of the least-squares quadratic through the frames.
    Acceleration kernel: the same applied to the accelerations integrated twice (trapezoids).
    """
    times = stamps - stamps[len(stamps) // 2]
    design = np.stack([np.ones_like(times), times, times**2], axis=1)
    position = 2.0 * np.linalg.pinv(design)[2]
    steps = np.diff(times)
    frames = len(times)
    # velocity and displacement at each frame as linear maps of the accelerations
    velocity = np.zeros((frames, frames))
    for k in range(1, frames):
        velocity[k] = velocity[k - 1]
        velocity[k, k - 1] += 0.5 * steps[k - 1]
        velocity[k, k] += 0.5 * steps[k - 1]
    displacement = np.zeros((frames, frames))
    for k in range(1, frames):
        displacement[k] = displacement[k - 1] + 0.5 * steps[k - 1] * (velocity[k - 1] + velocity[k])
    acceleration: F64Array = position @ displacement
    return position, acceleration


@dataclass(frozen=True)
class _Shape:
    """One frame of one track: centroid (3,) and point covariance (6,: xx yy zz xy xz yz)."""

    centroid: F64Array
    covariance: F64Array

    @classmethod
    def of(cls, points: F64Array) -> _Shape:
        """Centroid and covariance of one cluster (N, 3)."""
        centred = points - points.mean(axis=0)
        cov = centred.T @ centred / len(points)
        upper = np.array([cov[0, 0], cov[1, 1], cov[2, 2], cov[0, 1], cov[0, 2], cov[1, 2]])
        return cls(points.mean(axis=0), upper)


class MotionEvidence:
    """Accumulated physics evidence for every live track against a fixed list of identities.

    Per frame: `observe(frame, points)` records each live track's cluster (None = not
    observed); `update(frames, stamp_s, imu)` adds one sample per band and one activity sample
    per (track, identity, site) for the consecutive frames `frames` (the last `self.frames`
    frames up to the newest one the IMU covers), where `imu` maps identity -> (orientation
    (F, S, 4) xyzw, world acceleration (F, S, 3)) on those frames. `features(track_ids)` are
    the test statistics (tracks x identities x features), 0 where nothing was observed;
    `physics_llr` turns them into the evidence matrix.
    """

    def __init__(
        self,
        *,
        identities: Sequence[str],
        sites: int,
        params: PhysicsParams,
        frame_period: float,
    ) -> None:
        self.identities = tuple(identities)
        self.params = params
        self.feature_names = feature_names(params.smoothing_frames)
        self._column = {name: k for k, name in enumerate(self.identities)}
        self._sites = sites
        self._frame_period = frame_period
        self._kernels = [acceleration_kernels(k, frame_period) for k in params.smoothing_frames]
        self.frames = max(*params.smoothing_frames, ACTIVITY_FRAMES + 1)
        self._history: dict[int, deque[tuple[int, _Shape | None]]] = {}
        self._stats: dict[int, PairStats] = {}
        self._last_stamp: float | None = None

    def reset(self) -> None:
        """Forget every track's history and statistics."""
        self._history.clear()
        self._stats.clear()
        self._last_stamp = None

    def observe(self, frame: int, points: Mapping[int, F64Array | None]) -> None:
        """Record this frame's cluster of every live track; tracks not listed are dropped.

        A cluster with fewer than `min_points` points counts as not observed.
        """
        for track_id in [t for t in self._history if t not in points]:
            del self._history[track_id]
            self._stats.pop(track_id, None)
        for track_id, cloud in points.items():
            ring = self._history.setdefault(track_id, deque(maxlen=self.frames + HISTORY_SLACK))
            observed = cloud is not None and len(cloud) >= self.params.min_points
            shape = _Shape.of(np.asarray(cloud, np.float64)) if observed else None
            ring.append((frame, shape))

    def inherit(self, track_id: int, old: PairStats) -> None:
        """Add the statistics of the track that `track_id` continues (identity continuity)."""
        own = self._stats.get(track_id)
        self._stats[track_id] = old.copy() if own is None else own.merged(old)

    def statistics(self, track_id: int) -> PairStats | None:
        """The accumulated statistics of one track (to hand over on a track break)."""
        stats = self._stats.get(track_id)
        return None if stats is None else stats.copy()

    def update(
        self,
        frames: Sequence[int],
        stamp_s: float,
        imu: Mapping[str, tuple[F64Array, F64Array]],
        *,
        frame_stamps: F64Array | None = None,
    ) -> None:
        """Add this frame's samples for the consecutive `frames` to every pair.

        Tracks observed on the frames a sample needs contribute; identities missing from `imu`
        (silent or incomplete) contribute nothing this frame. Forgetting runs on `stamp_s`.
        `frame_stamps` (seconds, one per frame) make the filters follow frames that were
        dropped or came late; without them the frames are `frame_period` apart.
        """
        dt = 0.0 if self._last_stamp is None else max(0.0, stamp_s - self._last_stamp)
        self._last_stamp = stamp_s
        decay = 0.5 ** (dt / self.params.half_life_s)
        for stats in self._stats.values():
            stats.scale(decay)
        if len(frames) != self.frames or not imu:
            return
        columns = [self._column[name] for name in imu]
        orientation = np.stack([imu[name][0] for name in imu])  # (I', F, S, 4)
        acceleration = np.stack([imu[name][1] for name in imu])  # (I', F, S, 3)
        kernels, period = self._kernels, self._frame_period
        if frame_stamps is not None:
            steps = np.diff(np.asarray(frame_stamps, np.float64))
            period = float(steps[-ACTIVITY_FRAMES:].mean())
            if np.abs(steps - self._frame_period).max() > UNEVEN_FRACTION * self._frame_period:
                kernels = [
                    uneven_kernels(np.asarray(frame_stamps, np.float64)[-len(k_pos) :])
                    for k_pos, _ in self._kernels
                ]
        imu_bands = [
            np.einsum("f,ifsc->isc", k_acc, acceleration[:, -len(k_acc) :]) for _, k_acc in kernels
        ]
        imu_activity = np.log(_rotation_speed(orientation, period) + IMU_ACTIVITY_FLOOR)
        index = {f: k for k, f in enumerate(frames)}
        for track_id, ring in self._history.items():
            shapes: list[_Shape | None] = [None] * len(frames)
            for f, shape in ring:
                if f in index:
                    shapes[index[f]] = shape
            known = self._stats.get(track_id)
            stats = (
                PairStats.zeros(len(self.identities), self._sites, len(self._kernels))
                if known is None
                else known
            )
            added = False
            for band, (k_pos, _) in enumerate(kernels):
                recent = shapes[-len(k_pos) :]
                if all(s is not None for s in recent):
                    centroids = np.stack([s.centroid for s in recent if s is not None])
                    stats.add_band(band, columns, k_pos @ centroids, imu_bands[band])
                    added = True
            recent = shapes[-(ACTIVITY_FRAMES + 1) :]
            if all(s is not None for s in recent):
                covariances = np.stack([s.covariance for s in recent if s is not None])
                change = np.linalg.norm(np.diff(covariances, axis=0), axis=1).mean()
                track_activity = np.log(change / period + TRACK_ACTIVITY_FLOOR)
                stats.add_activity(columns, float(track_activity), imu_activity)
                added = True
            if added:
                self._stats[track_id] = stats

    def features(self, track_ids: Sequence[int]) -> F64Array:
        """Test statistics (tracks, identities, features); 0 where nothing was accumulated."""
        out = np.zeros((len(track_ids), len(self.identities), len(self.feature_names)))
        for row, track_id in enumerate(track_ids):
            stats = self._stats.get(track_id)
            if stats is not None:
                out[row] = stats.features()
        return out


def _rotation_speed(orientation: F64Array, frame_period: float) -> F64Array:
    """Mean rotation speed (rad/s) over the last ACTIVITY_FRAMES frames: (I, F, S, 4) -> (I, S).

    The relative rotation between frames does not depend on the device's heading.
    """
    recent = orientation[:, -(ACTIVITY_FRAMES + 1) :]
    before = Rotation.from_quat(recent[:, :-1].reshape(-1, 4))
    after = Rotation.from_quat(recent[:, 1:].reshape(-1, 4))
    angles = (after * before.inv()).magnitude().reshape(recent.shape[0], -1, recent.shape[2])
    speed: F64Array = angles.mean(axis=1) / frame_period
    return speed


def physics_llr(features: F64Array, params: PhysicsParams) -> F64Array:
    """Map test statistics (..., features) to a clipped log-likelihood ratio; 0 stays 0."""
    weights = np.asarray(params.weights, np.float64)
    informed = np.any(features != 0.0, axis=-1)
    llr = np.where(informed, features @ weights + params.bias, 0.0)
    clipped: F64Array = np.clip(llr, -params.max_llr, params.max_llr)
    return clipped


@dataclass
class PairStats:
    """Forgetting sums of one track against every (identity, site): per band and activity."""

    cross_h: np.ndarray  # (B, I, S) complex: sum z_track * conj(z_imu)
    track_h: F64Array  # (B, I, S): sum |z_track|^2 (per pair: only frames where the IMU was there)
    imu_h: F64Array  # (B, I, S)
    cross_v: F64Array  # (B, I, S)
    track_v: F64Array
    imu_v: F64Array
    count: F64Array  # (B, I, S) forgetting sample count
    activity: F64Array  # (6, I, S): n, sum x, sum y, sum xx, sum yy, sum xy

    @classmethod
    def zeros(cls, identities: int, sites: int, bands: int) -> PairStats:
        """Empty sums for (identities, sites) pairs."""
        shape = (bands, identities, sites)
        real = [np.zeros(shape) for _ in range(6)]
        return cls(
            cross_h=np.zeros(shape, np.complex128),
            track_h=real[0],
            imu_h=real[1],
            cross_v=real[2],
            track_v=real[3],
            imu_v=real[4],
            count=real[5],
            activity=np.zeros((6, identities, sites)),
        )

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (
            self.cross_h,
            self.track_h,
            self.imu_h,
            self.cross_v,
            self.track_v,
            self.imu_v,
            self.count,
            self.activity,
        )

    def copy(self) -> PairStats:
        """An independent copy."""
        return PairStats(*(np.array(a) for a in self._arrays()))

    def merged(self, other: PairStats) -> PairStats:
        """Element-wise sum: the statistics of both tracks as if they were one."""
        return PairStats(*(a + b for a, b in zip(self._arrays(), other._arrays(), strict=True)))

    def scale(self, factor: float) -> None:
        """Forgetting: multiply every sum."""
        for array in self._arrays():
            np.multiply(array, factor, out=array)

    def add_band(
        self, band: int, columns: list[int], track_acc: F64Array, imu_acc: F64Array
    ) -> None:
        """One filtered sample of one band: track (3,), IMU (I', S, 3) for `columns`."""
        z_track = complex(track_acc[0], track_acc[1])
        z_imu = imu_acc[..., 0] + 1j * imu_acc[..., 1]  # (I', S)
        self.cross_h[band, columns] += z_track * np.conj(z_imu)
        self.track_h[band, columns] += abs(z_track) ** 2
        self.imu_h[band, columns] += np.abs(z_imu) ** 2
        self.cross_v[band, columns] += track_acc[2] * imu_acc[..., 2]
        self.track_v[band, columns] += track_acc[2] ** 2
        self.imu_v[band, columns] += imu_acc[..., 2] ** 2
        self.count[band, columns] += 1.0

    def add_activity(self, columns: list[int], track: float, imu: F64Array) -> None:
        """One activity sample: the track's log shape change, the sites' log rotation speeds."""
        self.activity[:, columns] += np.stack(
            [np.ones_like(imu), np.full_like(imu, track), imu, np.full_like(imu, track**2),
             imu**2, track * imu]
        )  # fmt: skip

    def features(self) -> F64Array:
        """(I, features): per identity, the mean over its sites of each test statistic."""
        horizontal = _statistic(np.abs(self.cross_h), self.track_h, self.imu_h, self.count)
        vertical = _statistic(self.cross_v, self.track_v, self.imu_v, self.count)
        bands = np.stack([horizontal.mean(axis=2), vertical.mean(axis=2)], axis=1)  # (B, 2, I)
        n, sx, sy, sxx, syy, sxy = self.activity
        safe = np.maximum(n, 1e-9)
        activity = _statistic(
            sxy - sx * sy / safe, sxx - sx**2 / safe, syy - sy**2 / safe, np.maximum(n - 1, 0.0)
        ).mean(axis=1)
        return np.concatenate([bands.reshape(-1, bands.shape[-1]), activity[None]]).T


def _statistic(
    cross: F64Array, energy_a: F64Array, energy_b: F64Array, count: F64Array
) -> F64Array:
    """Signed n * -log(1 - rho^2) of accumulated sums; 0 where either side has no energy."""
    denom = energy_a * energy_b
    valid = (energy_a > ENERGY_FLOOR * count) & (energy_b > ENERGY_FLOOR * count) & (count > 0)
    rho2 = np.where(valid, cross**2 / np.where(valid, denom, 1.0), 0.0)
    stat = -count * np.log1p(-np.minimum(rho2, MAX_RHO2))
    signed: F64Array = np.where(valid, np.sign(cross) * stat, 0.0)
    return signed


def fit_physics_llr(
    records: Iterable[tuple[Sequence[float], bool]], *, l2: float = 1e-3
) -> tuple[tuple[float, ...], float]:
    """(weights, bias) of a logistic regression of "same person" on the test statistics.

    `records`: (features per FEATURES, whether the track and the identity are the same person),
    from held-out replays of our own simulator with equal numbers of both classes weighted, so
    the fitted log-odds is a log-likelihood ratio.
    """
    rows = [(list(map(float, f)), bool(same)) for f, same in records]
    if len(rows) < 4:
        raise PhysicsFitError("physics calibration needs at least four records")
    x = np.array([f for f, _ in rows], np.float64)
    y = np.array([s for _, s in rows], np.float64)
    if not np.all(np.isfinite(x)) or y.min() == y.max():
        raise PhysicsFitError("physics calibration needs finite features and both classes")
    weight = np.where(y > 0, 0.5 / y.sum(), 0.5 / (len(y) - y.sum()))
    scale = np.maximum(x.std(axis=0), 1e-6)
    xs = x / scale

    def loss(theta: F64Array) -> tuple[float, F64Array]:
        z = xs @ theta[:-1] + theta[-1]
        prob = 0.5 * (1.0 + np.tanh(0.5 * z))
        nll = float(np.sum(weight * (np.logaddexp(0.0, z) - y * z)))
        resid = weight * (prob - y)
        grad = np.concatenate([xs.T @ resid, [resid.sum()]])
        grad[:-1] += 2 * l2 * theta[:-1]
        return nll + l2 * float(theta[:-1] @ theta[:-1]), grad

    fitted = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B")
    weights = tuple(float(w) for w in fitted.x[:-1] / scale)
    return weights, float(fitted.x[-1])
