"""Replay many bags in parallel worker processes and pool their scores into one combined report.

Each bag replays in its own worker process (`concurrent.futures.ProcessPoolExecutor`, spawn
context: nothing inherited from the parent, the same on every OS) with ``OMP_NUM_THREADS=1``, so
N workers keep N cores busy instead of N x cores of threads fighting over them. A bag that fails
is reported with its error and the others go on. Scaling past one machine is not offered.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rt_reid.errors import ReidError

if TYPE_CHECKING:  # the pipeline is imported only inside the workers (fast parent, fast --help)
    from rt_reid.config import ReidConfig
    from rt_reid.evaluation.metrics import IdentityMetrics
    from rt_reid.evaluation.replay import ReplayResult

LOG = logging.getLogger(__name__)

BAG_METADATA = "metadata.yaml"  # a folder holding this file is one rosbag2
WORKER_ENV = {"OMP_NUM_THREADS": "1"}  # one compute thread per worker process
TRACKER_COUNTS = ("num_objects", "num_misses", "num_false_positives", "num_switches")


@dataclass(frozen=True)
class BagJob:
    """One bag to replay in a worker: where from, where to, with which model and parameters."""

    bag: Path
    out_bag: Path
    config: ReidConfig
    model_dir: Path
    backend: str | None
    report_dir: Path | None  # write the bag's Markdown report + plots here


@dataclass(frozen=True)
class BagOutcome:
    """What a worker sends back: the replay's headline numbers and counts, or why it failed."""

    bag: Path
    out_bag: Path
    summary: dict[str, Any] | None = None  # ReplayResult.summary(); None when the bag failed
    identity: IdentityMetrics | None = None  # counts for pooling (no per-frame series)
    error: str | None = None

    @property
    def failed(self) -> bool:
        """True when the bag could not be replayed."""
        return self.error is not None


def find_bags(paths: Sequence[Path]) -> list[Path]:
    """The bags named on the command line: a folder without metadata.yaml stands for its bags.

    Such a folder's bags are its sub-folders holding metadata.yaml (rosbag2 folders), sorted; a
    folder without any stays as it is, so replaying it reports why it is not a bag.
    """
    bags: list[Path] = []
    for path in paths:
        inner: list[Path] = []
        if path.is_dir() and not (path / BAG_METADATA).exists():
            try:
                inner = sorted(p for p in path.iterdir() if (p / BAG_METADATA).is_file())
            except OSError as err:
                raise ReidError(f"cannot list the bags in {path}: {err}") from err
        bags += inner or [path]
    return bags


def output_names(bags: Sequence[Path]) -> list[str]:
    """One distinct output folder name per bag: its name without suffix, -2, -3, ... on clashes."""
    names: list[str] = []
    for bag in bags:
        stem = bag.name.removesuffix(bag.suffix) if bag.suffix in {".mcap", ".db3"} else bag.name
        name, n = stem, 1
        while name in names:
            n += 1
            name = f"{stem}-{n}"
        names.append(name)
    return names


def outcome(result: ReplayResult) -> BagOutcome:
    """The picklable part of a replay: its summary and identity counts (per-frame data dropped)."""
    identity = result.identity and replace(
        result.identity, accuracy_over_time=[], time_to_identity_s={}, never_identified=[]
    )
    return BagOutcome(result.in_bag, result.out_bag, summary=result.summary(), identity=identity)


def replay_job(job: BagJob) -> BagOutcome:
    """Worker: replay one bag (and write its report); a ReidError becomes the outcome's error."""
    from rt_reid.evaluation.replay import BagReplayer
    from rt_reid.evaluation.report import write_report

    replayer = BagReplayer(config=job.config, model_dir=job.model_dir, backend=job.backend)
    try:
        result = replayer.run(job.bag, job.out_bag)
        if job.report_dir is not None:
            write_report(result, job.report_dir)
    except ReidError as err:
        return BagOutcome(job.bag, job.out_bag, error=str(err))
    return outcome(result)


