"""TrackWindows: ring buffer per track, readiness, missing frames, centring, eviction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rt_reid.runtime.features import assemble_window, fill_missing_frames, sample_frame
from rt_reid.runtime.windows import TrackWindows, WindowError


def _windows(**overrides: Any) -> TrackWindows:
    options: dict[str, Any] = {
        "window_frames": 6,
        "points_per_frame": 16,
        "centring": "frame",
        "lag_frames": 1,
        "min_observed_fraction": 0.5,
        "min_points": 4,
    }
    options.update(overrides)
    return TrackWindows(**options)


def _cloud(frame: int, n: int = 40) -> np.ndarray:
    rng = np.random.default_rng(frame)
    return (rng.normal(size=(n, 3)) * 0.2 + [frame * 0.1, 2.0, 0.0]).astype(np.float32)


def test_window_equals_training_preprocessing() -> None:
    windows = _windows(centring="window")
    observed = {0, 1, 3, 4, 5}  # frame 2 not observed
    for frame in range(7):
        windows.update(frame, {7: _cloud(frame) if frame in observed or frame == 6 else None})
    assert windows.ready(7, 5)
    batch = windows.windows([7], 5)
    samples = [sample_frame(_cloud(f), 16) if f in observed else None for f in range(6)]
    points = fill_missing_frames([s[0] if s else None for s in samples])
    centroids = fill_missing_frames([s[1] if s else None for s in samples])  # type: ignore[misc]
    expected = assemble_window(np.stack(points), np.stack(centroids), "window")
    assert batch.shape == (1, 6, 16, 3)
    np.testing.assert_allclose(batch[0], expected, atol=1e-6)
    assert windows.observed_fraction(7, 5) == pytest.approx(5 / 6)


def test_readiness_needs_full_history_and_enough_observations() -> None:
    windows = _windows()
    for frame in range(5):
        windows.update(frame, {1: _cloud(frame), 2: None if frame % 3 else _cloud(frame)})
    assert not windows.ready(1, 4)  # only 5 frames exist, window needs 6
    windows.update(5, {1: _cloud(5), 2: None})
    assert windows.ready(1, 5)
    assert not windows.ready(2, 5)  # observed in 2 of 6 frames < 50 %
    with pytest.raises(WindowError, match="track 2"):
        windows.windows([1, 2], 5)
    windows.update(6, {1: _cloud(6, n=3), 2: None})  # 3 points < min_points: not observed
    assert windows.observed_fraction(1, 6) == pytest.approx(5 / 6)


def test_tracks_are_evicted_and_memory_bounded() -> None:
    windows = _windows()
    for frame in range(50):
        windows.update(frame, {1: _cloud(frame), 2: _cloud(frame)})
    assert sorted(windows.track_ids) == [1, 2]
    assert len(windows._tracks[1]) == 7  # window + lag
    assert not windows.ready(1, 40)  # frames beyond the ring are gone
    windows.update(50, {2: _cloud(50)})
    assert windows.track_ids == [2]
    windows.update(51, {1: _cloud(51), 2: _cloud(51)})  # an id that comes back starts afresh
    assert not windows.ready(1, 51)
    windows.clear()
    assert windows.track_ids == []


def test_frames_are_sampled_once_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    import rt_reid.runtime.windows as module

    calls = []

    def counting(points, n):
        calls.append(len(points))
        return sample_frame(points, n)

    monkeypatch.setattr(module, "sample_frame", counting)
    windows = _windows(lag_frames=0)
    for frame in range(10):
        windows.update(frame, {1: _cloud(frame)})
        if frame >= 5:
            windows.windows([1], frame)
    assert len(calls) == 10  # each frame sampled exactly once across 5 overlapping windows
