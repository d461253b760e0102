"""ROS 2 shell without starting ROS: launch plan, parameter mapping, package.xml, structure.

The nodes themselves run as real processes in `test_node_reid.py` and `test_node_bridge.py`.
`launch` and `launch_ros` are on no registry we reach, so the launch file is checked by parsing
it and its decisions through `plan_launch`; it is never executed here.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import yaml
from catkin_pkg.package import parse_package
from rt_reid_nodes.launch_plan import LaunchPlan, plan_launch
from rt_reid_nodes.parameters import (
    ParamSpec,
    clock_offset_specs,
    flatten,
    layout_specs,
    nest,
    parameter_specs,
)

from rt_reid.config import ReidConfig, load_config
from rt_reid.errors import ConfigError, MessageError, ReidError
from rt_reid.io.bag import BagWriter, header, msg_class
from rt_reid.io.ros_msgs import imu_sample
from rt_reid.wearables.packet import ImuPacket
from rt_reid.wearables.ros_imu import ImuTypes, imu_messages
from tests.source_imports import imported_roots

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "config" / "reid.yaml"
LAUNCH = ROOT / "launch" / "reid.launch.py"
NODES = ROOT / "nodes"  # the package rt_reid_nodes (setup.py package_dir)
NODE_MODULES = ("reid_node", "wearable_bridge", "spin", "messages")


def _section() -> dict[str, Any]:
    """The ros__parameters of the shipped parameter file."""
    section: dict[str, Any] = next(iter(yaml.safe_load(PARAMS.read_text()).values()))
    return cast(dict[str, Any], section["ros__parameters"])


# ---------------------------------------------------------------- parameters <-> schema


def _ros_value(spec: ParamSpec, value):
    """What rclpy hands back for `value` declared with `spec` (typed as ROS types it)."""
    kinds = {
        "string": str,
        "integer": int,
        "double": float,
        "bool": bool,
    }
    if spec.kind in kinds:
        assert isinstance(value, kinds[spec.kind]) or (
            spec.kind == "double" and isinstance(value, int) and not isinstance(value, bool)
        ), f"{spec.name}: {value!r} is not a ROS {spec.kind}"
        return kinds[spec.kind](value)
    item = {"string_array": str, "integer_array": int, "double_array": float}[spec.kind]
    assert isinstance(value, list), f"{spec.name}: {value!r} is not an array"
    return tuple(item(v) for v in value)  # rclpy returns arrays, not lists


def test_every_shipped_parameter_is_declared_with_its_type() -> None:
    config = load_config(PARAMS)
    specs = {s.name: s for s in parameter_specs()}
    specs.update({s.name: s for s in layout_specs(list(config.identities))})
    specs.update({s.name: s for s in clock_offset_specs(config.identity_sites())})
    flat = flatten(_section())
    undeclared = sorted(set(flat) - set(specs))
    assert undeclared == []
    ros_values = {name: _ros_value(specs[name], value) for name, value in flat.items()}
    # What the node does with the values it reads back: nest, then the shared validation.
    rebuilt = ReidConfig.from_dict(nest(ros_values))
    assert rebuilt.to_dict() == config.to_dict()


def test_clock_offsets_round_trip_through_ros_parameters() -> None:
    section = _section()
    name = section["identities"]["names"][0]
    flat = flatten(section)
    flat[f"imu.clock_offsets_s.{name}.left_forearm"] = 0.02
    flat[f"identities.layouts.{name}"] = "lipd4"
    config = ReidConfig.from_dict(nest(flat))
    assert config.imu.clock_offsets_s[(name, "left_forearm")] == pytest.approx(0.02)
    sites = {name: config.layouts[name].sites}
    assert f"imu.clock_offsets_s.{name}.left_forearm" in {s.name for s in clock_offset_specs(sites)}


def test_site_dependent_parameters_have_no_default_and_tuning_ones_do() -> None:
    specs = {s.name: s for s in parameter_specs()}
    for required in ("model_dir", "identities.names", "identities.layout"):
        assert specs[required].default is None, required
    assert specs["inference.encoding_stride"].default == 2
    assert specs["inference.encoding_stride"].kind == "integer"
    assert (
        specs["inference.encoding_stride"].minimum,
        specs["inference.encoding_stride"].maximum,
    ) == (1, 24)
    assert specs["identities.layout"].choices == ("lipd4", "watch")
    assert specs["identities.names"].kind == "string_array"
    assert all(s.description for s in specs.values()), "every parameter is described"


def test_missing_site_parameter_is_reported_not_defaulted() -> None:
    flat = flatten(_section())
    del flat["model_dir"]
    with pytest.raises(ConfigError, match="model_dir"):
        ReidConfig.from_dict(nest(flat))


def test_nest_refuses_a_value_with_children() -> None:
    with pytest.raises(ConfigError, match="nests under"):
        nest({"imu": 1.0, "imu.buffer_s": 2.0})


# ---------------------------------------------------------------- launch plan


def _plan(**overrides: str) -> LaunchPlan:
    arguments = {
        "params_file": str(PARAMS),
        "model_dir": "",
        "namespace": "",
        "lidar_topic": "lidar/points",
        "use_sim_time": "auto",
        "start_wearable_bridge": "false",
        "wearable_endpoint": "tcp://127.0.0.1:5555",
        "wearable_keys": "",
        "bag": "",
        "bag_loop": "false",
    }
    arguments.update(overrides)
    return plan_launch(**arguments)


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real rosbag2 with a LiDAR topic and one IMU topic."""
    path = tmp_path_factory.mktemp("bag") / "scene"
    cloud_cls, imu_cls = msg_class("sensor_msgs/msg/PointCloud2"), msg_class("sensor_msgs/msg/Imu")
    vec, quat = msg_class("geometry_msgs/msg/Vector3"), msg_class("geometry_msgs/msg/Quaternion")
    with BagWriter(path) as writer:
        writer.write(
            "/lidar/points",
            1_000_000_000,
            cloud_cls(
                header=header(1_000_000_000, "lidar"),
                height=1,
                width=0,
                fields=[],
                is_bigendian=False,
                point_step=12,
                row_step=0,
                data=np.zeros(0, np.uint8),
                is_dense=True,
            ),
        )
        writer.write(
            "/imu/wearer_01/left_forearm",
            1_000_000_000,
            imu_cls(
                header=header(1_000_000_000, "wearer_01/left_forearm"),
                orientation=quat(x=0.0, y=0.0, z=0.0, w=1.0),
                orientation_covariance=np.zeros(9),
                angular_velocity=vec(x=0.0, y=0.0, z=0.0),
                angular_velocity_covariance=np.zeros(9),
                linear_acceleration=vec(x=0.0, y=0.0, z=9.81),
                linear_acceleration_covariance=np.zeros(9),
            ),
        )
    return path


