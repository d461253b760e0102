"""Packet format: round trips, a strict decoder with named reasons, and a hypothesis fuzz test."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rt_reid.errors import PacketError
from rt_reid.wearables.guard import (
    REJECTION_REASONS,
    PacketRejectedError,
    PacketVerifier,
    ReplayGuard,
)
from rt_reid.wearables.keys import Registration
from rt_reid.wearables.packet import HEADER, MAX_SAMPLES, ImuPacket, decode_packet, encode_packet


def make_packet(count: int = 3, *, orientation: bool = True, sequence: int = 7) -> ImuPacket:
    """A valid packet with distinct, realistic values."""
    rng = np.random.default_rng(count)
    quats = rng.normal(size=(count, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return ImuPacket(
        identity="w3f9a1",
        site="left_forearm",
        sequence=sequence,
        stamps_ns=1_700_000_000_000_000_000 + np.arange(count, dtype=np.int64) * 5_000_000,
        specific_force=rng.normal(0, 3, size=(count, 3)).astype(np.float32),
        angular_velocity=rng.normal(0, 1, size=(count, 3)).astype(np.float32),
        orientation_xyzw=quats.astype(np.float32) if orientation else None,
    )


@pytest.mark.parametrize("orientation", [True, False])
@pytest.mark.parametrize("count", [1, 4, MAX_SAMPLES])
def test_round_trip_is_exact(count: int, orientation: bool) -> None:
    packet = make_packet(count, orientation=orientation)
    data = encode_packet(packet)
    sample_bytes = 48 if orientation else 32
    assert len(data) == HEADER.size + len("w3f9a1") + len("left_forearm") + count * sample_bytes
    decoded = decode_packet(data)
    assert (decoded.identity, decoded.site, decoded.sequence) == ("w3f9a1", "left_forearm", 7)
    np.testing.assert_array_equal(decoded.stamps_ns, packet.stamps_ns)
    np.testing.assert_array_equal(decoded.specific_force, packet.specific_force)
    np.testing.assert_array_equal(decoded.angular_velocity, packet.angular_velocity)
    if orientation:
        assert decoded.orientation_xyzw is not None
        np.testing.assert_array_equal(decoded.orientation_xyzw, packet.orientation_xyzw)
    else:
        assert decoded.orientation_xyzw is None


def test_header_layout_matches_the_readme() -> None:
    data = encode_packet(make_packet(2, sequence=0x01020304))
    assert data[:2] == b"RW"
    assert data[2] == 1  # version
    assert data[3] == 0x01  # orientation flag
    assert data[4:8] == bytes([4, 3, 2, 1])  # little-endian sequence
    assert struct.unpack_from("<H", data, 8)[0] == 2
    assert (data[10], data[11]) == (6, 12)
    assert data[12:18] == b"w3f9a1"
    assert struct.unpack_from("<q", data, 30)[0] == 1_700_000_000_000_000_000


def _patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


VALID = encode_packet(make_packet(2))
SAMPLE0 = HEADER.size + 6 + 12


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than"),
        (VALID[:5], "shorter than"),
        (_patched(VALID, 0, b"XX"), "bad magic"),
        (_patched(VALID, 2, b"\x02"), "unsupported packet version 2"),
        (_patched(VALID, 3, b"\x81"), "reserved flag bits"),
        (_patched(VALID, 8, struct.pack("<H", 0)), "sample count 0"),
        (_patched(VALID, 8, struct.pack("<H", MAX_SAMPLES + 1)), "sample count"),
        (VALID[:-1], "does not match its header"),
        (VALID + b"\x00", "does not match its header"),
        (_patched(VALID, 3, b"\x00"), "does not match its header"),
        (_patched(VALID, 12, b"9"), "not a ROS name token"),
        (_patched(VALID, 12, b"\xff"), "not ASCII"),
        (_patched(VALID, 10, b"\x00"), "does not match its header"),
        (_patched(VALID, SAMPLE0, struct.pack("<q", -5)), "must be positive"),
        (_patched(VALID, SAMPLE0 + 48, VALID[SAMPLE0 : SAMPLE0 + 8]), "strictly increasing"),
        (_patched(VALID, SAMPLE0 + 8, struct.pack("<f", float("nan"))), "specific force"),
        (_patched(VALID, SAMPLE0 + 20, struct.pack("<f", 1e6)), "angular velocity exceeds"),
        (_patched(VALID, SAMPLE0 + 32, struct.pack("<4f", 0, 0, 0, 2)), "unit norm"),
    ],
)
def test_decoder_names_the_problem(data: bytes, reason: str) -> None:
    with pytest.raises(PacketError, match=reason):
        decode_packet(data)


def test_encoder_refuses_what_the_decoder_would_refuse() -> None:
    packet = make_packet(2)
    with pytest.raises(PacketError, match="ROS name token"):
        encode_packet(ImuPacket(**{**packet.__dict__, "identity": "a/b"}))
    with pytest.raises(PacketError, match="shape"):
        encode_packet(ImuPacket(**{**packet.__dict__, "specific_force": np.zeros((3, 3))}))
    with pytest.raises(PacketError, match="32 bits"):
        encode_packet(ImuPacket(**{**packet.__dict__, "sequence": 2**32}))
    with pytest.raises(PacketError, match=r"1\.\.256 samples"):
        encode_packet(make_packet(MAX_SAMPLES + 1))


def _decode_or_packet_error(data: bytes) -> None:
    """The only allowed outcomes: a packet, or PacketError (any other exception fails)."""
    try:
        packet = decode_packet(data)
    except PacketError:
        return
    assert encode_packet(packet) == data  # anything accepted is canonical


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_or_packet_error(data)


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(
        [encode_packet(make_packet(n, orientation=o)) for n in (1, 3) for o in (False, True)]
    ),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    st.integers(-8, 8),
)
def test_fuzz_mutated_valid_packets(base: bytes, edits: list[tuple[int, int]], resize: int) -> None:
    data = bytearray(base)
    for position, value in edits:
        data[position % len(data)] = value
    if resize < 0:
        del data[resize:]
    else:
        data.extend(bytes(resize))
    _decode_or_packet_error(bytes(data))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda base, position, value: base[:position] + bytes([value]) + base[position + 1 :],
            st.sampled_from([VALID, encode_packet(make_packet(1, orientation=False))]),
            st.integers(0, 60),
            st.integers(0, 255),
        ),
    ),
    st.sampled_from(["alice-key", "unknown-key"]),
)
def test_fuzz_admission_only_rejects(data: bytes, user_id: str) -> None:
    """The whole admission path (key lookup, decode, binding, replay) only ever rejects."""
    registration = Registration("w3f9a1", "alice-key", ("left_forearm",))
    verifier = PacketVerifier(
        allowed={"alice-key": registration},
        replay=ReplayGuard(max_delay_s=1.0, stream_timeout_s=5.0),
    )
    reason = None
    try:
        packet = verifier.verify(user_id, data, now_s=1.7e9)
    except PacketRejectedError as err:
        reason = err.reason
    if reason is None:
        assert user_id == "alice-key"
        assert (packet.identity, packet.site) == ("w3f9a1", "left_forearm")
    else:
        assert reason in REJECTION_REASONS
