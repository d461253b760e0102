"""LiDAR person perception for a static sensor: background, ground, clustering, tracking."""

from rt_reid.perception.core import LidarPerception, PerceptionResult, TrackObservation
from rt_reid.perception.params import (
    BackgroundParams,
    ClusterParams,
    GroundParams,
    PerceptionParams,
    RoiParams,
    TrackerParams,
)

__all__ = [
    "BackgroundParams",
    "ClusterParams",
    "GroundParams",
    "LidarPerception",
    "PerceptionParams",
    "PerceptionResult",
    "RoiParams",
    "TrackObservation",
    "TrackerParams",
]