def test_plan_without_a_bag_runs_only_the_node_on_wall_time() -> None:
    plan = _plan()
    assert plan.bag_command is None
    assert plan.bridge_parameters is None
    assert plan.reid_remappings == []
    driver = _plan(lidar_topic="/ouster/points")
    assert driver.reid_remappings == [("lidar/points", "/ouster/points")]
    assert plan.reid_parameters["use_sim_time"] is False
    assert plan.reid_parameters["identities.names"] == _section()["identities"]["names"]
    assert plan.reid_parameters["perception.roi.x_min"] == _section()["perception"]["roi"]["x_min"]
    assert not any(isinstance(v, dict) or v == [] for v in plan.reid_parameters.values())


def test_plan_with_a_bag_plays_it_with_clock_and_sim_time(small_bag: Path, tmp_path: Path) -> None:
    plan = _plan(bag=str(small_bag), bag_loop="true", model_dir=str(tmp_path))
    assert plan.reid_parameters["use_sim_time"] is True
    assert plan.reid_parameters["model_dir"] == str(tmp_path.resolve())
    assert plan.bag_command is not None
    assert plan.bag_command[:5] == ["ros2", "bag", "play", str(small_bag), "--clock"]
    assert "--loop" in plan.bag_command
    assert "/imu/wearer_01/left_forearm" in plan.bag_command
    assert "--remap" not in plan.bag_command
    assert _plan(bag=str(small_bag), use_sim_time="false").reid_parameters["use_sim_time"] is False


