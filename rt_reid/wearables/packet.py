"""Versioned binary packet format for wearable IMU samples, with a strict decoder.

One packet carries 1..`MAX_SAMPLES` consecutive samples of one IMU (identity, site). All integers
and floats are little-endian; the byte layout is documented in ``rt_reid/wearables/README.md``.
The decoder accepts exactly the documented layout and raises `PacketError` naming the first
problem for anything else; it never raises another exception type.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rt_reid.errors import PacketError
from rt_reid.runtime.imu_sample import ImuBatch

MAGIC = b"RW"
VERSION = 1
FLAG_ORIENTATION = 0x01
KNOWN_FLAGS = FLAG_ORIENTATION
MAX_SAMPLES = 256
MAX_NAME_BYTES = 64
# Physical plausibility limits: far above any wearable IMU's range (±16 g, ±2000 deg/s).
MAX_SPECIFIC_FORCE = 1000.0  # m/s^2
MAX_ANGULAR_VELOCITY = 100.0  # rad/s
QUATERNION_NORM_TOLERANCE = 1e-2

HEADER = struct.Struct("<2sBBIHBB")  # magic, version, flags, sequence, count, id len, site len
# A ROS 2 topic-name token: the identity and site become `/imu/<identity>/<site>`.
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

SAMPLE_DTYPE = np.dtype(
    [("stamp_ns", "<i8"), ("specific_force", "<f4", (3,)), ("angular_velocity", "<f4", (3,))]
)
SAMPLE_DTYPE_ORIENTATION = np.dtype(
    [
        ("stamp_ns", "<i8"),
        ("specific_force", "<f4", (3,)),
        ("angular_velocity", "<f4", (3,)),
        ("orientation_xyzw", "<f4", (4,)),
    ]
)
# Largest valid packet: the receiver refuses anything longer before reading it (ZMQ_MAXMSGSIZE).
MAX_PACKET_BYTES = (
    HEADER.size + 2 * MAX_NAME_BYTES + MAX_SAMPLES * SAMPLE_DTYPE_ORIENTATION.itemsize
)


@dataclass(frozen=True)
class ImuPacket:
    """Samples of one IMU: stamps (N,) int64 ns device time, vectors in the sensor frame (REP-145).

    `specific_force` (N, 3) m/s^2, `angular_velocity` (N, 3) rad/s, and `orientation_xyzw` (N, 4)
    sensor-to-device-world quaternions or None when the device does not fuse orientation.
    """

    identity: str
    site: str
    sequence: int
    stamps_ns: NDArray[np.int64]
    specific_force: NDArray[np.float32]
    angular_velocity: NDArray[np.float32]
    orientation_xyzw: NDArray[np.float32] | None = None

    @property
    def stamps_s(self) -> NDArray[np.float64]:
        """Sample stamps in seconds (float64)."""
        seconds: NDArray[np.float64] = self.stamps_ns.astype(np.float64) * 1e-9
        return seconds

    def imu_batch(self) -> ImuBatch:
        """The samples as the pipeline takes them; PacketError without orientation (it needs it)."""
        if self.orientation_xyzw is None:
            raise PacketError(
                f"{self.identity}/{self.site} sends no orientation, which the pipeline needs"
            )
        return ImuBatch(
            self.identity,
            self.site,
            self.stamps_s,
            self.orientation_xyzw.astype(np.float64),
            self.specific_force.astype(np.float64),
            self.angular_velocity.astype(np.float64),
        )


def check_name(name: str, what: str) -> bytes:
    """Validate an identity or site name and return its ASCII bytes."""
    encoded = name.encode("utf-8")
    if not 1 <= len(encoded) <= MAX_NAME_BYTES:
        raise PacketError(f"{what} must be 1..{MAX_NAME_BYTES} bytes, got {len(encoded)}")
    if NAME_PATTERN.fullmatch(name) is None or "__" in name:
        raise PacketError(
            f"{what} {name!r} is not a ROS name token ([A-Za-z][A-Za-z0-9_]*, no '__')"
        )
    return encoded


def _check_samples(
    stamps_ns: NDArray[np.int64],
    specific_force: NDArray[np.float32],
    angular_velocity: NDArray[np.float32],
    orientation_xyzw: NDArray[np.float32] | None,
) -> None:
    """Check stamps and values against the documented limits (shared by encoder and decoder).

    Each check is one reduction (a NaN fails every comparison), so a valid packet costs a few
    microseconds; the specific reason is worked out only for a packet that fails.
    """
    if stamps_ns[0] <= 0:
        raise PacketError(f"sample stamps must be positive, got {int(stamps_ns[0])} ns")
    if len(stamps_ns) > 1 and not (stamps_ns[1:] > stamps_ns[:-1]).all():
        raise PacketError("sample stamps must be strictly increasing within a packet")
    for values, what, limit in (
        (specific_force, "specific force", MAX_SPECIFIC_FORCE),
        (angular_velocity, "angular velocity", MAX_ANGULAR_VELOCITY),
    ):
        if not np.abs(values).max() <= limit:
            if not np.isfinite(values).all():
                raise PacketError(f"{what} contains NaN or infinity")
            raise PacketError(f"{what} exceeds the plausible limit of {limit} per axis")
    if orientation_xyzw is not None:
        quat = orientation_xyzw.astype(np.float64)
        deviation = np.abs(np.einsum("ij,ij->i", quat, quat) - 1.0).max()
        if not deviation <= QUATERNION_NORM_TOLERANCE:
            if not np.isfinite(quat).all():
                raise PacketError("orientation contains NaN or infinity")
            raise PacketError("orientation quaternions must have unit norm")


def encode_packet(packet: ImuPacket) -> bytes:
    """Serialise `packet`; raises PacketError if it would not decode (bad names, sizes, values)."""
    identity = check_name(packet.identity, "identity")
    site = check_name(packet.site, "site")
    count = len(packet.stamps_ns)
    if not 1 <= count <= MAX_SAMPLES:
        raise PacketError(f"a packet carries 1..{MAX_SAMPLES} samples, got {count}")
    if not 0 <= packet.sequence <= 0xFFFFFFFF:
        raise PacketError(f"sequence {packet.sequence} does not fit in 32 bits")
    shapes = {
        "specific_force": (packet.specific_force, 3),
        "angular_velocity": (packet.angular_velocity, 3),
    }
    if packet.orientation_xyzw is not None:
        shapes["orientation_xyzw"] = (packet.orientation_xyzw, 4)
    for name, (array, width) in shapes.items():
        if np.shape(array) != (count, width):
            raise PacketError(f"{name} must have shape ({count}, {width}), got {np.shape(array)}")
    dtype = SAMPLE_DTYPE if packet.orientation_xyzw is None else SAMPLE_DTYPE_ORIENTATION
    samples = np.zeros(count, dtype=dtype)
    samples["stamp_ns"] = packet.stamps_ns
    samples["specific_force"] = packet.specific_force
    samples["angular_velocity"] = packet.angular_velocity
    if packet.orientation_xyzw is not None:
        samples["orientation_xyzw"] = packet.orientation_xyzw
    _check_samples(
        samples["stamp_ns"],
        samples["specific_force"],
        samples["angular_velocity"],
        None if packet.orientation_xyzw is None else samples["orientation_xyzw"],
    )
    flags = 0 if packet.orientation_xyzw is None else FLAG_ORIENTATION
    head = HEADER.pack(MAGIC, VERSION, flags, packet.sequence, count, len(identity), len(site))
    return head + identity + site + samples.tobytes()


def _decode_name(raw: bytes, what: str) -> str:
    """Decode and validate a name field."""
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError as err:
        raise PacketError(f"{what} is not ASCII") from err
    check_name(name, what)
    return name


def decode_packet(data: bytes) -> ImuPacket:
    """Parse one packet; raise PacketError with the reason for any deviation from the format."""
    if len(data) < HEADER.size:
        raise PacketError(
            f"packet of {len(data)} bytes is shorter than the {HEADER.size}-byte header"
        )
    magic, version, flags, sequence, count, id_len, site_len = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PacketError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise PacketError(f"unsupported packet version {version}, this receiver speaks {VERSION}")
    if flags & ~KNOWN_FLAGS:
        raise PacketError(f"reserved flag bits set: 0x{flags:02x}")
    if not 1 <= count <= MAX_SAMPLES:
        raise PacketError(f"sample count {count} outside 1..{MAX_SAMPLES}")
    dtype = SAMPLE_DTYPE_ORIENTATION if flags & FLAG_ORIENTATION else SAMPLE_DTYPE
    expected = HEADER.size + id_len + site_len + count * dtype.itemsize
    if len(data) != expected:
        raise PacketError(
            f"packet length {len(data)} bytes does not match its header "
            f"({count} samples of {dtype.itemsize} bytes -> {expected} bytes)"
        )
    offset = HEADER.size
    identity = _decode_name(data[offset : offset + id_len], "identity")
    offset += id_len
    site = _decode_name(data[offset : offset + site_len], "site")
    offset += site_len
    samples = np.frombuffer(data, dtype=dtype, count=count, offset=offset).copy()
    orientation = samples["orientation_xyzw"] if flags & FLAG_ORIENTATION else None
    _check_samples(
        samples["stamp_ns"], samples["specific_force"], samples["angular_velocity"], orientation
    )
    return ImuPacket(
        identity=identity,
        site=site,
        sequence=int(sequence),
        stamps_ns=samples["stamp_ns"],
        specific_force=samples["specific_force"],
        angular_velocity=samples["angular_velocity"],
        orientation_xyzw=orientation,
    )
