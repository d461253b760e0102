"""ARCHITECTURE.md dependency rules: the runtime never imports torch, rclpy or the simulator."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import rt_reid
from tests.source_imports import imported_roots

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("torch", "rclpy", "rt_reid_sim", "despite")
ENTRY_POINTS = ("rt_reid.cli", "rt_reid.__main__")  # commands load training or the simulator


def runtime_modules() -> list[str]:
    """Every module of the rt_reid package except the command-line entry points."""
    names = [
        info.name
        for info in pkgutil.walk_packages(rt_reid.__path__, prefix="rt_reid.")
        if not info.name.startswith(ENTRY_POINTS)
    ]
    assert "rt_reid.runtime.pipeline" in names  # the walk found the package
    return names


def test_no_runtime_module_imports_a_forbidden_package_even_lazily() -> None:
    offenders = {}
    for name in runtime_modules():
        module_path = ROOT / (name.replace(".", "/") + ".py")
        if not module_path.exists():
            module_path = ROOT / name.replace(".", "/") / "__init__.py"
        bad = imported_roots(module_path) & set(FORBIDDEN)
        if bad:
            offenders[name] = sorted(bad)
    assert not offenders, f"runtime modules import {offenders} (see ARCHITECTURE.md)"


def test_importing_the_whole_runtime_loads_none_of_them() -> None:
    # A fresh interpreter, so nothing the test session imported hides a transitive import.
    script = (
        "import importlib, json, sys\n"
        f"for name in {runtime_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_rule_catches_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    import torch.nn\n    from rclpy.node import Node\n")
    assert imported_roots(module) == {"torch", "rclpy"}
