"""`rt-reid` command line: one entry point, one module per subcommand, imported only when used.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``; importing only the
chosen one keeps ``rt-reid --help`` fast and keeps torch off the runtime commands.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence

from rt_reid.errors import ReidError

COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": (
        "rt_reid.cli.simulate",
        "simulate a multi-person LiDAR + IMU scene into a rosbag2",
    ),
    "train": ("despite.train_cli", "train DeSPITE encoders on simulated or LIPD data (torch)"),
    "evaluate": ("despite.evaluate_cli", "paper matching, moment retrieval and HAR evaluation"),
    "export": ("despite.export_cli", "export trained encoders to ONNX with a manifest"),
    "build-engine": ("despite.engine_cli", "build TensorRT engines from an exported model"),
    "replay": ("rt_reid.cli.replay", "run the pipeline on a bag, write identities, score them"),
    "demo": ("rt_reid.cli.demo", "simulate a scene and replay it with the shipped model"),
    "run": ("rt_reid.cli.live", "live pipeline: LiDAR bag at its rate + ZeroMQ wearables"),
    "wearables": ("rt_reid.cli.wearables", "emulate wearables from a bag's IMU topics"),
    "keys": ("rt_reid.cli.keys", "create and list CurveZMQ wearable key pairs"),
}
# Optional dependencies: module -> the install line that provides it.
INSTALL: dict[str, str] = {
    "torch": 'pip install -e ".[train]"',
    "onnxscript": 'pip install -e ".[train]"',
    "onnxruntime": 'pip install -e ".[cpu]" (or ".[gpu]")',
    "tensorrt": 'pip install -e ".[trt]"',
}
# Commands that cannot even parse their options without an optional dependency.
REQUIRES: dict[str, tuple[str, ...]] = {
    "train": ("torch",),
    "evaluate": ("torch",),
    "export": ("torch", "onnxscript"),
}


def missing_dependency(command: str, module: str) -> str:
    """The message for a command whose optional dependency `module` is not installed."""
    install = INSTALL.get(module, f"pip install {module}")
    return f"rt-reid {command}: error: it needs {module}, which is not installed; run: {install}"


def _absent(module: str) -> bool:
    """True if `module` cannot be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the chosen subcommand, and turn ReidError into exit code 2."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="rt-reid", description="Real-time LiDAR-IMU person re-identification."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    runner: Callable[[argparse.Namespace], int] | None = None
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            absent = [m for m in REQUIRES.get(name, ()) if _absent(m)]
            if absent:
                print(missing_dependency(name, absent[0]), file=sys.stderr)
                return 2
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as err:
                print(missing_dependency(name, (err.name or "?").split(".")[0]), file=sys.stderr)
                return 2
            module.add_arguments(sub)
            runner = module.run
    args = parser.parse_args(args_list)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    assert runner is not None  # argparse exits on an unknown or missing command
    try:
        return runner(args)
    except ReidError as err:
        print(f"rt-reid {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        root = (err.name or "").split(".")[0]
        if root not in INSTALL:
            raise
        print(missing_dependency(args.command, root), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
