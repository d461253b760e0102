"""What ``reid.launch.py`` starts, decided from its arguments (plain Python: testable without ROS).

The launch file only turns a `LaunchPlan` into launch actions. The parameter file is validated
here with `rt_reid.config.load_config` (a bad file fails the launch with the key that is wrong)
and handed to the node as a flat dict, so it applies under any namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rt_reid_nodes.parameters import CLOCK_OFFSETS_MAP, flatten, parameter_specs

from rt_reid.config import load_config
from rt_reid.errors import ConfigError
from rt_reid.io.bag import bag_topics
from rt_reid.names import Topic

BOOLEANS = {"true": True, "false": False}
SIM_TIME_CHOICES = ("auto", "true", "false")
LIDAR_TOPIC = "lidar/points"  # the node's input, relative so that it follows the namespace


@dataclass(frozen=True)
class LaunchPlan:
    """Parameters of each node and the bag command (None when not started)."""

    namespace: str
    reid_parameters: dict[str, Any]
    reid_remappings: list[tuple[str, str]]
    bridge_parameters: dict[str, Any] | None
    bag_command: list[str] | None


def _flag(name: str, value: str) -> bool:
    """A launch argument that must be true or false."""
    try:
        return BOOLEANS[value.strip().lower()]
    except KeyError as err:
        raise ConfigError(f"launch argument {name} must be true or false, got {value!r}") from err


def _ros_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """Flatten to dotted names typed as the node declares them (``2`` -> ``2.0`` for doubles).

    Empty maps and lists are left out: ROS cannot type them, and the schema defaults refill them.
    """
    kinds = {spec.name: spec.kind for spec in parameter_specs()}
    parameters: dict[str, Any] = {}
    for name, value in flatten(config).items():
        if isinstance(value, list | dict) and not value:
            continue
        kind = "double" if name.startswith(f"{CLOCK_OFFSETS_MAP}.") else kinds.get(name)
        if kind == "double" and isinstance(value, int) and not isinstance(value, bool):
            parameters[name] = float(value)
        elif kind == "double_array":
            parameters[name] = [float(v) for v in value]
        else:
            parameters[name] = value
    return parameters


def _namespaced(namespace: str, topic: str) -> str:
    """Absolute topic under `namespace` (empty namespace: unchanged)."""
    return f"/{namespace.strip('/')}{topic}" if namespace.strip("/") else topic


def plan_launch(
    *,
    params_file: str,
    model_dir: str,
    namespace: str,
    lidar_topic: str,
    use_sim_time: str,
    start_wearable_bridge: str,
    wearable_endpoint: str,
    wearable_keys: str,
    bag: str,
    bag_loop: str,
) -> LaunchPlan:
    """Validate the launch arguments and decide what runs with which parameters."""
    config = load_config(params_file).to_dict()
    if model_dir:
        config["model_dir"] = str(Path(model_dir).expanduser().resolve())
    if use_sim_time not in SIM_TIME_CHOICES:
        raise ConfigError(f"use_sim_time must be one of {SIM_TIME_CHOICES}, got {use_sim_time!r}")
    sim_time = bool(bag) if use_sim_time == "auto" else BOOLEANS[use_sim_time]
    reid = {**_ros_parameters(config), "use_sim_time": sim_time}

    bridge = None
    if _flag("start_wearable_bridge", start_wearable_bridge):
        if not wearable_keys:
            raise ConfigError("start_wearable_bridge:=true needs wearable_keys:=<key directory>")
        bridge = {
            "endpoint": wearable_endpoint,
            "keys_dir": str(Path(wearable_keys).expanduser().resolve()),
            "use_sim_time": sim_time,
        }

    command = None
    if bag:
        topics = sorted(bag_topics(bag))
        if bridge is not None:  # wearables come from the bridge; do not replay them twice
            topics = [t for t in topics if not t.startswith(Topic.IMU_PREFIX)]
        command = ["ros2", "bag", "play", str(Path(bag).expanduser()), "--clock"]
        if _flag("bag_loop", bag_loop):
            command.append("--loop")
        command += ["--topics", *topics]
        remaps = [f"{t}:={_namespaced(namespace, t)}" for t in topics]
        if namespace.strip("/"):
            command += ["--remap", *remaps]
    remappings = [] if lidar_topic in ("", LIDAR_TOPIC) else [(LIDAR_TOPIC, lidar_topic)]
    return LaunchPlan(
        namespace=namespace,
        reid_parameters=reid,
        reid_remappings=remappings,
        bridge_parameters=bridge,
        bag_command=command,
    )
