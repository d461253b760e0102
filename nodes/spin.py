"""Shared `main()` of the nodes: rclpy init (context manager where supported), spin, shutdown."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.logging import get_logger

from rt_reid.errors import ReidError


def _spin(name: str, create_node: Callable[[], Any], executor: Executor) -> int:
    """Create the node (a ReidError is fatal: exit code 2) and spin it until shutdown."""
    try:
        node = create_node()
    except ReidError as err:
        get_logger(name).fatal(f"cannot start: {err}")
        return 2
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
    return 0


def run_node(
    name: str,
    create_node: Callable[[], Any],
    create_executor: Callable[[], Executor],
    args: list[str] | None,
) -> None:
    """Initialise rclpy, spin the node on a fresh executor, shut down, exit with its status."""
    init = rclpy.init(args=args)
    if init is not None:  # Kilted/Rolling (ros2/rclpy#1298): init() returns a context manager
        with init:
            code = _spin(name, create_node, create_executor())
    else:  # Humble and Jazzy: rclpy.init() returns None
        try:
            code = _spin(name, create_node, create_executor())
        finally:
            rclpy.try_shutdown()
    sys.exit(code)
