"""rosbag2 I/O through `rosbags` (no ROS install): one typestore, a writer and a reader.

The typestore is ROS 2 Humble's plus `vision_msgs` 4.x registered from its `.msg` text, so bags we
write carry exact definitions and decode with any ROS 2 tool or the `mcap` readers.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from rt_reid.errors import BagError

LOG = logging.getLogger(__name__)
Storage = Literal["mcap", "sqlite3"]
BAG_VERSION: Literal[8, 9] = 8  # readable by Humble (which reads up to 8) and Jazzy

VISION_MSGS: dict[str, str] = {
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox3D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection3DArray": (
        "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n"
    ),
}


@cache
def typestore() -> Typestore:
    """ROS 2 Humble message types plus vision_msgs 4.x (built once per process)."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name, text in VISION_MSGS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def msg_class(msgtype: str) -> Any:
    """Message class for a full type name, e.g. ``sensor_msgs/msg/Imu``."""
    return typestore().types[msgtype]


def stamp(nanoseconds: int) -> Any:
    """builtin_interfaces/Time for an integer nanosecond timestamp."""
    time_cls = msg_class("builtin_interfaces/msg/Time")
    return time_cls(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def header(nanoseconds: int, frame_id: str) -> Any:
    """std_msgs/Header with the given stamp and frame."""
    return msg_class("std_msgs/msg/Header")(stamp=stamp(nanoseconds), frame_id=frame_id)


class BagWriter:
    """Write messages to a new rosbag2 (MCAP by default); topics are created on first use."""

    def __init__(self, path: Path | str, *, storage: Storage = "mcap") -> None:
        plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
        self.path = Path(path)
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        self._connections: dict[str, Any] = {}
        self._store = typestore()

    def __enter__(self) -> BagWriter:
        try:
            self._writer.open()
        except WriterError as err:
            raise BagError(f"cannot create bag {self.path}: {err}") from err
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._writer.close()

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic (so it exists even if no message is written to it)."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=self._store
            )

    def write(self, topic: str, timestamp_ns: int, message: Any) -> None:
        """Serialise `message` (a rosbags message object) as CDR and append it to `topic`."""
        msgtype = message.__msgtype__
        self.add_topic(topic, msgtype)
        data = self._store.serialize_cdr(message, msgtype)
        self._writer.write(self._connections[topic], timestamp_ns, data)


@dataclass(frozen=True)
class BagMessage:
    """One decoded message with its topic, type and receive timestamp (ns)."""

    topic: str
    msgtype: str
    timestamp_ns: int
    message: Any


@dataclass(frozen=True)
class RawMessage:
    """One message as stored: its CDR bytes, with topic, type and receive timestamp (ns)."""

    topic: str
    msgtype: str
    timestamp_ns: int
    data: bytes | memoryview


def deserialize(path: Path | str, raw: RawMessage) -> BagMessage:
    """Decode one stored message of the bag at `path`; BagError names bag, topic and stamp."""
    try:
        message = typestore().deserialize_cdr(raw.data, raw.msgtype)
    except Exception as err:
        raise BagError(
            f"{path}: cannot decode a {raw.msgtype} message on {raw.topic} at "
            f"{raw.timestamp_ns} ns: {err}"
        ) from err
    return BagMessage(raw.topic, raw.msgtype, raw.timestamp_ns, message)


# What `rosbags` and its storage readers raise on a damaged file (struct and mcap parsing errors
# surface as ValueError/OverflowError/IndexError, a short read as EOFError).
READ_ERRORS = (ReaderError, OSError, ValueError, KeyError, EOFError, OverflowError, IndexError)


def bag_topics(path: Path | str) -> dict[str, tuple[str, int]]:
    """Map topic -> (message type, message count) for a bag."""
    try:
        with Reader(Path(path)) as reader:
            return {
                topic: (info.msgtype or "", info.msgcount) for topic, info in reader.topics.items()
            }
    except READ_ERRORS as err:
        raise BagError(f"cannot read bag {path}: {type(err).__name__}: {err}") from err


def read_messages(
    path: Path | str,
    *,
    topics: Iterable[str] | None = None,
    on_undecodable: Callable[[BagError], None] | None = None,
    on_lost: Callable[[str, int], None] | None = None,
) -> Iterator[BagMessage]:
    """Yield decoded messages in timestamp order, optionally only from `topics`.

    A failure to open or read the bag is raised as BagError naming the bag. A single message that
    does not decode is raised too, unless `on_undecodable` is given: then it receives the error
    (naming bag, topic and stamp) and reading goes on with the next message. `topics` naming no
    topic of the bag yields nothing. When the file holds fewer messages of a topic than the bag's
    metadata recorded (a damaged file that still parses), `on_lost(topic, missing)` is called
    for each such topic at the end (default: a logged warning).
    """
    messages = read_stream(path, topics=topics, on_undecodable=on_undecodable, on_lost=on_lost)
    return cast(Iterator[BagMessage], messages)  # no raw topics: every message is decoded


def read_stream(
    path: Path | str,
    *,
    topics: Iterable[str] | None = None,
    raw_topics: Collection[str] = (),
    on_undecodable: Callable[[BagError], None] | None = None,
    on_lost: Callable[[str, int], None] | None = None,
) -> Iterator[BagMessage | RawMessage]:
    """`read_messages`, except that messages of `raw_topics` come undecoded, as `RawMessage`.

    For topics whose messages are decoded in bulk (`rt_reid.io.ros_msgs.imu_batch`) or not at
    all; `deserialize` decodes one.
    """
    wanted = None if topics is None else set(topics)
    raw_set = set(raw_topics)
    try:
        with Reader(Path(path)) as reader:
            connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
            if not connections:  # rosbags reads an empty list as "every connection"
                return
            seen: Counter[int] = Counter()
            for connection, timestamp, data in reader.messages(connections=connections):
                seen[connection.id] += 1
                raw = RawMessage(connection.topic, connection.msgtype, timestamp, data)
                if connection.topic in raw_set:
                    yield raw
                    continue
                try:
                    message = deserialize(path, raw)
                except BagError as error:
                    if on_undecodable is None:
                        raise
                    on_undecodable(error)
                    continue
                yield message
            _report_lost(path, connections, seen, on_lost)
    except BagError:
        raise
    except READ_ERRORS as err:
        raise BagError(f"cannot read bag {path}: {type(err).__name__}: {err}") from err


def _report_lost(
    path: Path | str,
    connections: Iterable[Any],
    seen: Counter[int],
    on_lost: Callable[[str, int], None] | None,
) -> None:
    """Compare the messages read with the counts the bag's metadata recorded, per topic."""
    missing: Counter[str] = Counter()
    for connection in connections:
        recorded = int(getattr(connection, "msgcount", 0) or 0)
        if recorded > seen[connection.id]:
            missing[connection.topic] += recorded - seen[connection.id]
    for topic, count in sorted(missing.items()):
        if on_lost is not None:
            on_lost(topic, count)
        else:
            LOG.warning(
                "%s: %d messages on %s recorded in the metadata are missing from the file",
                path,
                count,
                topic,
            )
