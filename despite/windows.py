"""Training windows: per-person frame tracks from the simulator, cached shards, batch assembly.

Everything an encoder sees is made by the shared preprocessing in `rt_reid.runtime.features`
(`resample_imu`, `imu_features`, `sample_frame`, `fill_missing_frames`, `assemble_window`), so the
runtime feeds the exported encoders exactly what they were trained on. Frames are stored once per
person and windows are cut from them at batch time (stride-1 windows overlap 23/24).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rt_reid.arrays import F64Array, FloatArray, I64Array
from rt_reid.errors import ReidError
from rt_reid.layouts import get_layout
from rt_reid.names import ModalityType
from rt_reid.runtime.features import (
    CENTRINGS,
    Centring,
    assemble_window,
    fill_missing_frames,
    imu_features,
    resample_imu,
    sample_frame,
)

FRAME_RATE_HZ = 10.0
PELVIS = 0  # SMPL joint index used to centre skeletons
MIN_OBSERVED_SHARE = 0.5  # a window needs points in at least half of its frames


class DataError(ReidError):
    """Training data is missing, malformed or does not match the window specification."""


@dataclass(frozen=True)
class WindowSpec:
    """What one training window is: frames, points per frame, centring rule, IMU layout."""

    window_frames: int = 24
    points_per_frame: int = 256
    centring: Centring = "frame"
    layout: str = "lipd4"
    frame_rate_hz: float = FRAME_RATE_HZ

    def __post_init__(self) -> None:
        """Reject windows the encoders cannot take (odd T) and unknown centrings/layouts."""
        if self.window_frames < 2 or self.window_frames % 2:
            raise DataError(f"window_frames must be even and >= 2, got {self.window_frames}")
        if self.centring not in CENTRINGS:
            raise DataError(f"centring {self.centring!r} not in {CENTRINGS}")
        get_layout(self.layout)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints, shards and manifests."""
        return asdict(self)


def shard_key(spec: WindowSpec) -> str:
    """The part of a window spec that stored frames depend on (centring is applied later)."""
    return f"points={spec.points_per_frame} layout={spec.layout} rate={spec.frame_rate_hz}"


