"""The room (walls, door, corridor, furniture, pillars) and a crowd planner that moves people in it.

The planner steps every person at 20 Hz: tasks (walk or jog to a spot, do an activity there, sit on
a chair, follow a partner side by side, leave through the door, come back) drive a social-force
model on top of geodesic distance fields (Dijkstra on a 0.1 m grid around the furniture), with hard
constraints so nobody walks through furniture or another person. The recorded paths are smoothed
into cubic splines, so the motion stays an analytic function of time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.interpolate import CubicSpline
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra

from rt_reid.arrays import F64Array, I64Array
from rt_reid_sim.config import SceneConfig
from rt_reid_sim.motion import JOG_SPEED_FACTOR, Segment, Style, Trajectory, activity_params

GRID_M = 0.1
WALKABLE_CLEARANCE = 0.28  # graph nodes: at least this far from furniture and walls
BODY_RADIUS = 0.24  # hard constraint against furniture and walls
PERSON_MIN_DISTANCE = 0.48  # shoulders may touch, bodies may not overlap
CORRIDOR_DEPTH = 2.5
DOOR_WIDTH = 1.2
DOOR_HEIGHT = 2.1
WALL = 0.15
PLANNER_DT = 0.05
MARGIN_S = 2.0  # the planner starts this long before the first frame and ends after the last
MIN_SEGMENT_S = 1.25  # shorter activity segments are absorbed (blends need 2 x 0.6 s)
CHAIR_SEAT = 0.46


@dataclass(frozen=True)
class Box:
    """Axis-aligned box (min corner, max corner) with a LiDAR reflectivity."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    reflectivity: float


@dataclass(frozen=True)
class Chair:
    """A chair: seat centre (x, y) and the yaw a seated person faces."""

    x: float
    y: float
    facing: float


