"""Launch the rt_reid node, optionally the ZeroMQ wearable bridge and a bag played with --clock.

    ros2 launch rt_reid reid.launch.py params_file:=/path/site.yaml lidar_topic:=/ouster/points
    ros2 launch rt_reid reid.launch.py bag:=/path/scene_bag            # replay, sim time on
    ros2 launch rt_reid reid.launch.py start_wearable_bridge:=true wearable_keys:=/etc/rt_reid/keys

What runs with which parameters is decided by `rt_reid_nodes.launch_plan.plan_launch` (plain
Python, tested without ROS); this file only turns that plan into launch actions.
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from rt_reid_nodes.launch_plan import SIM_TIME_CHOICES, plan_launch

from launch import LaunchContext, LaunchDescription  # type: ignore[attr-defined]

PACKAGE = "rt_reid"
ARGUMENTS: dict[str, tuple[object, str]] = {
    "params_file": (
        PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "reid.yaml"]),
        "parameter file (ROS 2 params format, validated against rt_reid's schema)",
    ),
    "model_dir": ("", "encoder directory; empty: the params file's model_dir"),
    "namespace": ("", "namespace of the nodes and their topics"),
    "lidar_topic": ("lidar/points", "PointCloud2 topic of the driver, e.g. /ouster/points"),
    "use_sim_time": ("auto", "auto (true when a bag is played), true or false"),
    "start_wearable_bridge": ("false", "also start the ZeroMQ -> sensor_msgs/Imu bridge"),
    "wearable_endpoint": ("tcp://127.0.0.1:5555", "endpoint the bridge binds for wearables"),
    "wearable_keys": ("", "key directory of the bridge (rt-reid keys create)"),
    "bag": ("", "rosbag2 to play with `ros2 bag play --clock` (empty: none)"),
    "bag_loop": ("false", "loop the bag (the node resets when time jumps back)"),
}


def _launch_setup(context: LaunchContext) -> list[object]:
    """Resolve the arguments, plan, and build the actions."""
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    plan = plan_launch(**values)
    actions: list[object] = [
        Node(
            package=PACKAGE,
            executable="reid_node",
            name="reid_node",
            namespace=plan.namespace,
            parameters=[plan.reid_parameters],
            remappings=plan.reid_remappings,
            output="screen",
            emulate_tty=True,
        )
    ]
    if plan.bridge_parameters is not None:
        actions.append(
            Node(
                package=PACKAGE,
                executable="wearable_bridge",
                name="wearable_bridge",
                namespace=plan.namespace,
                parameters=[plan.bridge_parameters],
                output="screen",
                emulate_tty=True,
            )
        )
    if plan.bag_command is not None:
        actions.append(ExecuteProcess(cmd=plan.bag_command, output="screen"))
    return actions


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and defer the rest until they are known."""
    declared = [
        DeclareLaunchArgument(
            name,
            default_value=default,
            description=description,
            **({"choices": list(SIM_TIME_CHOICES)} if name == "use_sim_time" else {}),
        )
        for name, (default, description) in ARGUMENTS.items()
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_launch_setup)])