def test_plan_with_bridge_and_namespace(small_bag: Path, tmp_path: Path) -> None:
    plan = _plan(
        bag=str(small_bag),
        namespace="ward3",
        start_wearable_bridge="true",
        wearable_keys=str(tmp_path),
    )
    assert plan.bridge_parameters == {
        "endpoint": "tcp://127.0.0.1:5555",
        "keys_dir": str(tmp_path.resolve()),
        "use_sim_time": True,
    }
    assert plan.bag_command is not None
    topics = plan.bag_command[
        plan.bag_command.index("--topics") + 1 : plan.bag_command.index("--remap")
    ]
    assert topics == ["/lidar/points"]  # the bridge provides the IMU topics
    assert plan.bag_command[-1] == "/lidar/points:=/ward3/lidar/points"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start_wearable_bridge": "yes"}, "must be true or false"),
        ({"start_wearable_bridge": "true"}, "needs wearable_keys"),
        ({"use_sim_time": "maybe"}, "use_sim_time must be one of"),
        ({"params_file": "/nonexistent/reid.yaml"}, "does not exist"),
        ({"bag": "/nonexistent/bag"}, "cannot read bag"),
    ],
)
def test_plan_rejects_bad_arguments(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ReidError, match=message):
        _plan(**overrides)


def test_plan_types_parameters_as_the_node_declares_them(tmp_path: Path) -> None:
    document = yaml.safe_load(PARAMS.read_text())
    section = next(iter(document.values()))["ros__parameters"]
    section["perception"]["ground"]["plane"] = [0, 0, 1, 2]  # integers written by a user
    section["imu"]["buffer_s"] = 5
    name = section["identities"]["names"][0]
    section["imu"]["clock_offsets_s"] = {name: {"left_forearm": 0}}
    edited = tmp_path / "ints.yaml"
    edited.write_text(yaml.safe_dump(document))
    parameters = _plan(params_file=str(edited)).reid_parameters
    assert parameters["perception.ground.plane"] == [0.0, 0.0, 1.0, 2.0]
    assert all(isinstance(v, float) for v in parameters["perception.ground.plane"])
    assert isinstance(parameters["imu.buffer_s"], float)
    assert isinstance(parameters[f"imu.clock_offsets_s.{name}.left_forearm"], float)
    assert isinstance(parameters["inference.encoding_stride"], int)


def test_plan_rejects_an_invalid_parameter_file(tmp_path: Path) -> None:
    document = yaml.safe_load(PARAMS.read_text())
    next(iter(document.values()))["ros__parameters"]["inference"]["encoding_stride"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"inference\.encoding_stride"):
        _plan(params_file=str(bad))