@dataclass
class Room:
    """Static geometry in the room frame (floor at z = 0) plus footprints for navigation."""

    width: float
    depth: float
    height: float
    door_y: float
    boxes: list[Box]
    footprints: list[tuple[float, float, float, float]]  # x0, y0, x1, y1 of obstacles
    chairs: list[Chair]

    @property
    def corridor(self) -> tuple[float, float, float, float]:
        """Corridor behind the door (x0, y0, x1, y1)."""
        x0 = self.width / 2
        return x0, self.door_y - 2.0, x0 + CORRIDOR_DEPTH, self.door_y + 2.0

    def inside(self, x: F64Array, y: F64Array) -> NDArray[np.bool_]:
        """True where (x, y) lies inside the room proper (not the corridor)."""
        result: NDArray[np.bool_] = (np.abs(x) < self.width / 2) & (np.abs(y) < self.depth / 2)
        return result

    def mesh(self) -> tuple[F64Array, I64Array, F64Array]:
        """Vertices (V, 3), triangles (F, 3) and per-triangle reflectivity of all static boxes."""
        corners = np.array(
            [[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.float64
        )
        faces = np.array(
            [[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
             [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]]
        )  # fmt: skip
        vertices, triangles, reflectivity = [], [], []
        for k, box in enumerate(self.boxes):
            lo, hi = np.asarray(box.lo), np.asarray(box.hi)
            vertices.append(lo + corners * (hi - lo))
            triangles.append(faces + 8 * k)
            reflectivity.append(np.full(12, box.reflectivity))
        return np.concatenate(vertices), np.concatenate(triangles), np.concatenate(reflectivity)


def _structure(width: float, depth: float, height: float, door_y: float) -> list[Box]:
    """Floor, ceiling, walls with a door, and the corridor behind it."""
    hx, hy = width / 2, depth / 2
    cy0, cx1, cy1 = door_y - 2.0, hx + CORRIDOR_DEPTH, door_y + 2.0
    y_lo, y_hi = min(-hy, cy0) - WALL, max(hy, cy1) + WALL
    d0, d1 = door_y - DOOR_WIDTH / 2, door_y + DOOR_WIDTH / 2
    return [
        Box((-hx - WALL, y_lo, -0.1), (cx1 + WALL, y_hi, 0.0), 0.25),  # floor
        Box((-hx - WALL, y_lo, height), (cx1 + WALL, y_hi, height + 0.1), 0.7),  # ceiling
        Box((-hx - WALL, -hy - WALL, 0.0), (-hx, hy + WALL, height), 0.6),
        Box((-hx, -hy - WALL, 0.0), (hx + WALL, -hy, height), 0.6),
        Box((-hx, hy, 0.0), (hx + WALL, hy + WALL, height), 0.6),
        Box((hx, -hy, 0.0), (hx + WALL, d0, height), 0.6),
        Box((hx, d1, 0.0), (hx + WALL, hy, height), 0.6),
        Box((hx, d0, DOOR_HEIGHT), (hx + WALL, d1, height), 0.6),
        Box((cx1, cy0, 0.0), (cx1 + WALL, cy1, height), 0.5),  # corridor end wall
        Box((hx + WALL, cy0 - WALL, 0.0), (cx1, cy0, height), 0.5),
        Box((hx + WALL, cy1, 0.0), (cx1, cy1 + WALL, height), 0.5),
    ]


def make_room(cfg: SceneConfig, rng: np.random.Generator) -> Room:
    """Random furnished room: pillars, tables, shelves along walls and chairs facing the room."""
    width, depth = cfg.room_size
    hx, hy = width / 2, depth / 2
    door_y = float(rng.uniform(-hy + 1.5, hy - 1.5))
    boxes = _structure(width, depth, cfg.room_height, door_y)
    footprints: list[tuple[float, float, float, float]] = []
    chairs: list[Chair] = []
    lidar_xy = np.asarray(cfg.lidar_position[:2])
    door = np.array([hx, door_y])

    def free(x0: float, y0: float, x1: float, y1: float, gap: float) -> bool:
        """True if the rectangle keeps `gap` from furniture, the sensor and the door."""
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        if np.linalg.norm(centre - lidar_xy) < 1.4 or np.linalg.norm(centre - door) < 2.2:
            return False
        return all(
            x0 - gap >= f[2] or x1 + gap <= f[0] or y0 - gap >= f[3] or y1 + gap <= f[1]
            for f in footprints
        )

    def place(kind: str, attempts: int = 60) -> None:
        """Try to place one piece of furniture of `kind` at a random free spot."""
        for _ in range(attempts):
            if kind == "pillar":
                size = rng.uniform(0.3, 0.5)
                x, y = rng.uniform(-hx + 1.5, hx - 1.5), rng.uniform(-hy + 1.5, hy - 1.5)
                rect = (x - size / 2, y - size / 2, x + size / 2, y + size / 2)
            elif kind == "table":
                sx, sy = rng.uniform(1.2, 1.8), rng.uniform(0.7, 0.9)
                sx, sy = (sx, sy) if rng.random() < 0.5 else (sy, sx)
                x, y = rng.uniform(-hx + 1.4, hx - 1.4), rng.uniform(-hy + 1.4, hy - 1.4)
                rect = (x - sx / 2, y - sy / 2, x + sx / 2, y + sy / 2)
            else:  # shelf or chair against a wall
                wall = int(rng.integers(0, 3))  # -x, -y, +y (the +x wall has the door)
                along = rng.uniform(1.2, 2.0) if kind == "shelf" else 0.46
                deep = 0.4 if kind == "shelf" else 0.46
                off = 0.0 if kind == "shelf" else 0.3
                if wall == 0:
                    y = rng.uniform(-hy + 0.3 + along / 2, hy - 0.3 - along / 2)
                    rect = (-hx + off, y - along / 2, -hx + off + deep, y + along / 2)
                else:
                    x = rng.uniform(-hx + 0.3 + along / 2, hx - 1.0 - along / 2)
                    s = -1 if wall == 1 else 1
                    ys = sorted((s * hy - s * off, s * hy - s * (off + deep)))
                    rect = (x - along / 2, ys[0], x + along / 2, ys[1])
            gap = 1.0 if kind != "chair" else 0.8
            if not free(*rect, gap):
                continue
            x0, y0, x1, y1 = rect
            footprints.append(rect)
            if kind == "pillar":
                boxes.append(Box((x0, y0, 0.0), (x1, y1, cfg.room_height), 0.55))
            elif kind == "shelf":
                boxes.append(Box((x0, y0, 0.0), (x1, y1, 1.8), 0.45))
            elif kind == "table":
                boxes.append(Box((x0, y0, 0.71), (x1, y1, 0.75), 0.4))
                for lx, ly in ((x0, y0), (x0, y1 - 0.05), (x1 - 0.05, y0), (x1 - 0.05, y1 - 0.05)):
                    boxes.append(Box((lx, ly, 0.0), (lx + 0.05, ly + 0.05, 0.71), 0.3))
            else:
                centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
                facing = float(np.arctan2(-centre[1], -centre[0]))
                facing = round(facing / (np.pi / 2)) * (np.pi / 2)
                back = centre - 0.2 * np.array([np.cos(facing), np.sin(facing)])
                boxes.append(Box((x0, y0, CHAIR_SEAT - 0.05), (x1, y1, CHAIR_SEAT), 0.35))
                boxes.append(
                    Box((back[0] - 0.04 - 0.19 * abs(np.sin(facing)),
                         back[1] - 0.04 - 0.19 * abs(np.cos(facing)), CHAIR_SEAT),
                        (back[0] + 0.04 + 0.19 * abs(np.sin(facing)),
                         back[1] + 0.04 + 0.19 * abs(np.cos(facing)), 0.9), 0.35)
                )  # fmt: skip
                for lx, ly in ((x0, y0), (x0, y1 - 0.04), (x1 - 0.04, y0), (x1 - 0.04, y1 - 0.04)):
                    boxes.append(Box((lx, ly, 0.0), (lx + 0.04, ly + 0.04, CHAIR_SEAT - 0.05), 0.3))
                chairs.append(Chair(float(centre[0]), float(centre[1]), facing))
            return

    area = width * depth
    for _ in range(int(rng.integers(1, 3))):
        place("pillar")
    for _ in range(max(1, int(area // 60))):
        place("table")
    for _ in range(int(rng.integers(1, 3))):
        place("shelf")
    for _ in range(int(rng.integers(2, 5))):
        place("chair")
    footprints.append(
        (lidar_xy[0] - 0.3, lidar_xy[1] - 0.3, lidar_xy[0] + 0.3, lidar_xy[1] + 0.3)
    )  # the tripod under the sensor
    return Room(width, depth, cfg.room_height, door_y, boxes, footprints, chairs)


class NavGrid:
    """Occupancy, clearance and geodesic goal fields on a 0.1 m grid of the room and corridor."""

    def __init__(self, room: Room) -> None:
        hx, hy = room.width / 2, room.depth / 2
        _, cy0, cx1, cy1 = room.corridor
        self.origin = np.array([-hx, min(-hy, cy0)])
        self.shape = (
            int(np.ceil((cx1 + hx) / GRID_M)),
            int(np.ceil((max(hy, cy1) - self.origin[1]) / GRID_M)),
        )
        xs = self.origin[0] + (np.arange(self.shape[0]) + 0.5) * GRID_M
        ys = self.origin[1] + (np.arange(self.shape[1]) + 0.5) * GRID_M
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        open_space = (np.abs(gx) < hx) & (np.abs(gy) < hy)
        open_space |= (gx >= hx) & (gx < cx1) & (gy > cy0) & (gy < cy1)
        door = (np.abs(gx - hx) < 0.3) & (np.abs(gy - room.door_y) < DOOR_WIDTH / 2)
        open_space |= door
        for x0, y0, x1, y1 in room.footprints:
            open_space &= ~((gx > x0) & (gx < x1) & (gy > y0) & (gy < y1))
        # the wall between room and corridor, except the door
        wall = (np.abs(gx - hx - WALL / 2) < WALL / 2 + 0.05) & ~door
        open_space &= ~wall
        self.centres = np.stack([gx, gy], -1)
        self.clearance = ndimage.distance_transform_edt(open_space) * GRID_M
        self.clearance_grad = np.stack(np.gradient(self.clearance, GRID_M), -1)
        walkable = self.clearance >= WALKABLE_CLEARANCE
        labels, _ = ndimage.label(walkable)
        door_cell = self.cell(np.array([hx, room.door_y]))
        self.walkable = labels == labels[door_cell]
        self._node = -np.ones(self.shape, dtype=np.int64)
        self._node[self.walkable] = np.arange(int(self.walkable.sum()))
        self._graph = self._build_graph()
        self.goals: list[F64Array] = []
        self._fields: list[F64Array] = []
        self._directions: list[NDArray[np.float32]] = []

    def cell(self, xy: F64Array) -> tuple[int, int]:
        """Grid cell containing xy (clamped to the grid)."""
        i = np.clip(((xy - self.origin) / GRID_M).astype(int), 0, np.array(self.shape) - 1)
        return int(i[0]), int(i[1])

    def _build_graph(self) -> csr_matrix:
        """8-connected grid graph over walkable cells (edge weight = distance)."""
        rows, cols, weights = [], [], []
        nx, ny = self.shape
        for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1)):
            a = self._node[max(0, -dx) : nx - max(0, dx), max(0, -dy) : ny - max(0, dy)]
            b = self._node[
                max(0, dx) : nx + min(0, dx) or None, max(0, dy) : ny + min(0, dy) or None
            ]
            ok = (a >= 0) & (b >= 0)
            rows.append(a[ok])
            cols.append(b[ok])
            weights.append(np.full(int(ok.sum()), GRID_M * np.hypot(dx, dy)))
        n = int(self.walkable.sum())
        return coo_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        ).tocsr()

    def add_goals(self, goals: list[F64Array]) -> None:
        """Compute geodesic distance and descent direction fields for new goal points."""
        nodes = [self._node[self.cell(g)] for g in goals]
        distances = dijkstra(self._graph, directed=False, indices=nodes)
        _, nearest = ndimage.distance_transform_edt(~self.walkable, return_indices=True)
        for goal, dist in zip(goals, distances, strict=True):
            grid = np.full(self.shape, 1e3)
            grid[self.walkable] = np.minimum(dist, 1e3)
            filled = grid[nearest[0], nearest[1]]
            outside = ~self.walkable
            gap = np.linalg.norm(self.centres - self.centres[nearest[0], nearest[1]], axis=-1)
            filled[outside] += 3.0 * gap[outside]
            grad = np.stack(np.gradient(filled, GRID_M), -1)
            norm = np.linalg.norm(grad, axis=-1, keepdims=True)
            self.goals.append(np.asarray(goal, dtype=np.float64))
            self._fields.append(filled)
            self._directions.append((-grad / np.maximum(norm, 1e-9)).astype(np.float32))

    def distance(self, goal: int, xy: F64Array) -> float:
        """Geodesic distance from xy to goal `goal` (straight line in the last metre)."""
        straight = float(np.linalg.norm(self.goals[goal] - xy))
        return straight if straight < 1.0 else float(self._fields[goal][self.cell(xy)])

    def direction(self, goal: int, xy: F64Array) -> F64Array:
        """Unit direction to walk from xy towards goal `goal` around obstacles."""
        delta = self.goals[goal] - xy
        straight = float(np.linalg.norm(delta))
        if straight < 1.0:
            return delta / max(straight, 1e-9)
        direction: F64Array = self._directions[goal][self.cell(xy)].astype(np.float64)
        return direction

    def push_out(self, xy: F64Array) -> F64Array:
        """Move points (N, 2) that are closer than BODY_RADIUS to an obstacle back out."""
        out = xy.copy()
        for k in range(len(out)):
            cell = self.cell(out[k])
            gap = BODY_RADIUS - self.clearance[cell]
            if gap > 0:
                grad = self.clearance_grad[cell]
                norm = float(np.linalg.norm(grad))
                if norm > 1e-6:
                    out[k] += grad / norm * min(gap, 0.2)
        return out


@dataclass
class Task:
    """What a person is doing now; `kind` is goto, act, follow or away."""

    kind: str
    activity: str
    goal: int = -1
    until: float = np.inf
    facing: float = 0.0
    anchor: F64Array | None = None
    params: dict[str, float] = field(default_factory=dict)
    then: str = "act"
    pace: float = 1.0  # walking speed factor of this trip (cadence scales with its root)
    best_distance: float = np.inf
    progress_time: float = 0.0


@dataclass
class Agent:
    """Planner state of one person."""

    style: Style
    rng: np.random.Generator
    pos: F64Array
    yaw: float
    task: Task
    leader: int = -1
    side: float = 1.0
    enter_at: float = -np.inf
    leave_at: float = np.inf
    return_at: float = np.inf
    vel: F64Array = field(default_factory=lambda: np.zeros(2))
    phase: float = 0.0
    chained: bool = False
    segments: list[Segment] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """Planner output per person: activity timeline and root trajectory splines."""

    segments: list[list[Segment]]
    trajectories: list[Trajectory]
    partners: list[int]  # per person: the partner walking in step beside them, or -1


def _merge_short(segments: list[Segment]) -> list[Segment]:
    """Absorb segments shorter than MIN_SEGMENT_S into their predecessor (or successor)."""
    merged: list[Segment] = []
    for seg in segments:
        if merged and (seg.end - seg.start < MIN_SEGMENT_S or seg.kind == merged[-1].kind):
            last = merged[-1]
            merged[-1] = Segment(last.kind, last.start, seg.end, last.params)
        else:
            merged.append(seg)
    if len(merged) > 1 and merged[0].end - merged[0].start < MIN_SEGMENT_S:
        first, second = merged[0], merged[1]
        merged[:2] = [Segment(second.kind, first.start, second.end, second.params)]
    return merged


ACT_WEIGHTS: dict[str, float] = {
    "stand": 0.13, "stand_long": 0.07, "wave_one_arm": 0.07, "wave_both_arms": 0.05,
    "talk_gesture": 0.13, "squat": 0.07, "lunge": 0.06, "reach_up": 0.07, "jump": 0.05,
    "turn_in_place": 0.07, "bend_pick_up": 0.08,
}  # fmt: skip


class Planner:
    """Crowd simulation: tasks, social forces and hard constraints, recorded at 20 Hz."""

    def __init__(
        self, cfg: SceneConfig, room: Room, styles: list[Style], rng: np.random.Generator
    ) -> None:
        self.cfg = cfg
        self.room = room
        self.nav = NavGrid(room)
        self.rng = rng
        self._make_spots()
        self.agents = self._make_agents(styles)

    def _make_spots(self) -> None:
        """Goal spots: open floor spots, chair fronts, the door and corridor waiting spots."""
        nav, room = self.nav, self.room
        candidates = nav.centres[nav.walkable & (nav.clearance >= 0.5)]
        candidates = candidates[room.inside(candidates[:, 0], candidates[:, 1])]
        order = self.rng.permutation(len(candidates))
        spots: list[F64Array] = []
        for i in order:
            if all(np.linalg.norm(candidates[i] - s) >= 1.1 for s in spots):
                spots.append(candidates[i])
            if len(spots) >= 60:
                break
        self.open_spots = list(range(len(spots)))
        self.chair_spots: dict[int, int] = {}
        for k, chair in enumerate(room.chairs):
            front = np.array([chair.x, chair.y]) + 0.52 * np.array(
                [np.cos(chair.facing), np.sin(chair.facing)]
            )
            if nav.walkable[nav.cell(front)]:
                self.chair_spots[len(spots)] = k
                spots.append(front)
        cx0, cy0, cx1, cy1 = room.corridor
        self.corridor_spots = []
        for y in np.linspace(cy0 + 0.6, cy1 - 0.6, 4):
            for x in (cx0 + 1.1, cx1 - 0.6):
                if nav.walkable[nav.cell(np.array([x, y]))]:
                    self.corridor_spots.append(len(spots))
                    spots.append(np.array([x, y]))
        nav.add_goals(spots)
        self.reserved: dict[int, int] = {}

    def _make_agents(self, styles: list[Style]) -> list[Agent]:
        """Initial places, partners (people // 4 pairs), entry and exit times."""
        cfg, rng, n = self.cfg, self.rng, len(styles)
        agents: list[Agent] = []
        order = rng.permutation(n)
        pairs = n // 4
        leaders = {int(order[2 * k]): int(order[2 * k + 1]) for k in range(pairs)}
        followers = {f: lead for lead, f in leaders.items()}
        start = -MARGIN_S
        for i, style in enumerate(styles):
            agent_rng = np.random.default_rng(rng.integers(2**63))
            outside = False
            enter_at, leave_at, return_at = -np.inf, np.inf, np.inf
            if cfg.enter_leave and cfg.duration_s >= 20 and i not in leaders and i not in followers:
                draw = rng.random()
                if draw < 0.2:
                    outside, enter_at = True, float(rng.uniform(1.0, 0.4 * cfg.duration_s))
                elif draw < 0.4 and cfg.behaviour == "mixed":
                    leave_at = float(rng.uniform(0.4, 0.85) * cfg.duration_s)
                    if rng.random() < 0.5:
                        return_at = leave_at + float(rng.uniform(8.0, 20.0))
            task = Task("away", "stand")
            agent = Agent(style, agent_rng, np.zeros(2), float(rng.uniform(-np.pi, np.pi)), task,
                          enter_at=enter_at, leave_at=leave_at, return_at=return_at,
                          phase=float(rng.uniform(0, 2 * np.pi)))  # fmt: skip
            if i in followers:
                agent.leader = followers[i]
                agent.side = float(rng.choice([-1.0, 1.0]))
            pool = self.corridor_spots if outside else self.open_spots
            spot = self._free_spot(agent, pool, np.zeros(2), min_distance=0.0)
            if i in followers and followers[i] < i:
                lead = agents[followers[i]]
                beside = lead.pos + 0.65 * agent.side * np.array(
                    [-np.sin(lead.yaw), np.cos(lead.yaw)]
                )
                if self.nav.clearance[self.nav.cell(beside)] >= WALKABLE_CLEARANCE:
                    agent.pos, agent.yaw = beside, lead.yaw
                    spot = -1
            if spot >= 0:
                agent.pos = self.nav.goals[spot].copy()
                self.reserved[spot] = i
                task.goal = spot
            task.anchor = agent.pos.copy()
            task.until = enter_at if outside else start + float(agent.rng.uniform(0.5, 4.0))
            agent.segments.append(Segment("stand", start, start))
            agents.append(agent)
        return agents

    def _free_spot(self, agent: Agent, pool: list[int], here: F64Array, min_distance: float) -> int:
        """A random unreserved spot of `pool`, preferring spots at least `min_distance` away."""
        others = [a.pos for a in getattr(self, "agents", []) if a is not agent]
        unreserved = [s for s in pool if s not in self.reserved]
        spots = np.array([self.nav.goals[s] for s in unreserved]).reshape(-1, 2)
        crowd = np.array(others).reshape(-1, 2)
        gaps = np.linalg.norm(spots[:, None, :] - crowd[None, :, :], axis=-1)
        clear = (gaps > 0.9).all(axis=1)
        options = [s for s, ok in zip(unreserved, clear, strict=True) if ok]
        far_enough = np.linalg.norm(spots - here, axis=1) >= min_distance
        far = [s for s, ok, f in zip(unreserved, clear, far_enough, strict=True) if ok and f]
        choice = far or options or pool
        return int(choice[int(agent.rng.integers(len(choice)))])

    def _release(self, index: int) -> None:
        """Free the spots agent `index` had reserved."""
        for spot, owner in list(self.reserved.items()):
            if owner == index:
                del self.reserved[spot]

    def _start(self, index: int, task: Task, t: float) -> None:
        """Switch agent `index` to `task`, closing its current timeline segment."""
        agent = self.agents[index]
        agent.task = task
        kind = task.activity
        last = agent.segments[-1]
        if last.kind == kind and kind in ("stand", "walk", "jog") and not task.params:
            return
        agent.segments[-1] = Segment(last.kind, last.start, t, last.params)
        agent.segments.append(Segment(kind, t, t, dict(task.params)))

    def _goto(self, index: int, t: float, pool: list[int], then: str, jog: bool) -> None:
        """Send agent `index` to a free spot of `pool`, walking or jogging."""
        agent = self.agents[index]
        self._release(index)
        spot = self._free_spot(agent, pool, agent.pos, min_distance=2.0)
        self.reserved[spot] = index
        activity = "jog" if jog else "walk"
        pace = float(agent.rng.uniform(0.85, 1.12))
        task = Task("goto", activity, goal=spot, then=then, progress_time=t, pace=pace)
        self._start(index, task, t)

    def _act(
        self, index: int, t: float, kind: str | None = None, until: float | None = None
    ) -> None:
        """Start an activity (random, or copied from someone nearby 35 % of the time)."""
        agent = self.agents[index]
        rng = agent.rng
        if kind is None:
            busy = [
                a.task.activity for a in self.agents
                if a is not agent and a.task.kind == "act"
                and a.task.activity not in ("stand", "sit", "turn_in_place")
            ]  # fmt: skip
            if busy and rng.random() < 0.35:
                kind = str(busy[int(rng.integers(len(busy)))])
            else:
                names = list(ACT_WEIGHTS)
                weights = np.array([ACT_WEIGHTS[k] for k in names])
                kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        duration = {
            "stand": rng.uniform(2.0, 6.0), "stand_long": rng.uniform(15.0, 40.0),
            "turn_in_place": rng.uniform(1.5, 4.0), "sit": rng.uniform(8.0, 30.0),
        }.get(kind, rng.uniform(3.0, 10.0))  # fmt: skip
        kind = "stand" if kind == "stand_long" else kind
        facing = float(rng.uniform(-np.pi, np.pi))
        if kind == "talk_gesture":
            near = [a.pos for a in self.agents if a is not agent
                    and 0.5 < np.linalg.norm(a.pos - agent.pos) < 4.0]  # fmt: skip
            if near:
                delta = near[0] - agent.pos
                facing = float(np.arctan2(delta[1], delta[0]))
        if kind == "sit":
            chair = self.room.chairs[self.chair_spots[agent.task.goal]]
            facing, duration = chair.facing, max(duration, 2 * 1.5 + 2.0)
        params = activity_params(kind, rng, agent.style)
        end = t + float(duration) if until is None else until
        task = Task("act", kind, until=end, facing=facing, anchor=agent.pos.copy(), params=params)
        task.goal = agent.task.goal if agent.task.kind == "goto" else -1
        self._start(index, task, t)

    def _next(self, index: int, t: float) -> None:
        """Choose the next task of agent `index` whose current task has finished."""
        agent, rng = self.agents[index], self.agents[index].rng
        inside = bool(self.room.inside(agent.pos[:1], agent.pos[1:])[0])
        standing = self.cfg.behaviour == "standing"
        if agent.leader >= 0:
            lead = self.agents[agent.leader].task
            if lead.kind == "goto":
                self._release(index)
                self._start(index, Task("follow", lead.activity), t)
            elif standing:
                self._act(index, t, "stand", until=np.inf)
            else:
                same = lead.kind == "act" and rng.random() < 0.5 and lead.activity != "sit"
                self._act(index, t, lead.activity if same else None, until=max(lead.until, t + 1.0))
            return
        if not inside and t < agent.enter_at:
            self._start(
                index, Task("away", "stand", until=agent.enter_at, anchor=agent.pos.copy()), t
            )
            return
        if not inside and t >= agent.enter_at and t < agent.leave_at:
            self._goto(index, t, self.open_spots, "act", jog=False)
            return
        if t >= agent.leave_at:
            if inside:
                self._goto(index, t, self.corridor_spots, "away", jog=False)
                return
            if t < agent.return_at:
                task = Task("away", "stand", until=agent.return_at, anchor=agent.pos.copy())
                self._start(index, task, t)
                return
            agent.leave_at, agent.return_at = np.inf, np.inf
            self._goto(index, t, self.open_spots, "act", jog=False)
            return
        task = agent.task
        if standing and task.kind == "goto":  # arrived: stay for the rest of the scene
            self._act(index, t, "sit" if task.then == "sit" else "stand", until=np.inf)
        elif task.kind == "goto" and task.then == "sit":
            self._act(index, t, "sit")
        elif task.kind == "goto":
            self._act(index, t)
        elif task.kind == "act" and not agent.chained and rng.random() < 0.35:
            agent.chained = True
            self._act(index, t)
        else:
            agent.chained = False
            free_chairs = [s for s in self.chair_spots if s not in self.reserved]
            if free_chairs and rng.random() < 0.12:
                self._goto(index, t, free_chairs, "sit", jog=False)
            else:
                jog = not standing and rng.random() < 0.12
                self._goto(index, t, self.open_spots, "act", jog=jog)

    def _finished(self, index: int, t: float) -> bool:
        """Whether agent `index`'s current task is over (arrived, stuck, timed out)."""
        agent = self.agents[index]
        task = agent.task
        if task.kind == "follow":
            return self.agents[agent.leader].task.kind != "goto"
        if task.kind == "act" and agent.leader >= 0:
            return self.agents[agent.leader].task.kind == "goto" or t >= task.until
        if task.kind == "goto":
            distance = self.nav.distance(task.goal, agent.pos)
            if distance < task.best_distance - 0.3:
                task.best_distance, task.progress_time = distance, t
            stuck = t - task.progress_time > 10.0
            return distance < 0.2 or stuck
        if task.kind == "away" and agent.leave_at <= t < agent.return_at:
            return False
        return t >= task.until

    def _desired_velocity(self, index: int) -> F64Array:
        """Velocity the agent wants: along the goal field, beside its partner, or still."""
        agent = self.agents[index]
        task = agent.task
        speed = agent.style.walk_speed * (JOG_SPEED_FACTOR if task.activity == "jog" else 1.0)
        speed *= task.pace
        if task.kind == "goto":
            distance = self.nav.distance(task.goal, agent.pos)
            return self.nav.direction(task.goal, agent.pos) * min(speed, 0.3 + 1.2 * distance)
        if task.kind == "follow":
            lead = self.agents[agent.leader]
            normal = np.array([-np.sin(lead.yaw), np.cos(lead.yaw)])
            target = lead.pos + 0.62 * agent.side * normal
            if self.nav.clearance[self.nav.cell(target)] < WALKABLE_CLEARANCE:
                target = lead.pos - 0.75 * np.array([np.cos(lead.yaw), np.sin(lead.yaw)])
            desired = lead.vel + 1.5 * (target - agent.pos)
            limit = 1.35 * speed
            norm = float(np.linalg.norm(desired))
            return desired if norm <= limit else desired * (limit / norm)
        assert task.anchor is not None
        pull = 1.5 * (task.anchor - agent.pos)
        norm = float(np.linalg.norm(pull))
        return pull if norm < 0.4 else pull * (0.4 / norm)

    def run(self) -> Plan:
        """Simulate the crowd from MARGIN_S before the first frame to MARGIN_S after the last."""
        cfg, agents = self.cfg, self.agents
        start, end = -MARGIN_S, cfg.frames / cfg.frame_rate_hz + MARGIN_S
        times = np.arange(start, end + PLANNER_DT / 2, PLANNER_DT)
        n = len(agents)
        history = np.zeros((len(times), n, 4))  # x, y, yaw (unwrapped), phase
        for k, t in enumerate(times):
            for i in range(n):
                if self._finished(i, float(t)):
                    self._next(i, float(t))
            positions = np.stack([a.pos for a in agents])
            velocities = np.stack([a.vel for a in agents])
            moving = np.array([a.task.kind in ("goto", "follow") for a in agents])
            social = self._social(positions, velocities, moving)
            for i, agent in enumerate(agents):
                desired = self._desired_velocity(i)
                accel = (desired - agent.vel) / 0.4 + social[i] * (1.0 if moving[i] else 0.15)
                norm = float(np.linalg.norm(accel))
                if norm > 2.5:
                    accel *= 2.5 / norm
                agent.vel = agent.vel + accel * PLANNER_DT
                limit = agent.style.walk_speed * JOG_SPEED_FACTOR * 1.4
                vnorm = float(np.linalg.norm(agent.vel))
                if vnorm > limit:
                    agent.vel *= limit / vnorm
            proposed = positions + np.stack([a.vel for a in agents]) * PLANNER_DT
            proposed = self._separate(proposed)
            proposed = self.nav.push_out(proposed)
            for i, agent in enumerate(agents):
                agent.vel = (proposed[i] - agent.pos) / PLANNER_DT
                agent.pos = proposed[i]
                self._turn(agent)
                history[k, i] = (agent.pos[0], agent.pos[1], agent.yaw, agent.phase)
        for agent in agents:
            last = agent.segments[-1]
            agent.segments[-1] = Segment(last.kind, last.start, float(times[-1]), last.params)
            agent.segments[0] = Segment(agent.segments[0].kind, start, agent.segments[0].end,
                                        agent.segments[0].params)  # fmt: skip
        segments = [_merge_short(a.segments) for a in agents]
        trajectories = [self._spline(times, history[:, i]) for i in range(n)]
        partners = [a.leader for a in agents]
        for i, agent in enumerate(agents):
            if agent.leader >= 0:
                partners[agent.leader] = i
        return Plan(segments, trajectories, partners)

    def _turn(self, agent: Agent) -> None:
        """Update heading (towards walking direction or the task's facing) and gait phase."""
        task = agent.task
        speed = float(np.linalg.norm(agent.vel))
        if task.kind == "act" and task.activity == "turn_in_place":
            agent.yaw += task.params["rate"] * PLANNER_DT
        else:
            if speed > 0.3 and task.kind in ("goto", "follow"):
                target = float(np.arctan2(agent.vel[1], agent.vel[0]))
            elif task.kind == "act":
                target = task.facing
            else:
                target = agent.yaw
            error = (target - agent.yaw + np.pi) % (2 * np.pi) - np.pi
            agent.yaw += float(np.clip(error, -3.0 * PLANNER_DT, 3.0 * PLANNER_DT))
        jog = task.activity == "jog"
        freq = agent.style.jog_freq if jog else agent.style.gait_freq
        rate = 2 * np.pi * freq * np.sqrt(task.pace)
        if task.kind == "follow":
            lead = self.agents[agent.leader]
            lead_jog = lead.task.activity == "jog"
            lead_freq = lead.style.jog_freq if lead_jog else lead.style.gait_freq
            rate = 2 * np.pi * lead_freq * np.sqrt(lead.task.pace)
            rate += 1.5 * float((lead.phase - agent.phase + np.pi) % (2 * np.pi) - np.pi)
        agent.phase += rate * PLANNER_DT

    def _social(
        self, positions: F64Array, velocities: F64Array, moving: NDArray[np.bool_]
    ) -> F64Array:
        """Social-force accelerations (N, 2): exponential repulsion, pass on the right."""
        diff = positions[:, None, :] - positions[None, :, :]
        dist = np.linalg.norm(diff, axis=-1)
        np.fill_diagonal(dist, np.inf)
        normal = diff / np.maximum(dist, 1e-6)[..., None]
        magnitude = 1.6 * np.exp((0.6 - dist) / 0.3)
        heading = velocities / np.maximum(np.linalg.norm(velocities, axis=1, keepdims=True), 0.1)
        ahead = np.einsum("ijk,ik->ij", -normal, heading)
        magnitude *= 0.3 + 0.7 * (1 + ahead) / 2
        for i, agent in enumerate(self.agents):
            if agent.leader >= 0:
                magnitude[i, agent.leader] *= 0.1
                magnitude[agent.leader, i] *= 0.1
        magnitude[dist > 2.5] = 0.0
        tangent = np.stack([normal[..., 1], -normal[..., 0]], -1)
        tangent_weight = (0.6 * np.clip(ahead, 0, 1) * moving[:, None])[..., None]
        force = magnitude[..., None] * (normal + tangent_weight * tangent)
        result: F64Array = force.sum(axis=1)
        return result

    def _separate(self, positions: F64Array) -> F64Array:
        """Push apart any two people closer than PERSON_MIN_DISTANCE (hard constraint)."""
        out = positions.copy()
        for _ in range(3):
            diff = out[:, None, :] - out[None, :, :]
            dist = np.linalg.norm(diff, axis=-1)
            np.fill_diagonal(dist, np.inf)
            overlap = np.clip(PERSON_MIN_DISTANCE - dist, 0.0, None)
            if not overlap.any():
                break
            push = diff / np.maximum(dist, 1e-6)[..., None] * (overlap[..., None] / 2)
            out += push.sum(axis=1)
        return out

    @staticmethod
    def _spline(times: F64Array, history: F64Array) -> Trajectory:
        """Smooth the 20 Hz record (sigma 0.15 s) and fit C2 cubic splines."""
        smooth = ndimage.gaussian_filter1d(history, sigma=3.0, axis=0, mode="nearest")
        x, y, yaw, phase = (CubicSpline(times, smooth[:, k]) for k in range(4))
        return Trajectory(x, y, yaw, phase)
