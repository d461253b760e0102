"""`rt-reid evaluate`: matching, moment retrieval and HAR on held-out simulated scenes.

Writes `report.md` (Markdown tables with the command line), `results.json` and `matching.png`
(accuracy vs n) into the output directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from despite.evaluate import (
    N_LIST,
    RECALL_KS,
    Embedded,
    Embedder,
    MatchingResult,
    OnnxEmbedder,
    TorchEmbedder,
    cotemporal_matching,
    embed_windows,
    har_transfer,
    moment_retrieval,
    window_matching,
)
from rt_reid.errors import ConfigError
from rt_reid.names import ModalityType

LOG = logging.getLogger(__name__)
SHORT = {ModalityType.POINTCLOUD: "PC", ModalityType.IMU: "IMU", ModalityType.SKELETON: "Skel"}
DEFAULT_SCENE = {"people": 8, "duration_s": 60.0}


def seed_range(text: str) -> range:
    """'A:B' -> range(A, B) of scene seeds."""
    try:
        first, last = (int(part) for part in text.split(":"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected FIRST:LAST seeds, got {text!r}") from err
    if last <= first:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return range(first, last)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rt-reid evaluate`."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="exported model (ONNX Runtime CPU)")
    source.add_argument("--checkpoint", type=Path, help="training checkpoint (torch)")
    parser.add_argument("--out", type=Path, help="output directory (simulated-scene protocols)")
    parser.add_argument(
        "--bags",
        type=Path,
        nargs="+",
        help="recorded bags with /sim/ground_truth: model-alone IMU→point-cloud matching of the "
        "runtime's tracks instead of the simulated-scene protocols (needs --model-dir)",
    )
    parser.add_argument("--json", type=Path, help="with --bags: write the per-bag results here")
    parser.add_argument(
        "--config", type=Path, default=None, help="with --bags: runtime config (config/reid.yaml)"
    )
    parser.add_argument(
        "--seeds",
        type=seed_range,
        default=range(9000, 9006),
        help="held-out scene seeds FIRST:LAST (default 9000:9006)",
    )
    parser.add_argument(
        "--har-train-seeds",
        type=seed_range,
        default=range(1000, 1004),
        help="scenes whose windows fit the HAR probes (training scenes)",
    )
    parser.add_argument(
        "--world",
        choices=("default", "randomized"),
        default="default",
        help="held-out scenes with the default world, or drawn by rt_reid_sim.randomize "
        "(then --people is drawn too)",
    )
    parser.add_argument(
        "--windows",
        choices=("truth", "perceived"),
        default="truth",
        help="point windows cut from each person's own returns, or by the runtime's perception",
    )
    parser.add_argument("--no-har", action="store_true", help="skip the HAR transfer probes")
    parser.add_argument("--people", type=int, default=DEFAULT_SCENE["people"])
    parser.add_argument("--duration-s", type=float, default=DEFAULT_SCENE["duration_s"])
    parser.add_argument("--n-scenes", type=int, default=1000)
    parser.add_argument("--n-list", type=int, nargs="+", default=list(N_LIST))
    parser.add_argument("--window-sizes", type=int, nargs="+", default=[1])
    parser.add_argument("--stride", type=int, default=1, help="window stride for embedding")
    parser.add_argument("--har-stride", type=int, default=8, help="window stride for HAR")
    parser.add_argument("--seed", type=int, default=0, help="matching scene sampling seed")
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/cache"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")


def make_embedder(args: argparse.Namespace) -> tuple[Embedder, str, dict[str, Any]]:
    """ONNX model directory or checkpoint -> embedder, a description, its training metadata."""
    if args.model_dir is not None:
        from rt_reid.runtime.manifest import load_manifest

        training = load_manifest(args.model_dir).training
        embedder = OnnxEmbedder(args.model_dir, threads=args.threads)
        return embedder, f"ONNX Runtime CPU, {args.model_dir}", training
    import torch

    from despite.checkpoint import load_checkpoint

    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    description = f"torch checkpoint {args.checkpoint} (step {ckpt.step})"
    return TorchEmbedder(ckpt.model, ckpt.spec), description, ckpt.training


def check_held_out(seeds: range, training: dict[str, Any]) -> None:
    """Refuse held-out scenes that the model was trained on (seeds in its training config)."""
    sim = training.get("config", {}).get("sim", {})
    if "train_seeds" in sim:
        trained = range(*sim["train_seeds"])
        overlap = sorted(set(seeds) & set(trained))
        if overlap:
            raise ConfigError(f"held-out seeds {overlap[:5]} were training scenes {trained}")


def matching_tables(results: list[MatchingResult]) -> list[str]:
    """One Markdown table per window size: rows n, a column pair (argmax / Hungarian) per pair."""
    lines: list[str] = []
    for w in sorted({r.window_size for r in results}):
        chosen = [r for r in results if r.window_size == w]
        pairs = list(dict.fromkeys((r.query, r.candidate) for r in chosen))
        ns = sorted({r.n for r in chosen})
        scenes = max(len(r.argmax) for r in chosen)
        lines += [
            f"### window_size = {w} ({scenes} scenes per n; cells: argmax / Hungarian, %)",
            "",
        ]
        header = "| n | chance | " + " | ".join(f"{SHORT[q]}→{SHORT[c]}" for q, c in pairs) + " |"
        lines += [header, "|" + "---|" * (len(pairs) + 2)]
        index = {(r.query, r.candidate, r.n): r for r in chosen}
        for n in ns:
            cells = []
            for q, c in pairs:
                s = index[(q, c, n)].summary()
                cells.append(f"{100 * s['argmax']:.1f} / {100 * s['hungarian']:.1f}")
            lines.append(f"| {n} | {100 / n:.1f} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot_matching(results: list[MatchingResult], path: Path) -> None:
    """Accuracy vs n per ordered pair (argmax solid, Hungarian dashed), chance dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [r for r in results if r.window_size == min(x.window_size for x in results)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pairs = list(dict.fromkeys((r.query, r.candidate) for r in chosen))
    for i, (q, c) in enumerate(pairs):
        rows = sorted((r for r in chosen if (r.query, r.candidate) == (q, c)), key=lambda r: r.n)
        ns = [r.n for r in rows]
        color = f"C{i}"
        ax.plot(
            ns,
            [100 * np.mean(r.argmax) for r in rows],
            "-o",
            color=color,
            ms=3,
            label=f"{SHORT[q]}→{SHORT[c]} argmax",
        )
        ax.plot(ns, [100 * np.mean(r.hungarian) for r in rows], "--", color=color)
    ns = sorted({r.n for r in chosen})
    ax.plot(ns, [100 / n for n in ns], ":", color="black", label="chance")
    ax.set(
        xlabel="n (windows per scene)",
        ylabel="accuracy (%)",
        ylim=(0, 100),
        title="Window matching (solid: argmax, dashed: Hungarian)",
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_bags(args: argparse.Namespace) -> int:
    """Model-alone matching on recorded bags: one line per bag, optional JSON file."""
    from despite.bag_eval import evaluate_bag
    from rt_reid.config import load_config
    from rt_reid.paths import find_data

    if args.model_dir is None:
        raise ConfigError("--bags needs --model-dir (the exported model the runtime runs)")
    config = load_config(args.config if args.config is not None else _default_config(find_data))
    rows = []
    for bag in args.bags:
        result = evaluate_bag(bag, model_dir=args.model_dir, config=config)
        row = result.summary()
        rows.append(row)
        print(
            f"{row['bag']}: {row['windows']} windows in {row['groups']} co-present groups, "
            f"argmax {100 * row['argmax']:.1f} %, Hungarian {100 * row['hungarian']:.1f} %, "
            f"true-pair similarity median {_median(row['true_pairs'])}, false-pair median "
            f"{_median(row['false_pairs'])}, AUC {row['auc']:.3f}"
        )
    if args.json is not None:
        payload = {"model_dir": str(args.model_dir), "gate_m": 0.5, "bags": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _default_config(find_data: Any) -> Path:
    """config/reid.yaml of this checkout, else of the installed package."""
    local = Path(__file__).resolve().parents[1] / "config" / "reid.yaml"
    return local if local.is_file() else Path(find_data("config/reid.yaml"))


def _median(stats: dict[str, Any]) -> str:
    """Median of a similarity distribution, or '-' when it is empty."""
    if not stats.get("count"):
        return "-"
    return f"{stats['percentiles_5_25_50_75_95'][2]:.3f}"


def run(args: argparse.Namespace) -> int:
    """Embed held-out windows, run every protocol, write report.md / results.json / plot."""
    from despite.train import sim_store

    if args.bags:
        return run_bags(args)
    if args.out is None:
        raise ConfigError("evaluate needs --out DIR (or --bags BAG ... for recorded bags)")
    embedder, description, training = make_embedder(args)
    spec = embedder.spec
    check_held_out(args.seeds, training)
    if set(args.seeds) & set(args.har_train_seeds):
        raise ConfigError("held-out --seeds overlap --har-train-seeds")
    randomized = args.world == "randomized"
    scene: dict[str, Any] = {"duration_s": args.duration_s}
    if not randomized:
        scene["people"] = args.people
    progress = not args.no_progress
    store = sim_store(
        args.seeds,
        spec,
        scene_options=scene,
        cache_dir=args.cache_dir,
        progress=progress,
        randomize=randomized,
        windows=args.windows,
    )
    if args.windows == "perceived":
        from despite.train import validation_starts

        starts = validation_starts(store, spec, args.stride)  # perceived, one per person and time
    else:
        starts = store.window_starts(spec.window_frames, stride=args.stride)
    data = embed_windows(embedder, store, starts, progress=progress)
    tracks = len(np.unique(data.track))
    LOG.info("embedded %d windows of %d held-out tracks", len(starts), tracks)
    matching = window_matching(
        data,
        n_list=args.n_list,
        n_scenes=args.n_scenes,
        window_sizes=args.window_sizes,
        seed=args.seed,
    )
    modalities = list(data.embeddings)
    ordered = [(q, c) for q in modalities for c in modalities if q != c]
    cotemporal = {f"{q}->{c}": cotemporal_matching(data, query=q, candidate=c) for q, c in ordered}
    moments = {f"{q}->{c}": moment_retrieval(data, query=q, candidate=c) for q, c in ordered}
    har: dict[str, Any] = {}
    if not args.no_har:
        train_store = sim_store(
            args.har_train_seeds,
            spec,
            scene_options=scene,
            cache_dir=args.cache_dir,
            progress=progress,
            randomize=randomized,
        )
        har_train = embed_windows(
            embedder,
            train_store,
            train_store.window_starts(spec.window_frames, stride=args.har_stride),
            progress=progress,
        )
        har_test = _subsample(data, args.har_stride)
        har = {m: har_transfer(har_train, har_test, m) for m in modalities}
    args.out.mkdir(parents=True, exist_ok=True)
    command = (
        "python -m rt_reid " + shlex.join(sys.argv[1:])
        if sys.argv[1:2] == ["evaluate"]
        else "python -m rt_reid evaluate ..."
    )
    results = {
        "command": command,
        "encoders": description,
        "spec": spec.to_dict(),
        "held_out_seeds": [args.seeds.start, args.seeds.stop],
        "har_train_seeds": [args.har_train_seeds.start, args.har_train_seeds.stop],
        "scene": scene,
        "world": args.world,
        "point_windows": args.windows,
        "windows": len(starts),
        "tracks": tracks,
        "matching": [r.summary() for r in matching],
        "cotemporal": cotemporal,
        "moment_retrieval": moments,
        "har": har,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if matching:
        plot_matching(matching, args.out / "matching.png")
    (args.out / "report.md").write_text("\n".join(report_lines(results, matching)) + "\n")
    print(f"wrote {args.out / 'report.md'}")
    return 0


def _subsample(data: Embedded, stride: int) -> Embedded:
    """Every `stride`-th window (HAR test set: neighbouring windows are near duplicates)."""
    keep = np.arange(0, len(data.track), stride)
    return Embedded(
        {m: e[keep] for m, e in data.embeddings.items()},
        data.track[keep],
        data.start_time[keep],
        data.scene[keep],
        data.labels[keep],
    )


def report_lines(results: dict[str, Any], matching: list[MatchingResult]) -> list[str]:
    """The Markdown report."""
    spec = results["spec"]
    lines = [
        "## Evaluation",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Encoders: {results['encoders']}. Windows: {spec['window_frames']} frames, "
        f"{spec['points_per_frame']} points, centring `{spec['centring']}`, layout "
        f"`{spec['layout']}`.",
        f"Held-out simulated scenes: seeds {results['held_out_seeds'][0]}..."
        f"{results['held_out_seeds'][1] - 1} ({results['scene']}), {results['tracks']} tracks "
        f"(people with wearables), {results['windows']} windows. Distinct from training seeds.",
        "",
        "### Window matching (paper protocol, corrected)",
        "",
        "n distinct tracks per scene, one window each, seeded; query→candidate in the true "
        "direction; argmax (paper rule) / Hungarian assignment.",
        "",
    ]
    lines += matching_tables(matching)
    lines += [
        "### Co-temporal matching (same scene, same time: the runtime's situation)",
        "",
        "| pair | groups | argmax % | Hungarian % | chance % |",
        "|---|---|---|---|---|",
    ]
    for pair, r in results["cotemporal"].items():
        if r.get("groups"):
            q, c = pair.split("->")
            lines.append(
                f"| {SHORT[q]}→{SHORT[c]} | {r['groups']} | {100 * r['argmax']:.1f} | "
                f"{100 * r['hungarian']:.1f} | {100 * r['chance']:.1f} |"
            )
    lines += [
        "",
        "### Temporal moment retrieval (hit: start within ±10 frames, same track)",
        "",
        "| pair | " + " | ".join(f"R@{k} %" for k in RECALL_KS) + " |",
        "|---|" + "---|" * len(RECALL_KS),
    ]
    for pair, r in results["moment_retrieval"].items():
        q, c = pair.split("->")
        lines.append(
            f"| {SHORT[q]}→{SHORT[c]} | "
            + " | ".join(f"{100 * r[f'R@{k}']:.1f}" for k in RECALL_KS)
            + " |"
        )
    if results["har"]:
        lines += [
            "",
            "### HAR transfer (frozen embeddings; activity labels of the simulator)",
            "",
            "| encoder | 1-NN % | linear probe % | majority class % |",
            "|---|---|---|---|",
        ]
    for modality, r in results["har"].items():
        lines.append(
            f"| {SHORT[modality]} | {100 * r['knn1']:.1f} | {100 * r['linear']:.1f} | "
            f"{100 * r['majority']:.1f} |"
        )
    lines += ["", "Plot: `matching.png` (accuracy vs n)."]
    return lines
