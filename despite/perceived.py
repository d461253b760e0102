"""Training frames cut by the runtime's own perception: what the exported encoders will see.

Every frame of a simulated scene goes through `rt_reid.runtime.perception.LidarPerception`
(background, ground, clustering, tracker) exactly as at run time. Each confirmed track is
associated with the ground-truth people present (Hungarian on horizontal track-to-pelvis distance,
0.5 m gate); a run of consecutive frames in which one track holds one wearer becomes a training
track whose points are the cluster points the runtime would encode (with its occlusions, merges,
splits, partial bodies and missed frames), and whose IMU and skeleton are that wearer's. Frames are
sampled and filled with the same `rt_reid.runtime.features` functions
`rt_reid.runtime.windows.TrackWindows` uses, so a window cut from these frames equals the runtime's
window of that track (tested).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from despite.windows import FrameStore, WindowSpec, person_frames
from rt_reid.arrays import FloatArray
from rt_reid.runtime.features import fill_missing_frames, sample_frame
from rt_reid.runtime.perception import LidarPerception, PerceptionParams
from rt_reid_sim.scene import room_perception_params

GATE_M = 0.5  # track centroid to pelvis, horizontal
MIN_POINTS = 8  # as config/reid.yaml windows.min_points: fewer points = not observed
MIN_RUN_FRAMES = 12  # shorter associations cannot hold a half-observed 24-frame window anyway


def perceive_scene(
    scene: Any, params: PerceptionParams, *, gate_m: float = GATE_M
) -> dict[tuple[int, int], dict[int, FloatArray | None]]:
    """Run the runtime's perception on every frame; (track id, person id) -> {frame: points}.

    Only confirmed tracks associated with a present person within `gate_m` are kept; points are
    None where the track was not observed (coasting) or had fewer than MIN_POINTS points.
    """
    perception = LidarPerception(params=params)
    pelvis = np.stack([p.skeleton[:, 0, :2] for p in scene.people], axis=1)  # (T, P, 2)
    present = np.stack([p.present for p in scene.people], axis=1)
    runs: dict[tuple[int, int], dict[int, FloatArray | None]] = defaultdict(dict)
    for t, stamp in enumerate(scene.frame_stamps):
        result = perception.process(scene.frame_points(t), float(stamp))
        tracks = [tr for tr in result.tracks if tr.confirmed]
        people = np.flatnonzero(present[t])
        if not tracks or len(people) == 0:
            continue
        xy = np.array([tr.position[:2] for tr in tracks])
        distance = np.linalg.norm(xy[:, None, :] - pelvis[t, people][None, :, :], axis=2)
        rows, cols = linear_sum_assignment(np.where(distance <= gate_m, distance, 1e6))
        for r, c in zip(rows, cols, strict=True):
            if distance[r, c] > gate_m:
                continue
            points = tracks[r].points
            observed = points is not None and len(points) >= MIN_POINTS
            runs[(tracks[r].track_id, int(people[c]))][t] = (
                np.asarray(points, np.float32) if observed else None
            )
    return dict(runs)


def perceived_frames(
    scene: Any,
    spec: WindowSpec,
    *,
    scene_index: int,
    params: PerceptionParams | None = None,
) -> tuple[FrameStore | None, FrameStore | None]:
    """(perceived, ground-truth-cut) frames of the scene's wearers; either may be None.

    The ground-truth-cut frames (each person's own labelled returns) are kept as augmentation.
    """
    truth: dict[int, FrameStore] = {}
    for person in scene.people:
        store = person_frames(scene, person, spec, scene_index=scene_index)
        if store is not None:
            truth[person.person_id] = store
    if not truth:
        return None, None
    runs = perceive_scene(scene, params if params is not None else room_perception_params(scene))
    segments: list[FrameStore] = []
    for (_track, person), frames in sorted(runs.items()):
        if person not in truth:
            continue  # a bystander's track: no IMU to pair with
        gt = truth[person]
        row_of = {int(t): k for k, t in enumerate(gt.time)}
        times = np.array(sorted(t for t in frames if t in row_of), dtype=np.int64)
        if len(times) == 0:
            continue
        breaks = np.flatnonzero(np.diff(times) != 1) + 1
        for run in np.split(times, breaks):
            segment = _segment(gt, [row_of[int(t)] for t in run], [frames[int(t)] for t in run],
                               spec)  # fmt: skip
            if segment is not None:
                segments.append(segment)
    perceived = FrameStore.concat(segments) if segments else None
    return perceived, FrameStore.concat(list(truth.values()))


def _segment(
    gt: FrameStore, rows: list[int], clouds: list[FloatArray | None], spec: WindowSpec
) -> FrameStore | None:
    """One track-person run: the track's sampled cluster points with the wearer's IMU/skeleton."""
    observed = np.array([c is not None for c in clouds])
    if len(rows) < MIN_RUN_FRAMES or not observed.any():
        return None
    sampled: list[FloatArray | None] = []
    centroids = np.zeros((len(rows), 3))
    for k, cloud in enumerate(clouds):
        if cloud is None:
            sampled.append(None)
            continue
        points, centroids[k] = sample_frame(cloud, spec.points_per_frame)
        sampled.append(points)
    source = np.maximum.accumulate(np.where(observed, np.arange(len(rows)), -1))
    source = np.where(source < 0, np.argmax(observed), source)
    index = np.asarray(rows)
    arrays = {name: value[index] for name, value in gt.arrays().items()}
    arrays.update(
        points=np.stack(fill_missing_frames(sampled)).astype(np.float32),
        centroids=centroids[source],
        observed=observed,
        track=np.zeros(len(rows), np.int64),
    )
    return FrameStore(**arrays)
