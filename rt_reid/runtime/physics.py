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
TABLE_ROWS = 64  # tracks the statistics table holds before it grows


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
    `physics_llr` turns them into the evidence matrix. The sums of all tracks live in one
    table (a row per track), so a frame's samples, forgetting and statistics are a few array
    operations whatever the number of people.
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
        self._table = self._empty_table(TABLE_ROWS)
        self._rows: dict[int, int] = {}  # track id -> its row in the table (it has statistics)
        self._free = list(range(TABLE_ROWS))
        self._last_stamp: float | None = None

    def _empty_table(self, rows: int) -> PairStats:
        return PairStats.zeros(
            len(self.identities), self._sites, len(self._kernels), tracks=(rows,)
        )

    def reset(self) -> None:
        """Forget every track's history and statistics."""
        self._history.clear()
        for row in self._rows.values():
            self._table.clear(row)
        self._free.extend(self._rows.values())
        self._rows.clear()
        self._last_stamp = None

    def _row(self, track_id: int) -> int:
        """The table row of a track, allocated (zero sums) on first use."""
        row = self._rows.get(track_id)
        if row is None:
            if not self._free:
                size = len(self._table.count)
                self._table = self._table.concatenated(self._empty_table(size))
                self._free = list(range(size, 2 * size))
            row = self._rows[track_id] = self._free.pop()
        return row

    def _drop(self, track_id: int) -> None:
        row = self._rows.pop(track_id, None)
        if row is not None:
            self._table.clear(row)
            self._free.append(row)

    def observe(self, frame: int, points: Mapping[int, F64Array | None]) -> None:
        """Record this frame's cluster of every live track; tracks not listed are dropped.

        A cluster with fewer than `min_points` points counts as not observed.
        """
        for track_id in [t for t in self._history if t not in points]:
            del self._history[track_id]
            self._drop(track_id)
        for track_id, cloud in points.items():
            ring = self._history.setdefault(track_id, deque(maxlen=self.frames + HISTORY_SLACK))
            observed = cloud is not None and len(cloud) >= self.params.min_points
            shape = _Shape.of(np.asarray(cloud, np.float64)) if observed else None
            ring.append((frame, shape))

    def inherit(self, track_id: int, old: PairStats) -> None:
        """Add the statistics of the track that `track_id` continues (identity continuity)."""
        self._table.add_row(self._row(track_id), old)

    def statistics(self, track_id: int) -> PairStats | None:
        """The accumulated statistics of one track (to hand over on a track break)."""
        row = self._rows.get(track_id)
        return None if row is None else self._table.row(row)

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
        if self._rows:
            self._table.scale(0.5 ** (dt / self.params.half_life_s))
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
        index = {f: k for k, f in enumerate(frames)}
        shapes: dict[int, list[_Shape | None]] = {}
        for track_id, ring in self._history.items():
            recent: list[_Shape | None] = [None] * len(frames)
            for f, shape in ring:
                if f in index:
                    recent[index[f]] = shape
            shapes[track_id] = recent
        for band, (k_pos, k_acc) in enumerate(kernels):
            tracks = [t for t, s in shapes.items() if all(x is not None for x in s[-len(k_pos) :])]
            if tracks:
                centroids = np.array(
                    [
                        [x.centroid for x in shapes[t][-len(k_pos) :] if x is not None]
                        for t in tracks
                    ]
                )
                imu_acc = np.einsum("f,ifsc->isc", k_acc, acceleration[:, -len(k_acc) :])
                rows = [self._row(t) for t in tracks]
                # one product per track: the same rounding as a lone track's (not a batched one)
                track_acc = np.array([k_pos @ c for c in centroids])
                self._table.add_band(band, rows, columns, track_acc, imu_acc)
        last = ACTIVITY_FRAMES + 1
        tracks = [t for t, s in shapes.items() if all(x is not None for x in s[-last:])]
        if tracks:
            covariances = np.array(
                [[x.covariance for x in shapes[t][-last:] if x is not None] for t in tracks]
            )
            change = np.linalg.norm(np.diff(covariances, axis=1), axis=2).mean(axis=1)
            # one scalar log per track: numpy's vectorised log rounds differently in the last bit
            track_activity = np.array([np.log(c / period + TRACK_ACTIVITY_FLOOR) for c in change])
            imu_activity = np.log(_rotation_speed(orientation, period) + IMU_ACTIVITY_FLOOR)
            rows = [self._row(t) for t in tracks]
            self._table.add_activity(rows, columns, track_activity, imu_activity)

    def features(self, track_ids: Sequence[int]) -> F64Array:
        """Test statistics (tracks, identities, features); 0 where nothing was accumulated."""
        out = np.zeros((len(track_ids), len(self.identities), len(self.feature_names)))
        known = [(k, self._rows[t]) for k, t in enumerate(track_ids) if t in self._rows]
        if known:
            slots, rows = zip(*known, strict=True)
            out[list(slots)] = self._table.features(list(rows))
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
    """Forgetting sums of one track against every (identity, site): per band and activity.

    The arrays may carry leading axes: `MotionEvidence` keeps all tracks in one table whose
    first axis is the track's row.
    """

    cross_h: np.ndarray  # (B, I, S) complex: sum z_track * conj(z_imu)
    track_h: F64Array  # (B, I, S): sum |z_track|^2 (per pair: only frames where the IMU was there)
    imu_h: F64Array  # (B, I, S)
    cross_v: F64Array  # (B, I, S)
    track_v: F64Array
    imu_v: F64Array
    count: F64Array  # (B, I, S) forgetting sample count
    activity: F64Array  # (6, I, S): n, sum x, sum y, sum xx, sum yy, sum xy

    @classmethod
    def zeros(
        cls, identities: int, sites: int, bands: int, *, tracks: tuple[int, ...] = ()
    ) -> PairStats:
        """Empty sums for (identities, sites) pairs, with leading axes `tracks`."""
        shape = (*tracks, bands, identities, sites)
        real = [np.zeros(shape) for _ in range(6)]
        return cls(
            cross_h=np.zeros(shape, np.complex128),
            track_h=real[0],
            imu_h=real[1],
            cross_v=real[2],
            track_v=real[3],
            imu_v=real[4],
            count=real[5],
            activity=np.zeros((*tracks, 6, identities, sites)),
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

    def concatenated(self, other: PairStats) -> PairStats:
        """A table with the rows of both (first axis)."""
        return PairStats(
            *(np.concatenate([a, b]) for a, b in zip(self._arrays(), other._arrays(), strict=True))
        )

    def row(self, row: int) -> PairStats:
        """A copy of one track's sums (a table's row)."""
        return PairStats(*(np.array(a[row]) for a in self._arrays()))

    def add_row(self, row: int, other: PairStats) -> None:
        """Add one track's sums into a table's row."""
        for a, b in zip(self._arrays(), other._arrays(), strict=True):
            a[row] += b

    def clear(self, row: int) -> None:
        """Zero a table's row."""
        for a in self._arrays():
            a[row] = 0

    def scale(self, factor: float) -> None:
        """Forgetting: multiply every sum."""
        for array in self._arrays():
            np.multiply(array, factor, out=array)

    def add_band(
        self,
        band: int,
        rows: list[int],
        columns: list[int],
        track_acc: F64Array,
        imu_acc: F64Array,
    ) -> None:
        """One filtered sample of one band for table rows: tracks (T, 3), IMU (I', S, 3).

        The tracks' energies use Python's float arithmetic (abs of a complex, x ** 2 = libm
        pow), as the per-track code did, so the sums are bit-identical to it.
        """
        z_track = (track_acc[:, 0] + 1j * track_acc[:, 1])[:, None, None]  # (T, 1, 1)
        z_imu = (imu_acc[..., 0] + 1j * imu_acc[..., 1])[None]  # (1, I', S)
        rows_h = [abs(complex(x, y)) ** 2 for x, y, _ in track_acc.tolist()]
        rows_v = [z**2 for _, _, z in track_acc.tolist()]
        at = np.ix_(rows, columns)
        self.cross_h[:, band][at] += z_track * np.conj(z_imu)
        self.track_h[:, band][at] += np.array(rows_h)[:, None, None]
        self.imu_h[:, band][at] += np.abs(z_imu) ** 2
        self.cross_v[:, band][at] += track_acc[:, 2, None, None] * imu_acc[None, ..., 2]
        self.track_v[:, band][at] += np.array(rows_v)[:, None, None]
        self.imu_v[:, band][at] += imu_acc[None, ..., 2] ** 2
        self.count[:, band][at] += 1.0

    def add_activity(
        self, rows: list[int], columns: list[int], track: F64Array, imu: F64Array
    ) -> None:
        """One activity sample per table row: the tracks' log shape change (T,), the sites'
        log rotation speeds (I', S)."""
        x = track[:, None, None]  # (T, 1, 1)
        y = imu[None]  # (1, I', S)
        shape = (len(track), *imu.shape)
        x2 = np.array([t**2 for t in track.tolist()])[:, None, None]  # Python's pow, see add_band
        terms = [np.ones(shape), x, y, x2, y**2, x * y]
        at = np.ix_(rows, range(6), columns)
        self.activity[at] += np.stack([np.broadcast_to(t, shape) for t in terms], axis=1)

    def features(self, rows: list[int] | None = None) -> F64Array:
        """(..., I, features): per identity, the mean over its sites of each test statistic
        (of the given table rows)."""
        arrays = self._arrays() if rows is None else tuple(a[rows] for a in self._arrays())
        cross_h, track_h, imu_h, cross_v, track_v, imu_v, count, activity = arrays
        horizontal = _statistic(np.abs(cross_h), track_h, imu_h, count)
        vertical = _statistic(cross_v, track_v, imu_v, count)
        bands = np.stack([horizontal.mean(axis=-1), vertical.mean(axis=-1)], axis=-2)
        n, sx, sy, sxx, syy, sxy = np.moveaxis(activity, -3, 0)
        safe = np.maximum(n, 1e-9)
        activity_stat = _statistic(
            sxy - sx * sy / safe, sxx - sx**2 / safe, syy - sy**2 / safe, np.maximum(n - 1, 0.0)
        ).mean(axis=-1)
        lead = bands.shape[:-3]
        flat = bands.reshape(*lead, -1, bands.shape[-1])  # (..., 2B, I)
        stacked = np.concatenate([flat, activity_stat[..., None, :]], axis=-2)
        return np.swapaxes(stacked, -1, -2)


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