# ---------------------------------------------------------------- launch file and node modules


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_launch_file_structure() -> None:
    tree = _tree(LAUNCH)
    compile(tree, str(LAUNCH), "exec")
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    arguments = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "ARGUMENTS"
    )
    assert isinstance(arguments, ast.Dict)
    names = {k.value for k in arguments.keys if isinstance(k, ast.Constant)}
    assert {
        "params_file",
        "model_dir",
        "namespace",
        "use_sim_time",
        "start_wearable_bridge",
        "bag",
    } <= names
    # The launch arguments are exactly what plan_launch takes.
    assert names == set(inspect.signature(plan_launch).parameters)
    calls = {
        node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert {
        "DeclareLaunchArgument",
        "Node",
        "ExecuteProcess",
        "OpaqueFunction",
        "LaunchDescription",
        "FindPackageShare",
    } <= calls
    executables = {
        str(kw.value.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == "executable" and isinstance(kw.value, ast.Constant)
    }
    setup = (ROOT / "setup.py").read_text()
    for executable in executables:
        assert f'"{executable} = rt_reid_nodes.{executable}:main"' in setup


@pytest.mark.parametrize("module", NODE_MODULES)
def test_node_modules_import_with_their_entry_point_and_without_torch(module: str) -> None:
    # Importing a node module loads rclpy but starts nothing (no rclpy.init, no DDS).
    loaded = importlib.import_module(f"rt_reid_nodes.{module}")
    entry = {"spin": "run_node", "messages": "lookup"}.get(module, "main")
    assert callable(getattr(loaded, entry))
    assert "torch" not in imported_roots(NODES / f"{module}.py")


# Attributes rclpy.node.Node.__init__ sets on itself (Humble keeps some entity lists name-mangled,
# Iron/Jazzy as `_publishers`, `_subscriptions`, ...): a subclass assigning one breaks the Node.
RCLPY_NODE_ATTRIBUTES = {
    "_context",
    "_parameters",
    "_publishers",
    "_subscriptions",
    "_clients",
    "_services",
    "_timers",
    "_guards",
    "_default_callback_group",
    "_pre_set_parameters_callbacks",
    "_on_set_parameters_callbacks",
    "_post_set_parameters_callbacks",
    "_parameters_callbacks",
    "_rate_group",
    "_allow_undeclared_parameters",
    "_parameter_overrides",
    "_descriptors",
    "_logger",
    "_parameter_event_publisher",
    "_clock",
    "_time_source",
    "_parameter_service",
    "_logger_service",
    "_type_description_service",
}


@pytest.mark.parametrize("module", ["reid_node", "wearable_bridge"])
def test_nodes_do_not_shadow_rclpy_node_attributes(module: str) -> None:
    tree = _tree(NODES / f"{module}.py")
    assigned = {
        target.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
    }
    assert assigned
    assert sorted(assigned & RCLPY_NODE_ATTRIBUTES) == []


@pytest.mark.parametrize("module", ["reid_node", "wearable_bridge"])
def test_nodes_use_no_private_rclpy_attribute(module: str) -> None:
    """Every `self._name` a node reads is its own (assigned or defined in its module), and no
    private name is reached by string (`getattr(self, "_...")`): rclpy's internals differ
    between distributions."""
    tree = _tree(NODES / f"{module}.py")
    own = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    own |= {
        target.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
    }
    private = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    }
    assert private
    assert sorted(private - own) == []
    by_string = [
        node.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") in {"getattr", "hasattr", "setattr"}
        and len(node.args) > 1
        and isinstance(node.args[1], ast.Constant)
        and str(node.args[1].value).startswith("_")
    ]
    assert by_string == []


def test_package_xml_validates_and_declares_what_the_nodes_import() -> None:
    package = parse_package(str(ROOT / "package.xml"))
    package.validate()  # raises InvalidPackage on any format-3 violation
    assert package.package_format == 3
    assert package.name == "rt_reid"
    assert any(e.tagname == "build_type" and e.content == "ament_python" for e in package.exports)
    declared = {d.name for d in package.exec_depends}
    ros_imports = set()
    for path in [LAUNCH, *(NODES).glob("*.py")]:
        ros_imports |= imported_roots(path)
    python = {
        "__future__",
        "ast",
        "collections",
        "dataclasses",
        "functools",
        "json",
        "math",
        "pathlib",
        "sys",
        "time",
        "typing",
        "rt_reid",
        "rt_reid_nodes",
    }
    ros_packages = ros_imports - python
    assert sorted(ros_packages - declared) == []


# ---------------------------------------------------------------- Imu conversion (bridge)


def test_bridge_imu_messages_round_trip_through_cdr() -> None:
    from rt_reid.io.bag import typestore

    stamps = np.array([1_700_000_000_123_456_789, 1_700_000_000_128_456_789], dtype=np.int64)
    force = np.array([[0.1, 0.2, 9.8], [0.3, 0.4, 9.7]], dtype=np.float32)
    gyro = np.array([[0.01, 0.02, 0.03], [0.04, 0.05, 0.06]], dtype=np.float32)
    quat = np.array([[0, 0, 0.6, 0.8], [0, 0.6, 0, 0.8]], dtype=np.float32)
    packet = ImuPacket("wearer_01", "left_forearm", 3, stamps, force, gyro, quat)
    messages = imu_messages(packet, ImuTypes.from_lookup(msg_class))
    store = typestore()
    for i, message in enumerate(messages):
        decoded: Any = store.deserialize_cdr(
            store.serialize_cdr(message, "sensor_msgs/msg/Imu"), "sensor_msgs/msg/Imu"
        )
        assert decoded.header.frame_id == "wearer_01/left_forearm"
        assert decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec == stamps[i]
        sample = imu_sample(decoded, identity="wearer_01", site="left_forearm")
        np.testing.assert_allclose(sample.specific_force, force[i], rtol=1e-6)
        np.testing.assert_allclose(sample.angular_velocity, gyro[i], rtol=1e-6)
        np.testing.assert_allclose(sample.orientation_xyzw, quat[i], rtol=1e-6)
    no_orientation = imu_messages(
        ImuPacket("wearer_01", "left_forearm", 4, stamps, force, gyro, None),
        ImuTypes.from_lookup(msg_class),
    )
    assert no_orientation[0].orientation_covariance[0] == -1.0
    with pytest.raises(MessageError, match="no orientation estimate"):
        imu_sample(no_orientation[0], identity="wearer_01", site="left_forearm")
