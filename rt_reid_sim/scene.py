"""`simulate_scene`: people, their motion, LiDAR frames and IMU streams, deterministic by seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from numpy.typing import NDArray
from tqdm import tqdm

from rt_reid.arrays import F64Array, FloatArray, I64Array
from rt_reid.layouts import get_layout
from rt_reid.paths import find_data
from rt_reid.runtime.perception import PerceptionParams
from rt_reid_sim.body import BodyMesh, J, body_mesh, random_shape
from rt_reid_sim.config import SceneConfig
from rt_reid_sim.imu import ImuStream, Mount, device_stream, ideal_imus, make_mount, sample_times
from rt_reid_sim.lidar import PRESETS, Lidar, Scan, mix_edges, rotation_rpy
from rt_reid_sim.motion import PersonMotion, random_style
from rt_reid_sim.world import Planner, Room, make_room

NOISE_STREAM = 0x5EED  # second seed word of the per-frame LiDAR noise generator
IMU_STREAM = 0x1A0  # second seed word of the per-device IMU generators
EDGE_STREAM = 0xED6  # second seed word of the per-frame mixed-pixel generator


@dataclass
class SimPerson:
    """Ground truth of one simulated person (all geometry in the LiDAR frame)."""

    person_id: int
    identity: str | None
    present: NDArray[np.bool_]  # (T,)
    points: list[FloatArray]  # per frame (N_t, 3)
    skeleton: FloatArray  # (T, 24, 3)
    activity: I64Array  # (T,)
    imu: dict[str, ImuStream]
    height_m: float
    motion: PersonMotion = field(repr=False)
    mesh: BodyMesh = field(repr=False)
    reflectivity: float = 0.3
    mounts: dict[str, Mount] = field(default_factory=dict, repr=False)
    scan_times: F64Array = field(
        default_factory=lambda: np.zeros(0), repr=False
    )  # when the beam hit
    partner: int = -1  # person id of the partner walking side by side in step with them, or -1


@dataclass
class FrameReturns:
    """Per-ray result of one frame in LiDAR frame: xyz (B*C, 3) NaN where no return."""

    xyz: FloatArray
    labels: NDArray[np.int16]  # person id per ray, -1 = room / no return
    intensity: FloatArray
    ranges: FloatArray  # inf where no return


class SimScene:
    """An in-memory simulated scene; LiDAR frames are rebuilt on demand from stored person hits."""

    def __init__(
        self,
        config: SceneConfig,
        room: Room,
        lidar: Lidar,
        people: list[SimPerson],
        *,
        hits: list[tuple[I64Array, FloatArray, NDArray[np.int16], FloatArray]],
        noise_model: FrameNoise,
    ) -> None:
        self.config = config
        self.room = room
        self.lidar = lidar
        self.people = people
        self.lidar_pose: F64Array = lidar.pose
        self.frame_stamps: F64Array = (
            config.start_time_s + np.arange(config.frames) / config.frame_rate_hz
        )
        self._hits = hits
        self._noise = noise_model

    def frame_returns(self, t: int) -> FrameReturns:
        """Frame t as a full range image with noise, dropout and range limits applied."""
        scan = self.lidar.static_scan()
        rays, ranges, labels, intensity = self._hits[t]
        scan.ranges[rays] = ranges
        scan.labels[rays] = labels
        scan.intensity[rays] = intensity
        return finish_scan(scan, self.lidar, self._noise, t)

    def frame_points(self, t: int) -> FloatArray:
        """All finite returns of frame t (room and people) in the LiDAR frame, (N, 3) float32."""
        xyz = self.frame_returns(t).xyz
        points: FloatArray = xyz[np.isfinite(xyz[:, 0])]
        return points

    def body_meshes(self, t: int) -> list[tuple[int, F64Array, I64Array]]:
        """(person id, vertices in the LiDAR frame, triangles) of everyone present at frame t."""
        rotation, origin = self.lidar_pose[:3, :3], self.lidar_pose[:3, 3]
        out = []
        for person in self.people:
            if person.present[t]:
                rot, pos = person.motion.evaluate(np.array([person.scan_times[t]]))
                vertices = (person.mesh.pose(rot[0], pos[0]) - origin) @ rotation
                out.append((person.person_id, vertices, person.mesh.triangles))
        return out

    def room_mesh(self) -> tuple[F64Array, I64Array]:
        """Static room mesh (vertices in the LiDAR frame, triangles)."""
        vertices, triangles, _ = self.room.mesh()
        rotation, origin = self.lidar_pose[:3, :3], self.lidar_pose[:3, 3]
        return (vertices - origin) @ rotation, triangles


NOISE_TABLE = 1 << 20


class FrameNoise:
    """Per-frame range noise and dropout of any subset of rays, reproducible by (seed, frame).

    One table of Gaussian and uniform draws per scene; frame t reads it at a seeded random shift,
    so the noise of a few rays costs as little as the noise of all of them.
    """

    def __init__(self, cfg: SceneConfig) -> None:
        rng = np.random.default_rng([cfg.seed, NOISE_STREAM])
        self._normal = rng.standard_normal(NOISE_TABLE, dtype=np.float32) * np.float32(
            cfg.range_noise_m
        )
        self._keep = rng.random(NOISE_TABLE, dtype=np.float32) >= np.float32(cfg.dropout)
        self._shifts = np.random.default_rng([cfg.seed, NOISE_STREAM, 1]).integers(
            0, NOISE_TABLE, size=(cfg.frames, 2)
        )

    def __call__(self, t: int, rays: I64Array) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Range noise (m) and kept-return mask for `rays` of frame t."""
        noise: FloatArray = self._normal[(rays + self._shifts[t, 0]) % NOISE_TABLE]
        keep: NDArray[np.bool_] = self._keep[(rays + self._shifts[t, 1]) % NOISE_TABLE]
        return noise, keep


