"""Replay report: a Markdown page with the identity, tracker and latency numbers plus three plots.

Plots use matplotlib's Agg backend (files only, no display), so reports render on headless CI.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rt_reid.errors import ReidError
from rt_reid.evaluation.metrics import latency_percentiles

if TYPE_CHECKING:
    from rt_reid.evaluation.replay import ReplayResult

ACCURACY_PLOT = "identity_accuracy.png"
HEATMAP_PLOT = "similarity_heatmap.png"
LATENCY_PLOT = "latency_histogram.png"
METRICS_JSON = "metrics.json"
REPORT_MD = "report.md"
SMOOTHING_S = 1.0
RATE_KEYS = {"mota", "idf1", "motp", "precision", "recall"}  # tracker keys that are not counts
NO_TRACK_KEYS = ("no_track_rate", "person_frames")  # tracker keys of the no-track breakdown


def _fmt(value: float, spec: str = ".3f") -> str:
    """Number for a table cell ("n/a" for NaN)."""
    return "n/a" if isinstance(value, float) and math.isnan(value) else format(value, spec)


def _plot_accuracy(result: ReplayResult, path: Path) -> None:
    """Per-frame identity accuracy over the scored persons, raw and smoothed over 1 s."""
    import matplotlib.pyplot as plt

    assert result.identity is not None
    series = np.array(result.identity.accuracy_over_time, dtype=np.float64).reshape(-1, 2)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    if len(series):
        t = series[:, 0] - min(f.stamp_ns for f in result.truth) * 1e-9
        ax.plot(t, series[:, 1], lw=0.6, alpha=0.4, label="per frame")
        kernel = np.ones(max(1, round(SMOOTHING_S * result.frame_rate_hz)))
        smooth = np.convolve(series[:, 1], kernel, mode="same") / np.convolve(
            np.ones(len(series)), kernel, mode="same"
        )
        ax.plot(t, smooth, lw=1.6, label=f"{SMOOTHING_S:g} s mean")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time since the start of the bag [s]")
    ax.set_ylabel("identity accuracy")
    ax.set_title("Identity accuracy over scored persons (after warm-up)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_heatmap(result: ReplayResult, path: Path) -> None:
    """Mean cosine similarity of each ground-truth person's track to each wearable identity."""
    import matplotlib.pyplot as plt

    rows, cols, matrix = result.similarity_by_person
    size = max(3.0, 0.35 * max(len(rows), len(cols)) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(matrix, cmap="viridis", vmin=-1.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlabel("wearable identity")
    ax.set_ylabel("ground-truth person (its identity)")
    ax.set_title("Mean track-wearable cosine similarity")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_latency(result: ReplayResult, path: Path) -> None:
    """Histogram of end-to-end per-frame latency with p50/p99 marked."""
    import matplotlib.pyplot as plt

    total = np.asarray(result.timings.get("total", []), dtype=np.float64) * 1e3
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if total.size:
        ax.hist(total, bins=min(60, max(10, total.size // 10)), color="tab:blue", alpha=0.8)
        for q, style in ((50, "--"), (99, ":")):
            value = float(np.percentile(total, q))
            ax.axvline(value, color="k", ls=style, label=f"p{q} {value:.1f} ms")
        ax.legend()
    ax.set_xlabel("pipeline latency per frame [ms]")
    ax.set_ylabel("frames")
    ax.set_title("End-to-end latency (decode + pipeline)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(result: ReplayResult, plots: list[str]) -> str:
    """The report text."""
    lines = [
        "# rt_reid replay report",
        "",
        f"- input bag: `{result.in_bag}`",
        f"- output bag: `{result.out_bag}`",
        f"- model: `{result.model_dir}` (backend: {result.backend})",
        f"- frames: {result.frames} LiDAR frames over {result.bag_duration_s:.1f} s, "
        f"{result.imu_messages} IMU messages",
        f"- replay: {result.wall_s:.1f} s wall, {_fmt(result.realtime_factor, '.1f')}x real time",
        f"- skipped messages: {dict(result.skipped) or 'none'}; pipeline resets: {result.resets}",
        "",
    ]
    if result.identity is not None:
        summary = result.identity.summary()
        lines += [
            "## Stream identity metrics",
            "",
            f"Scored after a {result.warmup_s:g} s warm-up from each entry into the room; tracks "
            f"matched to persons by horizontal distance within {result.gate_m:g} m.",
            "",
            "| metric | value |",
            "|---|---|",
            f"| identity accuracy (person-frames) | {_fmt(summary['identity_accuracy'], '.4f')} |",
            f"| accuracy on tracked person-frames | {_fmt(summary['tracked_accuracy'], '.4f')} |",
            "| wrong-identity claims per frame | "
            f"{_fmt(summary['wrong_claims_per_frame'], '.4f')} |",
            f"| bystander frames labelled | {summary['bystander_labelled_frames']} "
            f"({_fmt(summary['bystander_labelled_rate'], '.4f')}) |",
            f"| identity switches | {summary['id_switches']} |",
            f"| missed person-frames (no track) | {_fmt(summary['missed_rate'], '.4f')} |",
            f"| person-frames labelled unknown | {summary['unknown_person_frames']} |",
            f"| person-frames labelled wrong | {summary['wrong_person_frames']} |",
            f"| time to first correct identity, median / max [s] | "
            f"{_fmt(summary['time_to_identity_median_s'], '.2f')} / "
            f"{_fmt(summary['time_to_identity_max_s'], '.2f')} |",
            f"| persons never identified | {summary['never_identified']} of {summary['persons']} |",
            "| persons with wearables / bystanders | "
            f"{summary['persons']} / {summary['bystanders']} |",
            f"| scored person-frames | {summary['scored_person_frames']} |",
            "| expected calibration error of the published scores (labelled tracks) | "
            f"{_fmt(result.label_confidence_ece, '.4f')} |",
            "",
        ]
    if result.tracker is not None:
        lines += _tracker_lines(result.tracker, result.warmup_s)
    lines += [
        "## Latency per frame [ms]",
        "",
        "| stage | p50 | p90 | p99 | max | mean |",
        "|---|---|---|---|---|---|",
    ]
    for stage, row in latency_percentiles(result.timings).items():
        lines.append(
            f"| {stage} | {row['p50']:.2f} | {row['p90']:.2f} | {row['p99']:.2f} | "
            f"{row['max']:.2f} | {row['mean']:.2f} |"
        )
    lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    return "\n".join(lines)


def _tracker_lines(tracker: dict[str, float], warmup_s: float) -> list[str]:
    """Tracker section: motmetrics scores, then the no-track rate by distance and motion."""
    lines = ["## LiDAR tracker (motmetrics)", "", "| metric | value |", "|---|---|"]
    breakdown = {k: v for k, v in tracker.items() if k.startswith(NO_TRACK_KEYS)}
    lines += [
        f"| {key} | {_fmt(v, '.4f') if key in RATE_KEYS else int(v)} |"
        for key, v in tracker.items()
        if key not in breakdown
    ]
    groups = [k.removeprefix("no_track_rate") for k in breakdown if k.startswith("no_track_rate")]
    if groups:
        lines += [
            "",
            f"Person-frames without a track ({warmup_s:g} s after each entry, with bystanders):",
            "",
            "| people | person-frames | no track |",
            "|---|---|---|",
        ]
        for group in groups:
            name = group.removeprefix("_")
            if name.endswith("m+"):
                name = f"{name[:-2]} m and farther"
            elif name.endswith("m"):
                name = f"{name[:-1]} m from the sensor"
            count = int(breakdown.get(f"person_frames{group}", 0))
            rate = _fmt(breakdown[f"no_track_rate{group}"], ".4f")
            lines.append(f"| {name or 'all'} | {count} | {rate} |")
    lines.append("")
    return lines


def write_report(result: ReplayResult, directory: Path) -> Path:
    """Write report.md, metrics.json and the plots into `directory`; return the report path."""
    import matplotlib

    matplotlib.use("Agg")
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        plots: list[str] = []
        if result.identity is not None:
            _plot_accuracy(result, directory / ACCURACY_PLOT)
            plots.append(ACCURACY_PLOT)
        if result.similarity_by_person[0]:
            _plot_heatmap(result, directory / HEATMAP_PLOT)
            plots.append(HEATMAP_PLOT)
        _plot_latency(result, directory / LATENCY_PLOT)
        plots.append(LATENCY_PLOT)
        (directory / METRICS_JSON).write_text(
            json.dumps(result.summary(), indent=2, default=_jsonable) + "\n", encoding="utf-8"
        )
        path = directory / REPORT_MD
        path.write_text(_markdown(result, plots), encoding="utf-8")
    except OSError as err:
        raise ReidError(f"cannot write the report into {directory}: {err}") from err
    return path


def _jsonable(value: Any) -> Any:
    """JSON fallback for numpy scalars and paths."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# Columns of the combined many-bag table: header, width.
COMBINED_COLUMNS = (
    ("bag", 24),
    ("status", 6),
    ("frames", 7),
    ("bag s", 7),
    ("wall s", 7),
    ("id acc", 8),
    ("scored", 7),
    ("wrong/fr", 8),
    ("switches", 8),
    ("MOTA", 6),
)


def _row(cells: list[str]) -> str:
    """One table line: the bag name left-aligned, numbers right-aligned."""
    (_, first), *rest = COMBINED_COLUMNS
    return " ".join(
        [cells[0].ljust(first)] + [c.rjust(w) for c, (_, w) in zip(cells[1:], rest, strict=True)]
    ).rstrip()


def _result_row(label: str, status: str, numbers: dict[str, Any], *, replay_s: float) -> str:
    """A bag's (or the pooled) row: counts, replay time, identity and tracker headline numbers."""
    identity = numbers.get("identity", {})
    return _row(
        [
            label,
            status,
            str(numbers["frames"]),
            f"{numbers['bag_duration_s']:.1f}",
            f"{replay_s:.1f}",
            _percent(identity.get("identity_accuracy")),
            str(identity.get("scored_person_frames", "-")),
            _fmt_or_dash(identity.get("wrong_claims_per_frame")),
            str(identity.get("id_switches", "-")),
            _fmt_or_dash(numbers.get("tracker", {}).get("mota")),
        ]
    )


def combined_lines(report: dict[str, Any]) -> list[str]:
    """The combined many-bag report as text: one row per bag, the pooled row, failures in full."""
    lines = [_row([name for name, _ in COMBINED_COLUMNS])]
    for row in report["bags"]:
        name = Path(row["out_bag"]).name
        s = row["summary"]
        if s is None:
            lines.append(_row([name, "FAILED", *[""] * (len(COMBINED_COLUMNS) - 2)]))
            continue
        lines.append(_result_row(name, "ok", s, replay_s=s["wall_s"]))
    p = report["pooled"]
    identity = p.get("identity", {})
    label = f"pooled ({p['replayed']} of {p['bags']} bags)"
    lines.append(_result_row(label, "", p, replay_s=p["replay_s"]))
    if identity:
        lines.append(
            f"pooled identity accuracy: {identity['correct_person_frames']} correct of "
            f"{identity['scored_person_frames']} scored person-frames over {identity['bags']} "
            "bags with ground truth (pooled over person-frames, not a mean of per-bag accuracies)"
        )
    lines.append(
        f"{p['bags']} bags, {p['workers']} worker processes: {p['bag_duration_s']:.1f} s of bags "
        f"in {p['wall_s']:.1f} s wall = {_fmt(p['realtime_factor'], '.1f')}x real time"
        + (f"; {p['failed']} failed" if p["failed"] else "")
    )
    lines += [f"failed: {row['in_bag']}: {row['error']}" for row in report["bags"] if row["error"]]
    return lines


def _percent(value: float | None) -> str:
    """A rate as a percentage, "-" when the bag has no such score."""
    return "-" if value is None else f"{value:.2%}"


def _fmt_or_dash(value: float | None) -> str:
    """A rate with three decimals, "-" when the bag has no such score."""
    return "-" if value is None else _fmt(value)


def write_combined_json(report: dict[str, Any], path: Path) -> Path:
    """Write the combined many-bag report (`rt_reid.evaluation.batch.combined_report`) as JSON."""
    try:
        path.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    except OSError as err:
        raise ReidError(f"cannot write the combined report {path}: {err}") from err
    return path
