"""Helpers of the bad-input corpus: one small simulated bag per session and ways to break it.

Every broken input is derived in `tmp_path` from `sim_bag` by rosbags edits (`rewrite`) or byte
edits (`overwrite`), so the corpus needs no binary fixtures. `cli` runs ``rt-reid`` in-process
and fails the test if anything escaped as an exception or a traceback reached the output.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from rt_reid import cli as rt_cli
from rt_reid.io.bag import BAG_VERSION, Storage, typestore
from rt_reid_sim import SceneConfig, write_bag

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "reid.yaml"
LIPD4 = ROOT / "models" / "lipd4"
WATCH = ROOT / "models" / "watch"
LIDAR = "/lidar/points"
SCENE = SceneConfig(people=3, bystanders=1, duration_s=4.0, lidar="os1-32", columns=512, seed=4101)

# edit(topic, receive_ns, message) -> the (topic, receive_ns, message) items to write instead
Edit = Callable[[str, int, Any], Iterable[tuple[str, int, Any]]]


@dataclass(frozen=True)
class CliResult:
    """Exit code and captured output of one in-process ``rt-reid`` call."""

    code: int
    out: str
    err: str
    log: str

    @property
    def text(self) -> str:
        """Everything the user saw."""
        return self.out + self.err + self.log


@pytest.fixture(scope="session")
def sim_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated scene (3 people, 4 s, os1-32 x 512) shared by the whole corpus."""
    path = tmp_path_factory.mktemp("badinput") / "scene"
    write_bag(SCENE, path)
    return path


@pytest.fixture(scope="session")
def sim_bag_sqlite(sim_bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same scene in the sqlite3 storage."""
    path = tmp_path_factory.mktemp("badinput_sqlite") / "scene"
    rewrite(sim_bag, path, storage="sqlite3")
    return path


def rewrite(
    src: Path,
    dst: Path,
    *,
    edit: Edit | None = None,
    topics: Iterable[str] | None = None,
    drop: Iterable[str] = (),
    storage: Storage = "mcap",
) -> Path:
    """Copy a bag message by message; messages of `topics` (default all) go through `edit`.

    Messages `edit` does not see are copied as raw CDR, so a case costs little more than a copy;
    topics in `drop` (or starting with a `drop` entry ending in "/") are left out.
    """
    dropped = tuple(drop)
    store = typestore()
    chosen = None if topics is None else set(topics)
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with Reader(src) as reader, Writer(dst, version=BAG_VERSION, storage_plugin=plugin) as writer:
        out: dict[tuple[str, str], Any] = {}

        def connection(topic: str, msgtype: str) -> Any:
            if (topic, msgtype) not in out:
                out[(topic, msgtype)] = writer.add_connection(topic, msgtype, typestore=store)
            return out[(topic, msgtype)]

        for conn, stamp, raw in reader.messages():
            if any(
                conn.topic == d or (d.endswith("/") and conn.topic.startswith(d)) for d in dropped
            ):
                continue
            if edit is None or (chosen is not None and conn.topic not in chosen):
                writer.write(connection(conn.topic, conn.msgtype), stamp, raw)
                continue
            message = store.deserialize_cdr(raw, conn.msgtype)
            for topic, ns, new in edit(conn.topic, stamp, message):
                msgtype = new.__msgtype__
                writer.write(connection(topic, msgtype), ns, store.serialize_cdr(new, msgtype))
    return dst


def copy_tree(src: Path, dst: Path) -> Path:
    """Plain copy of a bag directory (for byte edits)."""
    shutil.copytree(src, dst)
    return dst


def data_file(bag: Path) -> Path:
    """The storage file of a one-file bag."""
    (path,) = [p for p in bag.iterdir() if p.suffix in {".mcap", ".db3"}]
    return path


def overwrite(bag: Path, *, at: float, length: int, fill: bytes | None = None) -> None:
    """Overwrite `length` bytes at fraction `at` of the storage file (random bytes, seeded)."""
    path = data_file(bag)
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    end = min(len(data), start + length)
    if fill is None:
        import random

        noise = random.Random(start).randbytes(end - start)
    else:
        noise = (fill * (end - start))[: end - start]
    data[start:end] = noise
    path.write_bytes(bytes(data))


def truncate(bag: Path, fraction: float) -> None:
    """Cut the storage file to `fraction` of its length."""
    path = data_file(bag)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def params_file(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """The shipped parameter file with `edit` applied to its ros__parameters."""
    document = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    (section,) = document.values()
    edit(section["ros__parameters"])
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.fixture
def cli(caplog: pytest.LogCaptureFixture) -> Callable[..., CliResult]:
    """Run ``rt-reid ARGS`` in-process; no exception may escape and no traceback be printed."""

    def run(*argv: str | Path) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        caplog.clear()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = rt_cli.main([str(a) for a in argv])
            except SystemExit as exit_:  # argparse usage errors and --help
                code = int(exit_.code or 0)
        result = CliResult(code, out.getvalue(), err.getvalue(), caplog.text)
        assert "Traceback" not in result.text, result.text
        return result

    return run


def replay(cli: Callable[..., CliResult], bag: Path, out: Path, *extra: str | Path) -> CliResult:
    """``rt-reid replay BAG --model lipd4 --out OUT --config reid.yaml --no-progress``."""
    return cli(
        "replay", bag, "--model", LIPD4, "--out", out, "--config", CONFIG, "--no-progress", *extra
    )


def last_diagnostics(out_bag: Path) -> dict[str, tuple[int, str]]:
    """Status name -> (level, message) of the last /diagnostics message of an output bag."""
    store = typestore()
    with Reader(out_bag) as reader:
        connections = [c for c in reader.connections if c.topic == "/diagnostics"]
        last: Any = None
        for conn, _, raw in reader.messages(connections=connections):
            last = store.deserialize_cdr(raw, conn.msgtype)
    assert last is not None, f"{out_bag} has no /diagnostics"
    return {s.name: (int(s.level), s.message) for s in last.status}


def output_frame_ids(out_bag: Path) -> set[str]:
    """frame_ids of every /reid/identities message of an output bag."""
    store = typestore()
    with Reader(out_bag) as reader:
        connections = [c for c in reader.connections if c.topic == "/reid/identities"]
        messages: list[Any] = [
            store.deserialize_cdr(raw, conn.msgtype)
            for conn, _, raw in reader.messages(connections=connections)
        ]
    return {m.header.frame_id for m in messages}


def first_chunk_record(bag: Path) -> int:
    """Byte offset of the length field of the first record inside the first MCAP chunk.

    MCAP records are opcode (1 byte), length (uint64 LE), body; a Chunk body holds start/end
    time, uncompressed size, CRC, the compression string and then its records (uncompressed).
    """
    data = data_file(bag).read_bytes()
    pos = 8  # after the magic
    while data[pos] != 0x06:  # Chunk
        pos += 9 + int.from_bytes(data[pos + 1 : pos + 9], "little")
    body = pos + 9
    compression_len = int.from_bytes(data[body + 28 : body + 32], "little")
    assert data[body + 32 : body + 32 + compression_len] == b"", "expected uncompressed chunks"
    return body + 32 + compression_len + 8 + 1


def set_uint64(bag: Path, offset: int, value: int) -> None:
    """Write `value` as uint64 LE at `offset` of the storage file."""
    path = data_file(bag)
    data = bytearray(path.read_bytes())
    data[offset : offset + 8] = value.to_bytes(8, "little")
    path.write_bytes(bytes(data))