def _measure(
    lidar: Lidar, ranges: FloatArray, noise: FloatArray, keep: NDArray[np.bool_]
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Noisy ranges and validity (return kept, finite, within the sensor's range limits)."""
    noisy = ranges + noise
    valid = keep & np.isfinite(noisy)
    valid &= (noisy >= lidar.preset.min_range) & (noisy <= lidar.preset.max_range)
    return noisy, valid


def finish_scan(scan: Scan, lidar: Lidar, noise_model: FrameNoise, t: int) -> FrameReturns:
    """Apply range noise, dropout and min/max range (seeded per frame) and convert to xyz."""
    noise, keep = noise_model(t, np.arange(len(scan.ranges)))
    noisy, valid = _measure(lidar, scan.ranges, noise, keep)
    ranges = np.where(valid, noisy, np.float32(np.inf)).astype(np.float32)
    xyz = (lidar.directions * np.where(valid, noisy, np.nan)[:, None]).astype(np.float32)
    labels = np.where(valid, scan.labels, -1).astype(np.int16)
    return FrameReturns(xyz, labels, np.where(valid, scan.intensity, 0).astype(np.float32), ranges)


def _identities(count: int, rng: np.random.Generator) -> list[str]:
    """Random hex words (seeded): they say nothing about who wears them."""
    names: list[str] = []
    while len(names) < count:
        name = f"w{int(rng.integers(16**8)):08x}"
        if name not in names:  # a list, not a set: no dependence on string hashing
            names.append(name)
    return names


def simulate_scene(cfg: SceneConfig, *, progress: bool = False) -> SimScene:
    """Simulate `cfg` in memory: bodies, motion, LiDAR returns per person, IMU streams."""
    seeds = np.random.SeedSequence(cfg.seed).spawn(4)
    room_rng, people_rng, plan_rng, id_rng = (np.random.default_rng(s) for s in seeds)
    room = make_room(cfg, room_rng)
    shapes = [random_shape(people_rng, cfg.body_spread) for _ in range(cfg.people)]
    styles = [random_style(people_rng, shape, cfg.motion_spread) for shape in shapes]
    plan = Planner(cfg, room, styles, plan_rng).run()
    motions = [
        PersonMotion(shape, style, segments, trajectory)
        for shape, style, segments, trajectory in zip(
            shapes, styles, plan.segments, plan.trajectories, strict=True
        )
    ]
    bystanders = set(
        people_rng.choice(cfg.people, size=cfg.bystander_count, replace=False).tolist()
    )
    wearers = [i for i in range(cfg.people) if i not in bystanders]
    identities = dict(zip(wearers, _identities(len(wearers), id_rng), strict=True))

    pose = np.eye(4)
    pose[:3, :3] = rotation_rpy(*np.deg2rad(cfg.lidar_rpy_deg))
    pose[:3, 3] = cfg.lidar_position
    lidar = Lidar(PRESETS[cfg.lidar], cfg.columns, pose)
    lidar.set_room(*room.mesh())

    frame_times = np.arange(cfg.frames) / cfg.frame_rate_hz
    people: list[SimPerson] = []
    posed: list[tuple[F64Array, F64Array]] = []
    for i, motion in enumerate(motions):
        _, positions = motion.evaluate(frame_times)
        pelvis = positions[:, J["pelvis"]]
        skeleton = ((positions - pose[:3, 3]) @ pose[:3, :3]).astype(np.float32)
        # The beam sweeps the room during the frame: pose the body when it sweeps past the person.
        pelvis_lidar = (pelvis - pose[:3, 3]) @ pose[:3, :3]
        scan_times: F64Array = frame_times + lidar.sweep_offset(pelvis_lidar, cfg.frame_rate_hz)
        posed.append(motion.evaluate(scan_times))
        people.append(
            SimPerson(
                person_id=i,
                identity=identities.get(i),
                present=room.inside(pelvis[:, 0], pelvis[:, 1]),
                points=[],
                skeleton=skeleton,
                activity=motion.labels(frame_times),
                imu={},
                height_m=motion.shape.height,
                motion=motion,
                mesh=body_mesh(motion.shape),
                reflectivity=motion.shape.reflectivity,
                scan_times=scan_times,
                partner=plan.partners[i],
            )
        )

    hits: list[tuple[I64Array, FloatArray, NDArray[np.int16], FloatArray]] = []
    noise_model = FrameNoise(cfg)
    frames = range(cfg.frames)
    for t in tqdm(frames, desc="ray casting", unit="frame", disable=not progress):
        present = [p for p in people if p.present[t]]
        bodies = [
            (p.mesh.pose(posed[p.person_id][0][t], posed[p.person_id][1][t]), p.mesh.triangles,
             p.reflectivity)
            for p in present
        ]  # fmt: skip
        scan = lidar.scan(bodies)
        ids = np.array([p.person_id for p in present] + [-1], dtype=np.int16)
        scan.labels = ids[scan.labels]  # body index -> person id (-1 stays -1)
        touched = scan.ranges < lidar.static_ranges  # bodies in front of the room
        mix_edges(
            scan, cfg.columns, cfg.mixed_pixels, np.random.default_rng([cfg.seed, EDGE_STREAM, t])
        )
        rays = np.flatnonzero(touched)
        hits.append((rays, scan.ranges[rays], scan.labels[rays], scan.intensity[rays]))
        noise, keep = noise_model(t, rays)
        noisy, valid = _measure(lidar, scan.ranges[rays], noise, keep)
        xyz = (lidar.directions[rays] * noisy[:, None]).astype(np.float32)
        owner = np.where(valid, scan.labels[rays], -1)
        for p in people:
            p.points.append(xyz[owner == p.person_id] if p.present[t]
                            else np.zeros((0, 3), dtype=np.float32))  # fmt: skip

    sites = get_layout(cfg.layout).sites
    for i in tqdm(wearers, desc="IMU synthesis", unit="person", disable=not progress):
        person = people[i]
        person_rng = np.random.default_rng([cfg.seed, IMU_STREAM, i])
        mounts = [
            make_mount(site, person.motion.shape, person_rng, cfg.imu_mount_error_deg)
            for site in sites
        ]
        times = sample_times(cfg, person_rng)  # the wearer's devices sample on one shared grid
        for k, ideal in enumerate(ideal_imus(person.motion, mounts, times)):
            device_rng = np.random.default_rng([cfg.seed, IMU_STREAM, i, k])
            person.mounts[sites[k]] = mounts[k]
            person.imu[sites[k]] = device_stream(ideal, times, cfg, device_rng)
    return SimScene(cfg, room, lidar, people, hits=hits, noise_model=noise_model)


def room_perception_params(scene: SimScene, config_path: Path | None = None) -> PerceptionParams:
    """The perception parameters of a parameter file with ROI and floor plane set to the room.

    These are the site-dependent values an installer sets (config/reid.yaml says so); everything
    else is the file's. Default file: the shipped config/reid.yaml.
    """
    path = config_path if config_path is not None else find_data("config/reid.yaml")
    data = yaml.safe_load(Path(path).read_text("utf-8"))
    section = data["reid_node"]["ros__parameters"]["perception"]
    (sx, sy), height = scene.config.room_size, scene.config.room_height
    world_to_lidar = np.linalg.inv(scene.lidar_pose)
    corners = np.array(
        [[a * sx / 2, b * sy / 2, z, 1.0] for a in (-1, 1) for b in (-1, 1) for z in (0.0, height)]
    )
    local = (world_to_lidar @ corners.T).T[:, :3]
    low, high = local.min(axis=0), local.max(axis=0)
    section["roi"].update(
        x_min=float(low[0]), x_max=float(high[0]), y_min=float(low[1]), y_max=float(high[1]),
        z_min=float(low[2]) - 0.2, z_max=float(high[2]) + 0.2,
    )  # fmt: skip
    # Floor z = 0 in the room -> plane n.p + d = 0 in the LiDAR frame (normal up).
    normal = scene.lidar_pose[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    section["ground"]["plane"] = [*map(float, normal), float(scene.lidar_pose[2, 3])]
    return PerceptionParams.from_dict(section)
