"""A ray-cast test world for perception tests: a room, cylinders for people, boxes for clutter."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

FLOOR = -1.5  # the sensor is mounted 1.5 m above the floor


@dataclasses.dataclass(frozen=True)
class Cylinder:
    """Vertical cylinder (a person) standing on the floor."""

    x: float
    y: float
    radius: float
    height: float

    def hit(self, rays):
        """Range along each unit ray to the cylinder (inf where missed), sensor at the origin."""
        a = rays[:, 0] ** 2 + rays[:, 1] ** 2
        b = -2 * (rays[:, 0] * self.x + rays[:, 1] * self.y)
        c = self.x**2 + self.y**2 - self.radius**2
        disc = b * b - 4 * a * c
        with np.errstate(invalid="ignore", divide="ignore"):
            side = (-b - np.sqrt(disc)) / (2 * a)
            z = side * rays[:, 2]
            side[~((disc >= 0) & (side > 0) & (z >= FLOOR) & (z <= FLOOR + self.height))] = np.inf
            cap = (FLOOR + self.height) / rays[:, 2]
            off = np.hypot(cap * rays[:, 0] - self.x, cap * rays[:, 1] - self.y)
            cap[~((cap > 0) & (off <= self.radius))] = np.inf
        return np.minimum(side, cap)


@dataclasses.dataclass(frozen=True)
class Box:
    """Axis-aligned box (furniture, clutter, the room from inside)."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def hit(self, rays):
        """Range along each unit ray to the box surface (inf where missed)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = np.array(self.low) / rays, np.array(self.high) / rays
        near = np.nanmax(np.minimum(t1, t2), axis=1)
        far = np.nanmin(np.maximum(t1, t2), axis=1)
        if near.min() < 0 <= far.min():  # seen from inside: the far side
            return far
        return np.where((near <= far) & (near > 0), near, np.inf)


@functools.cache
def rays():
    """Unit rays of the test LiDAR: 0.5 deg azimuth x 1 deg elevation, -45..15 deg."""
    az, el = np.meshgrid(np.radians(np.arange(0, 360, 0.5)), np.radians(np.arange(-45, 15, 1.0)))
    az, el = az.ravel(), el.ravel()
    return np.c_[np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)]


ROOM = Box((-5.0, -4.0, FLOOR), (5.0, 4.0, FLOOR + 2.8))  # 10 m x 8 m x 2.8 m


@functools.cache
def room_ranges():
    return ROOM.hit(rays())


def cast(*shapes, seed, room=True):
    """Ray-cast the room and shapes (nearest hit per ray) with 1 cm range noise."""
    ranges = room_ranges().copy() if room else np.full(len(rays()), np.inf)
    for shape in shapes:
        ranges = np.minimum(ranges, shape.hit(rays()))
    hit = np.isfinite(ranges)
    noise = np.random.default_rng(seed).normal(0, 0.01, hit.sum())
    return (rays()[hit] * (ranges[hit] + noise)[:, None]).astype(np.float32)


def body(x, y, *, height=1.75, radius=0.2):
    return Cylinder(x, y, radius, height)


def box(x, y, *, size=(0.5, 0.5, 0.9)):
    half = np.array(size[:2]) / 2
    return Box((x - half[0], y - half[1], FLOOR), (x + half[0], y + half[1], FLOOR + size[2]))


def body_points(x, y, *, height=1.75, radius=0.2, seed=0):
    """The returns of one person alone (no room)."""
    return cast(body(x, y, height=height, radius=radius), seed=seed, room=False)


def head_and_shoulders(x, y, *, seed=0):
    """A body with shoulders at 1.5 m and a 0.1 m-radius head up to 1.75 m."""
    return cast(body(x, y, height=1.5), body(x, y, radius=0.1), seed=seed, room=False)


def frame(*shapes, seed):
    """One LiDAR frame of the room with these shapes in it."""
    return cast(*shapes, seed=seed)