@dataclass
class FrameStore:
    """Frames of many person tracks, concatenated; windows are (start frame, track) pairs.

    Arrays are indexed by global frame f: sampled points (F, n, 3) (raw, not centred),
    centroids (F, 3), IMU orientation (F, S, 4) xyzw and world acceleration (F, S, 3) on frame
    stamps, skeleton (F, 24, 3), activity (F,), observed (F,) whether the person had points.
    `track` (F,) names the track of each frame; `scene` and `person` (F,) where it came from;
    `time` (F,) the frame index inside its scene (same time -> same LiDAR frame).
    `imu_vectors` (F, C), when given, are ready per-frame IMU encoder inputs used as they are
    (the official LIPD pickle); otherwise IMU windows are made with `imu_features`.
    `perceived` (F,), when given, marks frames whose points are the runtime perception's track
    points (`despite.perceived`) rather than the person's ground-truth returns.
    """

    points: FloatArray
    centroids: F64Array
    orientation: F64Array
    acceleration: F64Array
    skeleton: FloatArray
    activity: I64Array
    observed: NDArray[np.bool_]
    track: I64Array
    scene: I64Array
    person: I64Array
    time: I64Array
    imu_vectors: FloatArray | None = None
    perceived: NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        """Number of stored frames."""
        return len(self.track)

    def window_starts(self, window_frames: int, *, stride: int = 1) -> I64Array:
        """Global start frames of the windows inside one track with enough observed frames."""
        n = len(self)
        if n < window_frames:
            return np.zeros(0, dtype=np.int64)
        starts = np.arange(0, n - window_frames + 1, dtype=np.int64)
        same_track = self.track[starts] == self.track[starts + window_frames - 1]
        contiguous = self.time[starts + window_frames - 1] - self.time[starts] == window_frames - 1
        observed = np.convolve(
            self.observed.astype(np.int64), np.ones(window_frames, np.int64), mode="valid"
        )[: len(starts)]
        keep = same_track & contiguous & (observed >= MIN_OBSERVED_SHARE * window_frames)
        keep &= self.observed[starts]  # start on an observed frame (runtime windows do too)
        starts = starts[keep]
        first_of_track = np.r_[True, self.track[starts[1:]] != self.track[starts[:-1]]]
        phase = starts - np.maximum.accumulate(np.where(first_of_track, starts, 0))
        kept: I64Array = starts[phase % stride == 0]
        return kept

    def save(self, path: Path, spec: WindowSpec) -> None:
        """Write a compressed .npz shard tagged with what its frames depend on (not centring)."""
        arrays: dict[str, Any] = {"spec": np.array(shard_key(spec)), **self.arrays()}
        tmp = Path(path).with_name(f".{Path(path).stem}.{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)  # atomic: concurrent DDP ranks never read a half-written shard

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        """All per-frame arrays by field name (fields that are None left out)."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {name: value for name, value in fields.items() if value is not None}

    @classmethod
    def load(cls, path: Path, spec: WindowSpec) -> FrameStore:
        """Read a shard written by `save`; raise DataError if it was built for another spec."""
        try:
            with np.load(path) as data:
                stored = str(data["spec"])
                arrays = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        except (OSError, KeyError, ValueError) as err:
            raise DataError(f"cannot read shard {path}: {err}") from err
        if stored != shard_key(spec):
            raise DataError(f"shard {path} was built for {stored}, not {shard_key(spec)}")
        return cls(**arrays)

    @classmethod
    def concat(cls, stores: Sequence[FrameStore]) -> FrameStore:
        """Join stores, renumbering tracks so they stay distinct."""
        if not stores:
            raise DataError("no frames to concatenate")
        offset = 0
        names = set(stores[0].arrays())
        if any(set(store.arrays()) != names for store in stores):
            raise DataError("cannot join stores with and without ready IMU vectors")
        parts: dict[str, list[np.ndarray[Any, Any]]] = {n: [] for n in names}
        for store in stores:
            for name, array in store.arrays().items():
                parts[name].append(array + offset if name == "track" else array)
            offset += int(store.track.max()) + 1 if len(store) else 0
        return cls(**{name: np.concatenate(arrays) for name, arrays in parts.items()})


def person_frames(
    scene: Any, person: Any, spec: WindowSpec, *, scene_index: int
) -> FrameStore | None:
    """Frames of one simulated person who wears the layout's IMUs, over the frames the IMUs cover.

    IMU streams are resampled onto the LiDAR frame stamps with their reported (offset, jittered)
    stamps, as the runtime receives them. Returns None for bystanders and uncovered people.
    """
    layout = get_layout(spec.layout)
    if person.identity is None or not person.imu:
        return None
    stamps = np.asarray(scene.frame_stamps, dtype=np.float64)
    missing = [s for s in layout.sites if s not in person.imu]
    if missing:
        raise DataError(f"person {person.person_id} lacks IMU sites {missing} of {layout.name}")
    lo, hi = -np.inf, np.inf
    for site in layout.sites:
        lo, hi = max(lo, person.imu[site].stamps[0]), min(hi, person.imu[site].stamps[-1])
    frames = np.flatnonzero((stamps >= lo) & (stamps <= hi) & np.asarray(person.present, bool))
    if len(frames) == 0:
        return None
    orientation, acceleration = [], []
    for site in layout.sites:
        stream = person.imu[site]
        keep = np.r_[True, np.diff(stream.stamps) > 0]  # strictly increasing for resampling
        resampled = resample_imu(
            stream.stamps[keep],
            stream.orientation_xyzw[keep],
            stream.specific_force[keep],
            stamps[frames],
            frame_period=1.0 / spec.frame_rate_hz,
        )
        orientation.append(resampled.orientation_xyzw)
        acceleration.append(resampled.world_acceleration)
    n = spec.points_per_frame
    sampled: list[FloatArray | None] = []
    centroids = np.zeros((len(frames), 3))
    observed = np.zeros(len(frames), dtype=bool)
    for k, t in enumerate(frames):
        cloud = person.points[t]
        if len(cloud) == 0:
            sampled.append(None)
            continue
        frame_points, centroids[k] = sample_frame(cloud, n)
        sampled.append(frame_points)
        observed[k] = True
    if not observed.any():
        return None
    filled = np.stack(fill_missing_frames(sampled))
    # unobserved frames take the centroid of the frame they were filled from
    source = np.maximum.accumulate(np.where(observed, np.arange(len(frames)), -1))
    source = np.where(source < 0, np.argmax(observed), source)
    centroids = centroids[source]
    count = len(frames)
    return FrameStore(
        points=filled.astype(np.float32),
        centroids=centroids,
        orientation=np.stack(orientation, axis=1),
        acceleration=np.stack(acceleration, axis=1),
        skeleton=np.asarray(person.skeleton, np.float32)[frames],
        activity=np.asarray(person.activity, np.int64)[frames],
        observed=observed,
        track=np.zeros(count, np.int64),  # one track; `concat` renumbers
        scene=np.full(count, scene_index, np.int64),
        person=np.full(count, int(person.person_id), np.int64),
        time=frames.astype(np.int64),
    )


def scene_frames(scene: Any, spec: WindowSpec, *, scene_index: int) -> FrameStore:
    """Frames of every IMU-wearing person of one simulated scene (one track per person)."""
    stores = []
    for person in scene.people:
        store = person_frames(scene, person, spec, scene_index=scene_index)
        if store is not None:
            stores.append(store)
    if not stores:
        raise DataError(f"scene {scene_index} has no person with {spec.layout} wearables in view")
    return FrameStore.concat(stores)


@dataclass(frozen=True)
class Augmentation:
    """Official DeSPITE training augmentation, one draw per window and modality."""

    translate: float = 0.3  # U(-t, t) per axis, metres
    point_noise: float = 0.005  # Gaussian sigma per point, metres
    scale: tuple[float, float] = (0.7, 1.5)  # after the translation
    imu_noise: float = 0.01  # Gaussian sigma on every IMU channel
    imu_scale: tuple[float, float] = (0.95, 1.05)

    def points(self, windows: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Augment (B, T, N, 3) point or joint windows: translate, jitter, then scale."""
        b = windows.shape[0]
        shift = rng.uniform(-self.translate, self.translate, (b, 1, 1, 3))
        noise = rng.normal(0.0, self.point_noise, windows.shape)
        scale = rng.uniform(*self.scale, (b, 1, 1, 1))
        out: FloatArray = ((windows + shift + noise) * scale).astype(np.float32)
        return out

    def imu(self, windows: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Augment (B, T, C) IMU feature windows: Gaussian jitter then one scale per window."""
        noise = rng.normal(0.0, self.imu_noise, windows.shape)
        scale = rng.uniform(*self.imu_scale, (windows.shape[0], 1, 1))
        out: FloatArray = ((windows + noise) * scale).astype(np.float32)
        return out


def centre_skeleton(joints: FloatArray, centring: Centring) -> FloatArray:
    """Skeleton window (T, 24, 3) centred like the point cloud: pelvis per frame or window mean."""
    pelvis = joints[:, PELVIS, :].astype(np.float64)
    offset = pelvis[:, None, :] if centring == "frame" else pelvis.mean(axis=0)[None, None, :]
    out: FloatArray = (joints - offset).astype(np.float32)
    return out


def make_batch(
    store: FrameStore,
    starts: I64Array,
    spec: WindowSpec,
    modalities: Sequence[str],
    *,
    augment: Augmentation | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, FloatArray]:
    """Encoder inputs for windows starting at global frames `starts`, keyed by modality."""
    t = spec.window_frames
    idx = starts[:, None] + np.arange(t)[None, :]
    batch: dict[str, FloatArray] = {}
    if ModalityType.POINTCLOUD in modalities:
        batch[ModalityType.POINTCLOUD] = np.stack(
            [assemble_window(store.points[i], store.centroids[i], spec.centring) for i in idx]
        )
    if ModalityType.IMU in modalities:
        batch[ModalityType.IMU] = (
            imu_features(store.orientation[idx], store.acceleration[idx])
            if store.imu_vectors is None
            else store.imu_vectors[idx]
        )
    if ModalityType.SKELETON in modalities:
        batch[ModalityType.SKELETON] = np.stack(
            [centre_skeleton(store.skeleton[i], spec.centring) for i in idx]
        )
    if augment is not None:
        if rng is None:
            raise DataError("augmentation needs a random generator")
        for modality in (ModalityType.POINTCLOUD, ModalityType.SKELETON):
            if modality in batch:
                batch[modality] = augment.points(batch[modality], rng)
        if ModalityType.IMU in batch:
            batch[ModalityType.IMU] = augment.imu(batch[ModalityType.IMU], rng)
    return batch


def window_labels(store: FrameStore, starts: I64Array, spec: WindowSpec) -> I64Array:
    """Activity label of each window: the label of its middle frame (start + T/2, official)."""
    labels: I64Array = store.activity[starts + spec.window_frames // 2]
    return labels
