"""sensor_msgs/PointCloud2 -> numpy by field name and offset, for any driver's layout.

The cloud is viewed in place through a numpy structured dtype (offsets, ``point_step`` and
``row_step`` become strides), so parsing costs one gather of the finite points and nothing else.
Works with `rosbags` and rclpy message objects (``data`` as numpy uint8, bytes, bytearray or
array.array).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from rt_reid.errors import MessageError

# sensor_msgs/PointField datatype constants -> numpy scalar type (byte order added later).
POINTFIELD_TYPES: dict[int, str] = {
    1: "i1",  # INT8
    2: "u1",  # UINT8
    3: "i2",  # INT16
    4: "u2",  # UINT16
    5: "i4",  # INT32
    6: "u4",  # UINT32
    7: "f4",  # FLOAT32
    8: "f8",  # FLOAT64
}
FLOAT32 = 7
PLAUSIBLE_M = (1e-6, 1e6)  # |non-zero coordinate| range of a real cloud, metres
XYZ = ("x", "y", "z")


class FrameIdError(MessageError):
    """A cloud's header.frame_id differs from the stream's first one."""


class FrameIdCheck:
    """The first cloud's frame_id is the stream's frame; a cloud in another frame is refused.

    Points in another frame would be tracked as if in the first one (a sensor swap or a driver
    restart with another frame), so the shell skips and counts such clouds instead.
    """

    def __init__(self) -> None:
        self.frame_id: str | None = None

    def check(self, frame_id: str) -> None:
        """Adopt the first frame_id; raise FrameIdError for a different later one."""
        if self.frame_id is None:
            self.frame_id = frame_id
        elif frame_id != self.frame_id:
            raise FrameIdError(
                f"PointCloud2 frame_id changed from {self.frame_id!r} to {frame_id!r} mid-stream"
            )


def pointcloud2_to_xyz(msg: Any) -> npt.NDArray[np.float32]:
    """(N, 3) float32 finite points of a PointCloud2; no-returns (NaN/inf) are dropped."""
    xyz, _ = pointcloud2_to_arrays(msg, ())
    return xyz


def pointcloud2_to_arrays(
    msg: Any, fields: Sequence[str]
) -> tuple[npt.NDArray[np.float32], dict[str, npt.NDArray[Any]]]:
    """Finite xyz (N, 3) float32 plus the requested extra fields for the same N points.

    Each extra field comes back in native byte order with its declared type, shaped (N,) or
    (N, count). A requested field the cloud does not declare raises MessageError listing the
    fields it does declare.
    """
    declared = _declared_fields(msg)
    for name in XYZ:
        if name not in declared:
            raise MessageError(
                f"PointCloud2 has no '{name}' field (fields: {sorted(declared) or 'none'})"
            )
        _offset, datatype, count = declared[name]
        if datatype != FLOAT32 or count != 1:
            raise MessageError(
                f"PointCloud2 field '{name}' must be one FLOAT32 (datatype 7, count 1), "
                f"got datatype {datatype} count {count}"
            )
    missing = [name for name in fields if name not in declared]
    if missing:
        raise MessageError(
            f"PointCloud2 lacks requested field(s) {missing} (fields: {sorted(declared)})"
        )
    cloud = _structured_view(msg, declared, [*XYZ, *fields])
    flat = cloud.reshape(-1)
    # Per-axis strided views: one finite test per axis is much cheaper than a 2-D reduction.
    finite = np.isfinite(flat["x"]) & np.isfinite(flat["y"]) & np.isfinite(flat["z"])
    offsets = [declared[name][0] for name in XYZ]
    xyz = _gather_xyz(cloud, offsets, finite, bigendian=bool(msg.is_bigendian))
    _check_plausible(xyz, bool(msg.is_bigendian))
    extras: dict[str, npt.NDArray[Any]] = {}
    for name in fields:
        values = flat[name][finite]
        extras[name] = values.astype(values.dtype.newbyteorder("="), copy=False)
    return xyz, extras


def _gather_xyz(
    cloud: npt.NDArray[Any], offsets: list[int], finite: npt.NDArray[np.bool_], *, bigendian: bool
) -> npt.NDArray[np.float32]:
    """(N, 3) contiguous native float32 of the points where `finite`.

    Packed x, y, z (the usual layout) are gathered as one 12-byte record per point, an order of
    magnitude faster than a boolean gather of an (N, 3) strided float view.
    """
    scalar = np.dtype(">f4" if bigendian else "<f4")
    if offsets[1] == offsets[0] + 4 and offsets[2] == offsets[0] + 8:
        itemsize = cloud.dtype.itemsize
        record = np.dtype(
            {"names": ["xyz"], "formats": ["V12"], "offsets": [offsets[0]], "itemsize": itemsize}
        )
        gathered = cloud.reshape(-1).view(record)["xyz"][finite].view(scalar).reshape(-1, 3)
    else:
        flat = cloud.reshape(-1)
        gathered = np.stack([flat[name][finite] for name in XYZ], axis=-1)
    return gathered.astype(np.float32, copy=False)


def _check_plausible(xyz: npt.NDArray[np.float32], bigendian: bool) -> None:
    """MessageError when most coordinates are absurd, as when the byte order is declared wrong.

    Byte-swapped float32 metres become denormals or huge values; a real cloud has its non-zero
    coordinates between a micrometre and a thousand kilometres.
    """
    magnitude = np.abs(xyz)
    nonzero = np.count_nonzero(magnitude)
    if nonzero == 0:
        return
    zeros = magnitude.size - nonzero  # below the lower bound but not counted (no gather needed)
    tiny = np.count_nonzero(magnitude < PLAUSIBLE_M[0]) - zeros
    absurd = tiny + np.count_nonzero(magnitude > PLAUSIBLE_M[1])
    if absurd > 0.5 * nonzero:
        raise MessageError(
            f"PointCloud2 coordinates are implausible ({absurd} of {nonzero} outside "
            f"{PLAUSIBLE_M[0]:g}..{PLAUSIBLE_M[1]:g} m): is_bigendian={bigendian} is likely "
            "wrong for this data, or x/y/z are not FLOAT32 metres"
        )


def _declared_fields(msg: Any) -> dict[str, tuple[int, int, int]]:
    """Map field name -> (offset, datatype, count), checking each declaration."""
    declared: dict[str, tuple[int, int, int]] = {}
    for field in msg.fields:
        name = str(field.name)
        offset, datatype, count = int(field.offset), int(field.datatype), int(field.count)
        if datatype not in POINTFIELD_TYPES:
            raise MessageError(f"PointCloud2 field '{name}' has unknown datatype {datatype}")
        if offset < 0 or count < 0:
            raise MessageError(f"PointCloud2 field '{name}' has offset {offset} count {count}")
        if name in declared:
            raise MessageError(f"PointCloud2 declares field '{name}' twice")
        declared[name] = (offset, datatype, count)
    return declared


def _structured_view(
    msg: Any, declared: dict[str, tuple[int, int, int]], names: Sequence[str]
) -> npt.NDArray[Any]:
    """(height, width) structured zero-copy view of `msg.data` holding only `names`."""
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    order = ">" if bool(msg.is_bigendian) else "<"
    formats: list[Any] = []
    offsets: list[int] = []
    for name in names:
        offset, datatype, count = declared[name]
        scalar = np.dtype(order + POINTFIELD_TYPES[datatype])
        end = offset + scalar.itemsize * max(count, 1)
        if end > point_step:
            raise MessageError(
                f"PointCloud2 field '{name}' ends at byte {end} but point_step is {point_step}"
            )
        formats.append(scalar if count <= 1 else (scalar, count))
        offsets.append(offset)
    dtype = np.dtype(
        {"names": list(names), "formats": formats, "offsets": offsets, "itemsize": point_step}
    )
    if height < 0 or width < 0:
        raise MessageError(f"PointCloud2 has negative size {height}x{width}")
    if row_step < width * point_step:
        raise MessageError(
            f"PointCloud2 row_step {row_step} < width {width} x point_step {point_step}"
        )
    try:
        data = np.frombuffer(msg.data, dtype=np.uint8)
    except (TypeError, ValueError):
        try:
            data = np.asarray(msg.data, dtype=np.uint8)
        except (TypeError, ValueError, OverflowError) as err:
            raise MessageError(f"PointCloud2 data is not a byte buffer: {err}") from err
    if height == 0 or width == 0:
        if data.size:
            raise MessageError(
                f"PointCloud2 declares {height}x{width} points but holds {data.size} bytes"
            )
        return np.zeros((0, 0), dtype=dtype)
    needed = (height - 1) * row_step + width * point_step
    if data.size < needed:
        raise MessageError(
            f"PointCloud2 data too short: {data.size} bytes for {height}x{width} points "
            f"(point_step {point_step}, row_step {row_step}) needs {needed}"
        )
    if data.size >= needed + row_step:  # whole rows beyond `height`: the size fields are wrong
        raise MessageError(
            f"PointCloud2 data holds {data.size} bytes, {data.size // row_step} rows of "
            f"row_step {row_step}, but height is {height}: height/width/row_step do not match "
            "the data"
        )
    return np.ndarray(
        shape=(height, width), dtype=dtype, buffer=data, offset=0, strides=(row_step, point_step)
    )
