"""A loopback-only network namespace for every test that starts ROS 2 / DDS.

`netns` creates a namespace with `unshare -n` (held open by a `sleep` process), brings `lo` up
and runs commands inside it with `nsenter`, with discovery limited to the host
(`ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`) and the Fast DDS loopback profile of
`launch/fastdds_loopback.xml`. Where a namespace cannot be made (not root, no unshare) the test
is skipped with that reason: DDS never runs in the host's network namespace.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FASTDDS_PROFILE = ROOT / "launch" / "fastdds_loopback.xml"
HARNESS = Path(__file__).resolve().parent / "ros_harness.py"
BIN = Path(sys.executable).parent


def _profiles_variable() -> str:
    """Fast DDS reads FASTDDS_DEFAULT_PROFILES_FILE on Kilted (3.x; the old name still works
    there but logs a deprecation warning) and FASTRTPS_DEFAULT_PROFILES_FILE on Jazzy (2.x)."""
    try:
        importlib.metadata.version("ros-jazzy-rclpy")
    except importlib.metadata.PackageNotFoundError:
        return "FASTDDS_DEFAULT_PROFILES_FILE"
    return "FASTRTPS_DEFAULT_PROFILES_FILE"


PROFILES_VARIABLE = _profiles_variable()


def _net_ns(pid: int | str) -> str:
    """Identity of a process's network namespace, e.g. ``net:[4026532301]``."""
    return os.readlink(f"/proc/{pid}/ns/net")


@dataclass
class NetNs:
    """A loopback-only network namespace and the environment of the processes run in it."""

    holder: subprocess.Popen[bytes]
    env: dict[str, str]
    log_dir: Path
    started: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return _net_ns(self.holder.pid)

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside the namespace (nsenter execs it: the PID is the command's)."""
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *argv]

    def popen(self, argv: list[str], name: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start `argv` in the namespace; stdout and stderr go to ``<log_dir>/<name>.log``."""
        log = (self.log_dir / f"{name}.log").open("w")
        process = subprocess.Popen(
            self.command(argv),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            **kwargs,
        )
        self.started.append(process)
        return process

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run `argv` in the namespace to completion and capture its output."""
        return subprocess.run(
            self.command(argv),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def log(self, name: str) -> str:
        """What a process started with `popen(name=...)` has printed so far."""
        return (self.log_dir / f"{name}.log").read_text()

    def processes(self) -> list[int]:
        """PIDs inside the namespace, the holder excepted."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.holder.pid:
                continue
            try:
                if _net_ns(entry.name) == self.ns:
                    found.append(int(entry.name))
            except OSError:  # exited meanwhile, or a kernel thread
                continue
        return found


def _skip(reason: str) -> None:
    pytest.skip(f"no loopback-only network namespace, so no DDS test: {reason}")


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[NetNs]:
    """A fresh loopback-only network namespace for one test; everything in it is ended after."""
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            _skip(f"`{tool}` is not installed (util-linux, iproute2)")
    holder = subprocess.Popen(
        ["unshare", "-n", "sleep", "3600"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    host = _net_ns("self")
    deadline = time.monotonic() + 5.0
    while holder.poll() is None and time.monotonic() < deadline:
        try:
            if _net_ns(holder.pid) != host:
                break
        except OSError:
            pass
        time.sleep(0.01)
    if holder.poll() is not None:
        assert holder.stderr is not None
        _skip(f"`unshare -n` failed: {holder.stderr.read().decode().strip()}")
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    env = {
        **os.environ,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        PROFILES_VARIABLE: str(FASTDDS_PROFILE),
        "ROS_LOG_DIR": str(tmp_path / "ros_log"),
        "RCUTILS_COLORIZED_OUTPUT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    for variable in (
        "ROS_LOCALHOST_ONLY",
        "FASTDDS_DEFAULT_PROFILES_FILE",
        "FASTRTPS_DEFAULT_PROFILES_FILE",
    ):
        if variable != PROFILES_VARIABLE:
            env.pop(variable, None)
    space = NetNs(holder=holder, env=env, log_dir=log_dir)
    try:
        up = subprocess.run(
            space.command(["ip", "link", "set", "lo", "up"]),
            capture_output=True,
            text=True,
            check=False,
        )
        if up.returncode != 0:
            _skip(f"cannot bring lo up inside the namespace: {up.stderr.strip()}")
        yield space
    finally:
        for process in space.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5.0)
        for pid in space.processes():
            os.kill(pid, signal.SIGKILL)
        holder.kill()
        holder.wait(5.0)


def harness(*args: str) -> list[str]:
    """Command line of the ROS test harness (`ros_harness.py`) with this Python."""
    return [sys.executable, str(HARNESS), *args]


def node_command(executable: str, *ros_args: str) -> list[str]:
    """Command line of an installed node entry point (``reid_node``, ``wearable_bridge``)."""
    path = BIN / executable
    assert path.exists(), f"{executable} is not installed: bash scripts/setup.sh test"
    return [str(path), "--ros-args", *ros_args]


def wait_for_log(
    space: NetNs, name: str, needle: str, process: subprocess.Popen[Any], timeout: float
) -> str:
    """Wait until a process's log contains `needle`; fail with the log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = space.log(name)
        if needle in text:
            return text
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode} before {needle!r}:\n{text}")
        time.sleep(0.1)
    pytest.fail(f"{name} did not log {needle!r} within {timeout} s:\n{space.log(name)}")
