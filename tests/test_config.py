"""Parameter file loading and validation: ROS params-file format, schema, defaults, errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from rt_reid.config import ContinuityParams, ReidConfig, load_config, schema
from rt_reid.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "config" / "reid.yaml"


def _params() -> dict[str, Any]:
    document = yaml.safe_load(SHIPPED.read_text())
    return copy.deepcopy(document["reid_node"]["ros__parameters"])


def test_shipped_file_loads() -> None:
    cfg = load_config(SHIPPED)
    assert cfg.frame_id == "lidar"
    assert cfg.identities == ("wearer_01", "wearer_02", "wearer_03", "wearer_04")
    assert cfg.layouts["wearer_01"].name == "lipd4"
    assert cfg.identity_sites()["wearer_02"] == cfg.layouts["wearer_02"].sites
    assert cfg.inference.encoding_stride == 2
    assert cfg.imu.store.buffer_s == 5.0
    assert cfg.identity.keep_evidence <= cfg.identity.assign_evidence
    assert cfg.perception.roi.x_max == _params()["perception"]["roi"]["x_max"]


def test_defaults_are_filled_and_round_trip() -> None:
    params = _params()
    for section in ("inference", "windows", "imu", "identity"):
        del params[section]
    cfg = ReidConfig.from_dict(params)
    defaults = schema()["properties"]
    assert (
        cfg.inference.encoding_stride
        == defaults["inference"]["properties"]["encoding_stride"]["default"]
    )
    assert cfg.identity.half_life_s == defaults["identity"]["properties"]["half_life_s"]["default"]
    assert ReidConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["perception"]["tracker"]["confirm_hits"] >= 1  # perception defaults too


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.pop("model_dir"), "'model_dir' is a required property"),
        (lambda p: p["identities"].pop("names"), "identities: 'names' is a required"),
        (lambda p: p["identities"].update(names=[]), "identities.names"),
        (lambda p: p["identities"].update(names=["a", "a"]), "identities.names"),
        (
            lambda p: p["identities"].update(names=["unknown"]),
            "identities.names.0: 'unknown' is a reserved",
        ),
        (lambda p: p["identities"].update(names=["bad/name"]), "identities.names.0"),
        (lambda p: p["identities"].update(layout="lipd6"), "identities.layout: 'lipd6'"),
        (lambda p: p["inference"].update(encoding_stride=0), "inference.encoding_stride"),
        (lambda p: p["inference"].update(backend="tpu"), "inference.backend"),
        (lambda p: p["imu"].update(buffer_s="5"), "imu.buffer_s: '5' is not of type 'number'"),
        (lambda p: p["identity"].update(typo=1), "identity: Additional properties"),
        (lambda p: p["identity"].update(keep_evidence=9.0), "identity.keep_evidence"),
        (lambda p: p.pop("perception"), "'perception' is a required property"),
        (lambda p: p["perception"].pop("roi"), "perception: 'roi' is a required property"),
        (
            lambda p: p["perception"]["roi"].update(x_min=p["perception"]["roi"]["x_max"] + 1),
            "perception.roi.x_min",
        ),
        (lambda p: p["identities"].update(layouts={"ghost": "watch"}), "ghost"),
        (
            lambda p: p["imu"].update(clock_offsets_s={"wearer_01": {"nose": 0.1}}),
            "imu.clock_offsets_s.wearer_01.nose",
        ),
        (
            lambda p: p["imu"].update(clock_offsets_s={"wearer_01": {"left_forearm": 5.0}}),
            "imu.clock_offsets_s.wearer_01.left_forearm",
        ),
    ],
)
def test_bad_values_name_the_key(edit, message: str) -> None:
    params = _params()
    edit(params)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ReidConfig.from_dict(params)


def test_per_identity_layouts_and_offsets() -> None:
    params = _params()
    params["identities"]["layouts"] = {"wearer_02": "watch"}
    params["imu"]["clock_offsets_s"] = {"wearer_02": {"left_wrist": -0.03}}
    cfg = ReidConfig.from_dict(params)
    assert cfg.layouts["wearer_02"].sites == ("left_wrist",)
    assert cfg.imu.clock_offsets_s == {("wearer_02", "left_wrist"): -0.03}


def test_params_file_structure_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("reid_node: [1, 2\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(bad)
    bad.write_text("reid_node:\n  parameters: {}\n")
    with pytest.raises(ConfigError, match="ros__parameters"):
        load_config(bad)
    two = tmp_path / "two.yaml"
    document = {"a": {"ros__parameters": _params()}, "b": {"ros__parameters": _params()}}
    document["b"]["ros__parameters"]["frame_id"] = "os_sensor"
    two.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="several node sections"):
        load_config(two)
    assert load_config(two, node_name="b").frame_id == "os_sensor"
    wildcard = tmp_path / "wild.yaml"
    wildcard.write_text(yaml.safe_dump({"/**": {"ros__parameters": _params()}}))
    assert load_config(wildcard).model_dir == "models/lipd4"
    broken = _params()
    broken["windows"]["lag_frames"] = -1
    bad.write_text(yaml.safe_dump({"reid_node": {"ros__parameters": broken}}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: windows\.lag_frames"):
        load_config(bad)


def test_model_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = _params()
    params["model_dir"] = str(tmp_path)
    assert ReidConfig.from_dict(params).model_path() == tmp_path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    params["model_dir"] = "mine"
    assert ReidConfig.from_dict(params).model_path() == Path("mine")
    params["model_dir"] = "models/does_not_exist"
    with pytest.raises(ConfigError, match="cannot find 'models/does_not_exist'"):
        ReidConfig.from_dict(params).model_path()


def test_every_stage_is_built_from_its_section() -> None:
    """YAML integers for numbers become floats, lists tuples; renamed keys reach their fields."""
    params = _params()
    params["identity"].update(half_life_s=15, continuity_gap_s=3, calibration_intercept=1)
    params["physics"].update(bias=-2, weights=[1, 0, 0, 0, 0])
    cfg = ReidConfig.from_dict(params)
    assert type(cfg.identity.half_life_s) is float
    assert cfg.identity.calibration.intercept == 1.0
    assert cfg.continuity == ContinuityParams(max_gap_s=3.0, speed_mps=1.5)
    assert cfg.physics.weights == (1.0, 0.0, 0.0, 0.0, 0.0)
    assert type(cfg.physics.bias) is float


def test_a_stage_refusal_names_the_key() -> None:
    params = _params()
    params["physics"]["weights"] = [0.1, 0.2, 0.3]
    with pytest.raises(ConfigError, match=r"physics\.weights has 3 values"):
        ReidConfig.from_dict(params)
