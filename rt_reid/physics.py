"""Physics evidence: does a LiDAR track move the way a wearable's IMU says it moves?

A learning-free channel of identity evidence, next to the learned DeSPITE similarity. Both
sensors observe the same body acceleration: the LiDAR as the second derivative of the track's
centroid, the IMU as specific force rotated into its gravity-aligned world frame minus gravity.
The two are brought to the same bandwidth exactly: the track's centroids go through a
Savitzky-Golay second-derivative filter, and the IMU's per-frame accelerations are integrated
twice and go through the same filter (which cancels the unknown integration constants), so a
constant clock offset of tens of milliseconds changes little at these frequencies.

Only quantities that do not depend on the IMU's unknown heading are compared:
- horizontal: the complex inner product of the two horizontal acceleration series, whose
  magnitude is invariant to a rotation about gravity (the best heading is implied, per device);
- vertical: the signed inner product of the vertical accelerations (gait bob, squat, sit, jump).
Sufficient statistics are accumulated per (track, identity, site) with exponential forgetting,
and turned into a correlation test statistic: n * -log(1 - rho^2), which is ~1 for unrelated
motion whatever the signal energies and grows linearly with time for the same body. A person
standing still gives near-zero energy on both sides, i.e. no information, never a mismatch.
`PhysicsParams.weights`/`bias` map the statistics to a log-likelihood ratio; they are fitted by
logistic regression on our own simulator (`fit_physics_llr`, `bench/fit_physics.py`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.signal import savgol_coeffs

from rt_reid.arrays import F64Array
from rt_reid.errors import ReidError

# Columns of `MotionEvidence.features`: the horizontal and the signed vertical test statistic.
FEATURES = ("horizontal", "vertical")
MAX_RHO2 = 0.98  # a correlation this high is as good as perfect; keeps -log(1 - rho^2) finite
ENERGY_FLOOR = 1e-6  # (m/s^2)^2: below this a series carries no information
HISTORY_SLACK = 4  # frames of centroid history beyond the window (IMU windows end lag frames back)


class PhysicsFitError(ReidError):
    """Physics calibration data are insufficient (empty, one class only, or not finite)."""


@dataclass(frozen=True)
class PhysicsParams:
    """Physics channel parameters (from `ReidConfig.physics`; meanings in the schema)."""

    smoothing_frames: int
    half_life_s: float
    min_points: int
    weights: tuple[float, float]  # per FEATURES
    bias: float
    max_llr: float


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


class MotionEvidence:
    """Accumulated physics evidence for every live track against a fixed list of identities.

    Per frame: `observe(frame, centroids)` records each live track's centroid (None = not
    observed); `update(frames, stamp_s, imu)` adds one filtered acceleration sample per
    (track, identity, site) for the frame at the centre of `frames`, where `imu` maps identity
    -> (len(frames), sites, 3) world-frame accelerations on those frames. `llr(track_ids)` is
    the evidence matrix (tracks x identities), 0 where nothing was observed.
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
        self._column = {name: k for k, name in enumerate(self.identities)}
        self._sites = sites
        self._frame_period = frame_period
        self._k_pos, self._k_acc = acceleration_kernels(params.smoothing_frames, frame_period)
        self._history: dict[int, deque[tuple[int, F64Array | None]]] = {}
        self._stats: dict[int, PairStats] = {}
        self._last_stamp: float | None = None

    @property
    def frames(self) -> int:
        """Frames one filtered sample spans (the smoothing window)."""
        return self.params.smoothing_frames

    def reset(self) -> None:
        """Forget every track's history and statistics."""
        self._history.clear()
        self._stats.clear()
        self._last_stamp = None

    def observe(self, frame: int, centroids: Mapping[int, F64Array | None]) -> None:
        """Record this frame's centroid of every live track; tracks not listed are dropped."""
        for track_id in [t for t in self._history if t not in centroids]:
            del self._history[track_id]
            self._stats.pop(track_id, None)
        for track_id, centroid in centroids.items():
            ring = self._history.setdefault(track_id, deque(maxlen=self.frames + HISTORY_SLACK))
            ring.append((frame, None if centroid is None else np.asarray(centroid, np.float64)))

    def inherit(self, track_id: int, old: PairStats) -> None:
        """Add the statistics of the track that `track_id` continues (identity continuity)."""
        own = self._stats.get(track_id)
        self._stats[track_id] = old.copy() if own is None else own.merged(old)

    def statistics(self, track_id: int) -> PairStats | None:
        """The accumulated statistics of one track (to hand over on a track break)."""
        stats = self._stats.get(track_id)
        return None if stats is None else stats.copy()

    def update(self, frames: Sequence[int], stamp_s: float, imu: Mapping[str, F64Array]) -> None:
        """Add the filtered sample centred on `frames` (consecutive frame indices) to every pair.

        Tracks observed on all of `frames` contribute; identities missing from `imu` (silent or
        incomplete) contribute nothing this frame. Forgetting runs on `stamp_s`.
        """
        p = self.params
        dt = 0.0 if self._last_stamp is None else max(0.0, stamp_s - self._last_stamp)
        self._last_stamp = stamp_s
        decay = 0.5 ** (dt / p.half_life_s)
        for stats in self._stats.values():
            stats.scale(decay)
        if len(frames) != self.frames or not imu:
            return
        columns = [self._column[name] for name in imu]
        imu_acc = np.stack([imu[name] for name in imu])  # (I', F, S, 3)
        imu_filtered = np.einsum("f,ifsc->isc", self._k_acc, imu_acc)  # (I', S, 3)
        wanted = {f: k for k, f in enumerate(frames)}
        for track_id, ring in self._history.items():
            window = [c for f, c in ring if f in wanted]
            if len(window) != len(wanted) or any(c is None for c in window):
                continue
            positions = np.stack([c for c in window if c is not None])  # (F, 3)
            track_acc = self._k_pos @ positions  # (3,)
            if track_id not in self._stats:
                self._stats[track_id] = PairStats.zeros(len(self.identities), self._sites)
            self._stats[track_id].add(columns, track_acc, imu_filtered)

    def features(self, track_ids: Sequence[int]) -> F64Array:
        """Test statistics (tracks, identities, FEATURES); 0 where nothing was accumulated."""
        out = np.zeros((len(track_ids), len(self.identities), len(FEATURES)))
        for row, track_id in enumerate(track_ids):
            stats = self._stats.get(track_id)
            if stats is not None:
                out[row] = stats.features()
        return out

    def llr(self, track_ids: Sequence[int]) -> F64Array:
        """Log-likelihood ratio (tracks, identities) from the fitted weights, clipped."""
        return physics_llr(self.features(track_ids), self.params)