@contextmanager
def _worker_environment() -> Iterator[None]:
    """Set WORKER_ENV for a pool's lifetime (its processes copy it as they start), then restore."""
    saved = {key: os.environ.get(key) for key in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def replay_many(
    jobs: Sequence[BagJob],
    *,
    workers: int,
    on_done: Callable[[BagOutcome], None] | None = None,
) -> list[BagOutcome]:
    """Replay `jobs` in `workers` processes; outcomes in job order, `on_done` as each finishes.

    An exception other than the ReidError a worker reports (a worker killed or out of memory, a
    bug) fails its bag, with the traceback logged, and the other bags go on.
    """
    outcomes: dict[int, BagOutcome] = {}
    context = multiprocessing.get_context("spawn")
    with _worker_environment(), ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures: dict[Future[BagOutcome], int] = {
            pool.submit(replay_job, job): i for i, job in enumerate(jobs)
        }
        for future in as_completed(futures):
            i = futures[future]
            try:
                done = future.result()
            except Exception as err:  # a dead worker or a bug fails its bag, not the batch
                LOG.error("replay of %s failed", jobs[i].bag, exc_info=err)
                done = BagOutcome(
                    jobs[i].bag, jobs[i].out_bag, error=f"{type(err).__name__}: {err}"
                )
            outcomes[i] = done
            if on_done is not None:
                on_done(done)
    return [outcomes[i] for i in range(len(jobs))]


def pooled(outcomes: Sequence[BagOutcome], *, wall_s: float, workers: int) -> dict[str, Any]:
    """Totals over the bags that replayed; rates come from summed counts, not means of rates."""
    good = [o for o in outcomes if o.summary is not None]
    summaries = [o.summary for o in good if o.summary is not None]
    duration = sum(float(s["bag_duration_s"]) for s in summaries)
    data: dict[str, Any] = {
        "bags": len(outcomes),
        "replayed": len(good),
        "failed": len(outcomes) - len(good),
        "workers": workers,
        "frames": sum(int(s["frames"]) for s in summaries),
        "bag_duration_s": duration,
        "replay_s": sum(float(s["wall_s"]) for s in summaries),  # summed over workers
        "wall_s": wall_s,  # the whole batch, start to end
        "realtime_factor": duration / wall_s if wall_s > 0 else math.nan,
    }
    scored = [o.identity for o in good if o.identity is not None]
    if scored:
        from rt_reid.evaluation.metrics import POOLED_COUNTS, pool_identity

        total = pool_identity(scored)
        data["identity"] = {
            "bags": len(scored),
            "pooling": "rates over the summed person-frames and frames of all scored bags",
            **{key: getattr(total, key) for key in POOLED_COUNTS},
            "identity_accuracy": total.identity_accuracy,
            "tracked_accuracy": total.tracked_accuracy,
            "missed_rate": total.missed_rate,
            "wrong_claims_per_frame": total.wrong_claims_per_frame,
            "bystander_labelled_rate": total.bystander_labelled_rate,
        }
    trackers = [s["tracker"] for s in summaries if "tracker" in s]
    if trackers:
        sums = {key: sum(int(t[key]) for t in trackers) for key in TRACKER_COUNTS}
        errors = sums["num_misses"] + sums["num_false_positives"] + sums["num_switches"]
        data["tracker"] = {
            "bags": len(trackers),
            **sums,
            "mota": 1.0 - errors / sums["num_objects"] if sums["num_objects"] else math.nan,
        }
    return data


def combined_report(
    outcomes: Sequence[BagOutcome], *, wall_s: float, workers: int
) -> dict[str, Any]:
    """The combined report: one row per bag (summary or error) and the pooled totals."""
    return {
        "bags": [
            {
                "in_bag": str(o.bag),
                "out_bag": str(o.out_bag),
                "status": "failed" if o.failed else "ok",
                "error": o.error,
                "summary": o.summary,
            }
            for o in outcomes
        ],
        "pooled": pooled(outcomes, wall_s=wall_s, workers=workers),
    }
