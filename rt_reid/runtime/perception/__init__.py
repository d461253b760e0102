"""LiDAR person perception for a static sensor: background, ground, clustering, tracking."""

from rt_reid.runtime.perception.core import LidarPerception, PerceptionResult, TrackObservation
from rt_reid.runtime.perception.params import (
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
