"""`SceneConfig.behaviour`: the "standing" scene (everyone settles on a spot) and its CLI flag."""

from __future__ import annotations

import numpy as np
import pytest

from rt_reid.cli import main
from rt_reid.errors import ConfigError
from rt_reid_sim import SceneConfig
from rt_reid_sim.body import random_shape
from rt_reid_sim.config import Behaviour
from rt_reid_sim.motion import random_style
from rt_reid_sim.world import Planner, make_room

SETTLED = {"stand", "sit"}


def _plan(behaviour: Behaviour, seed: int, duration: float = 40.0, people: int = 8):
    cfg = SceneConfig(people=people, duration_s=duration, seed=seed, behaviour=behaviour)
    rng = np.random.default_rng(seed)
    room = make_room(cfg, rng)
    shapes = [random_shape(rng) for _ in range(people)]
    styles = [random_style(rng, s) for s in shapes]
    planner = Planner(cfg, room, styles, rng)
    return cfg, room, planner.run()


def test_standing_people_settle_on_a_spot_and_do_not_leave():
    cfg, room, plan = _plan("standing", seed=4)
    times = np.arange(0.0, cfg.duration_s, 0.1)
    for trajectory, segments in zip(plan.trajectories, plan.segments, strict=True):
        kinds = [seg.kind for seg in segments]
        assert set(kinds) <= SETTLED | {"walk"}, kinds  # no jogging, no other activities
        last = segments[-1]
        assert last.kind in SETTLED
        assert kinds.count("walk") <= 2, kinds  # walks to its spot (after entering), no more
        settled = times >= last.start + 1.0
        if last.start < cfg.duration_s - 5.0:
            assert settled.sum() > 0
            speed = np.hypot(trajectory.x(times[settled], 1), trajectory.y(times[settled], 1))
            # still, apart from sway and making room when someone walks past
            assert np.median(speed) < 0.02, "a settled person walks"
            assert speed.max() < 0.5, "a settled person walks"
            start, end = times[settled][0], times[-1]
            shift = np.hypot(trajectory.x(end) - trajectory.x(start),
                             trajectory.y(end) - trajectory.y(start))  # fmt: skip
            assert shift < 0.5
            assert trajectory.x(times[-1]) < room.width / 2, "someone left through the door"
    # most people are settled for most of the scene
    starts = [segments[-1].start for segments in plan.segments]
    assert np.median(starts) < 0.5 * cfg.duration_s


def test_mixed_people_keep_moving_and_unknown_behaviour_is_rejected():
    cfg, _room, plan = _plan("mixed", seed=4)
    times = np.arange(0.0, cfg.duration_s, 0.1)
    late = times > 0.6 * cfg.duration_s
    speeds = [np.hypot(tr.x(times[late], 1), tr.y(times[late], 1)) for tr in plan.trajectories]
    assert max(float(s.max()) for s in speeds) > 0.6  # the default scene still walks around
    with pytest.raises(ConfigError, match="behaviour"):
        SceneConfig(behaviour="dancing")  # type: ignore[arg-type]


def test_simulate_cli_writes_a_standing_scene(tmp_path):
    out = tmp_path / "bag"
    args = ["--people", "2", "--duration", "1", "--columns", "128", "--lidar", "vlp-16"]
    code = main(["simulate", *args, "--behaviour", "standing", "--no-progress", str(out)])
    assert code == 0
    assert (out / "metadata.yaml").exists()
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--behaviour", "dancing", str(tmp_path / "other")])
    assert exc.value.code == 2