def physics_llr(features: F64Array, params: PhysicsParams) -> F64Array:
    """Map test statistics (..., FEATURES) to a clipped log-likelihood ratio; 0 stays 0."""
    weights = np.asarray(params.weights, np.float64)
    informed = np.any(features != 0.0, axis=-1)
    llr = np.where(informed, features @ weights + params.bias, 0.0)
    clipped: F64Array = np.clip(llr, -params.max_llr, params.max_llr)
    return clipped


@dataclass
class PairStats:
    """Forgetting sums of one track against every (identity, site)."""

    cross_h: np.ndarray  # (I, S) complex: sum z_track * conj(z_imu)
    track_h: F64Array  # (I, S): sum |z_track|^2 (per pair: only frames where the IMU was there)
    imu_h: F64Array  # (I, S)
    cross_v: F64Array  # (I, S)
    track_v: F64Array
    imu_v: F64Array
    count: F64Array  # (I, S) forgetting sample count

    @classmethod
    def zeros(cls, identities: int, sites: int) -> PairStats:
        """Empty sums for (identities, sites) pairs."""
        shape = (identities, sites)
        return cls(
            np.zeros(shape, np.complex128),
            *(np.zeros(shape) for _ in range(6)),
        )

    def copy(self) -> PairStats:
        """An independent copy."""
        return PairStats(*(np.array(a) for a in self._arrays()))

    def merged(self, other: PairStats) -> PairStats:
        """Element-wise sum: the statistics of both tracks as if they were one."""
        return PairStats(*(a + b for a, b in zip(self._arrays(), other._arrays(), strict=True)))

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (
            self.cross_h,
            self.track_h,
            self.imu_h,
            self.cross_v,
            self.track_v,
            self.imu_v,
            self.count,
        )

    def scale(self, factor: float) -> None:
        """Forgetting: multiply every sum."""
        for array in self._arrays():
            np.multiply(array, factor, out=array)

    def add(self, columns: list[int], track_acc: F64Array, imu_acc: F64Array) -> None:
        """One filtered sample: track (3,), IMU (I', S, 3) for identity columns `columns`."""
        z_track = complex(track_acc[0], track_acc[1])
        z_imu = imu_acc[..., 0] + 1j * imu_acc[..., 1]  # (I', S)
        self.cross_h[columns] += z_track * np.conj(z_imu)
        self.track_h[columns] += abs(z_track) ** 2
        self.imu_h[columns] += np.abs(z_imu) ** 2
        self.cross_v[columns] += track_acc[2] * imu_acc[..., 2]
        self.track_v[columns] += track_acc[2] ** 2
        self.imu_v[columns] += imu_acc[..., 2] ** 2
        self.count[columns] += 1.0

    def features(self) -> F64Array:
        """(I, FEATURES): per identity, the mean over its sites of each test statistic."""
        horizontal = _statistic(np.abs(self.cross_h), self.track_h, self.imu_h, self.count)
        signed = _statistic(self.cross_v, self.track_v, self.imu_v, self.count)
        return np.stack([horizontal.mean(axis=1), signed.mean(axis=1)], axis=-1)


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
