"""Perception parameters: dict round trip, validation errors, the schema refuses what they refuse.

Schema keys vs dataclass fields and defaults are checked for every section in
tests/test_parameter_source.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from rt_reid.errors import ConfigError
from rt_reid.runtime.perception import LidarPerception, PerceptionParams

SCHEMA = json.loads(
    (Path(__file__).parents[3] / "rt_reid/schema/perception.schema.json").read_text("utf-8")
)


def site_section():
    data = PerceptionParams().to_dict()
    return {"roi": data["roi"], "ground": {"mode": "plane", "plane": [0, 0, 1, 1.2]}}


def test_round_trip_and_defaults():
    params = PerceptionParams.from_dict(site_section())
    assert params.ground.plane == (0.0, 0.0, 1.0, 1.2)
    assert params.ground.mode == "plane"
    assert params.tracker == PerceptionParams().tracker
    assert PerceptionParams.from_dict(params.to_dict()) == params
    jsonschema.validate(params.to_dict(), SCHEMA)


def test_shipped_config_section_loads():
    config = yaml.safe_load((Path(__file__).parents[3] / "config/reid.yaml").read_text("utf-8"))
    section = config["reid_node"]["ros__parameters"]["perception"]
    jsonschema.validate(section, SCHEMA)
    LidarPerception(params=PerceptionParams.from_dict(section))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(tracking={}), r"perception: unknown key\(s\) \['tracking'\]"),
        (lambda d: d["roi"].pop("x_max"), r"perception.roi: site-dependent key\(s\) \['x_max'\]"),
        (lambda d: d.pop("ground"), r"perception.ground: site-dependent"),
        (
            lambda d: d.update(tracker={"gate": 1.0}),
            r"perception.tracker: unknown key\(s\) \['gate'\]",
        ),
        (
            lambda d: d.update(tracker={"confirm_hits": 2.5}),
            "tracker.confirm_hits: expected an integer",
        ),
        (
            lambda d: d.update(tracker={"confirm_hits": True}),
            "tracker.confirm_hits: expected an integer",
        ),
        (lambda d: d.update(cluster={"min_top": "high"}), "cluster.min_top: expected a number"),
        (lambda d: d.update(cluster={"min_top": float("nan")}), "expected a finite number"),
        (lambda d: d["ground"].update(mode="ransac"), r"ground.mode: expected one of \['plane'"),
        (lambda d: d["ground"].update(plane=[0, 0, 1]), "ground.plane: expected a list of 4"),
        (lambda d: d["ground"].update(plane=[0, 0, 0, 1]), "normal"),
        (lambda d: d["roi"].update(x_min=20.0), "roi.x_min must be < x_max"),
        (lambda d: d.update(background={"voxel_size": 0.0}), "background.voxel_size must be > 0"),
        (lambda d: d.update(background={"threshold": 1.0}), r"threshold must be in \(0, 1\)"),
        (lambda d: d.update(background={"voxel_size": 0.001}), "voxels"),
    ],
)
def test_bad_values_name_the_key(change, message):
    data = site_section()
    change(data)
    with pytest.raises(ConfigError, match=message):
        LidarPerception(params=PerceptionParams.from_dict(data))


def test_schema_rejects_what_from_dict_rejects():
    data = site_section()
    data["cluster"] = {"min_pts": 3}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)
