# Benchmarks as a library: workloads, peer detection, timing, tables and JSON.
# SPDX-License-Identifier: MIT
"""deepscope against the installed peer libraries, in one process.

The ``deepscope bench`` command and the pytest-benchmark suite in
``benchmarks/bench_suite.py`` run the same :class:`Workload` definitions.
A workload prepares its inputs once (:attr:`Workload.setup`) and lists
:class:`Candidate` implementations: deepscope's kernels and the same job done
by a peer (fpsample, SciPy, Open3D, scikit-learn, faiss, PyTorch3D,
torch-cluster, plain torch or NumPy). Candidates of peers that are not
installed are reported as skipped. Each candidate is warmed up, then timed
repeatedly; the report gives the median, the interquartile range and the
ratio of the median to deepscope's best median in the same workload.

Data: the real scans of ``benchmarks/fetch_data.sh`` (the raw Stanford bunny,
50,000 points, and 100,000 points of the Autzen Stadium aerial LiDAR) when
they are found in ``$DEEPSCOPE_BENCH_DATA`` (or ``data_dir``); otherwise
surface samples of the low-resolution bunny shipped with the package
(:func:`deepscope.datasets.bunny`, needs trimesh). The report says which.

New kernels plug in with :func:`register` (see ``deepscope._bench_workloads``).
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PEERS",
    "Candidate",
    "Data",
    "Report",
    "Result",
    "Timing",
    "Workload",
    "format_table",
    "dumps",
    "installed_peers",
    "load_data",
    "machine_metadata",
    "measure",
    "register",
    "run",
    "workloads",
]

#: Peer label -> (import name, distribution names to ask for the version).
PEERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fpsample": ("fpsample", ("fpsample",)),
    "scipy": ("scipy", ("scipy",)),
    "open3d": ("open3d", ("open3d", "open3d-cpu")),
    "scikit-learn": ("sklearn", ("scikit-learn",)),
    "faiss": ("faiss", ("faiss-cpu", "faiss-gpu", "faiss")),
    "captum": ("captum", ("captum",)),
    "pytorch3d": ("pytorch3d", ("pytorch3d",)),
    "torch-cluster": ("torch_cluster", ("torch-cluster", "torch_cluster")),
    "torch": ("torch", ("torch",)),
    "numpy": ("numpy", ("numpy",)),
}

#: Timing policy per mode: warm-up calls, most rounds, seconds per candidate.
QUICK = {"warmup": 1, "repeats": 20, "budget": 1.0}
FULL = {"warmup": 2, "repeats": 50, "budget": 5.0}


# ----------------------------------------------------------------------------
# Definitions


@dataclass(frozen=True)
class Candidate:
    """One implementation of a workload.

    Attributes:
        name: label in the table, e.g. ``"deepscope float32"``.
        make: called with the workload's state, returns the zero-argument
            callable that is timed (it must finish its work, e.g. synchronise
            CUDA, before returning).
        peer: None for deepscope, else a key of :data:`PEERS` whose package
            must be installed (plain NumPy code is the peer ``"numpy"``).
        slow: skipped by quick runs (takes seconds per call).
        scale: the timed callable does ``1 / scale`` of the work (e.g. 10 %
            of the queries of a brute-force peer); times are multiplied by it.
        note: a short remark shown under the table.
    """

    name: str
    make: Callable[[Any], Callable[[], Any]]
    peer: str | None = None
    slow: bool = False
    scale: float = 1.0
    note: str = ""


@dataclass(frozen=True)
class Workload:
    """A benchmark problem with its candidates.

    Attributes:
        name: short identifier used by ``--only`` (e.g. ``"fps"``).
        title: a format string for the table heading; ``{scan}`` and
            ``{lidar}`` become the names of the data sets in use.
        setup: ``setup(data, quick) -> state``, run once before timing.
        candidates: deepscope's implementations first, then the peers.
        quick: whether quick runs include it.
        cuda: runs on a CUDA GPU through torch; skipped without one (the
            timed callables synchronise the device before returning).
    """

    name: str
    title: str
    setup: Callable[[Data, bool], Any]
    candidates: tuple[Candidate, ...]
    quick: bool = True
    cuda: bool = False


_REGISTRY: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    """Adds (or replaces) a workload in the registry; returns it."""
    _REGISTRY[workload.name] = workload
    return workload


def workloads() -> list[Workload]:
    """All registered workloads, the built-in ones included, in order."""
    importlib.import_module("deepscope._bench_workloads")
    return list(_REGISTRY.values())


# ----------------------------------------------------------------------------
# Peers and machine


def _peer_version(peer: str) -> str | None:
    module, distributions = PEERS[peer]
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    for dist in distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def installed_peers() -> dict[str, str | None]:
    """Version of every known peer, None where it is not installed."""
    return {peer: _peer_version(peer) for peer in PEERS}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_metadata() -> dict[str, Any]:
    """The machine, the build and the library versions of this run."""
    import deepscope

    facts = deepscope.info()
    meta: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "deepscope": deepscope.__version__,
        "cuda_compiled": facts["cuda_compiled"],
        "cuda_devices": facts["cuda_devices"],
        "openmp_threads": facts["omp_max_threads"] if facts["openmp"] else 1,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
    }
    if importlib.util.find_spec("torch") is not None:
        import torch

        meta["torch_threads"] = torch.get_num_threads()
    return meta


# ----------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Data:
    """The point sets the workloads use.

    Attributes:
        scan: (N, 3) float64, about 50,000 points of a scanned object.
        lidar: (M, 3) float64, about 100,000 points of an outdoor scan.
        scan_name: how the titles call ``scan``.
        lidar_name: how the titles call ``lidar``.
        source: a sentence saying where the data came from.
        real: True for the real scans, False for the embedded-bunny fallback.
    """

    scan: np.ndarray
    lidar: np.ndarray
    scan_name: str
    lidar_name: str
    source: str
    real: bool


def _load_scan(folder: Path, name: str, raw: str) -> np.ndarray | None:
    """A scan from ``name.npy`` (written by fetch_data.sh) or its raw file."""
    if (folder / f"{name}.npy").is_file():
        return np.ascontiguousarray(np.load(folder / f"{name}.npy"), dtype=np.float64)
    path = folder / raw
    if not path.is_file():
        return None
    from deepscope import datasets

    try:
        points = datasets.load_points(path)
    except ImportError:
        return None
    return np.asarray(points, dtype=np.float64)


def load_data(data_dir: str | os.PathLike[str] | None = None) -> Data:
    """The real benchmark scans if present, else the embedded bunny, resampled.

    Args:
        data_dir: folder of ``benchmarks/fetch_data.sh``'s output; default
            ``$DEEPSCOPE_BENCH_DATA``.

    Returns:
        The :class:`Data` to run on.

    Raises:
        ImportError: the real scans are missing and trimesh (needed to sample
            the embedded bunny) is not installed.
    """
    folder = (
        data_dir if data_dir is not None else os.environ.get("DEEPSCOPE_BENCH_DATA")
    )
    if folder is not None:
        folder = Path(folder)
        scan = _load_scan(folder, "stanford_bunny", "pymeshfix/StanfordBunny.ply")
        lidar = _load_scan(folder, "autzen", "laspy/autzen_trim.laz")
        if scan is not None and lidar is not None:
            lidar = lidar - lidar.mean(axis=0)
            return Data(
                scan=scan,
                lidar=np.ascontiguousarray(lidar[:100_000]),
                scan_name="bunny scan",
                lidar_name="autzen lidar",
                source=f"real scans from {folder}: Stanford bunny (raw scan, "
                f"{len(scan)} points), Autzen Stadium LiDAR "
                f"({min(len(lidar), 100_000)} points)",
                real=True,
            )
    from deepscope import datasets

    try:
        scan = datasets.bunny(n_points=50_000, seed=0)
        lidar = datasets.bunny(n_points=100_000, seed=1)
    except ImportError as error:
        raise ImportError(
            "deepscope bench needs the real scans (run benchmarks/fetch_data.sh "
            "and set DEEPSCOPE_BENCH_DATA) or trimesh to sample the embedded "
            "bunny (`pip install deepscope[io]`)"
        ) from error
    return Data(
        scan=scan,
        lidar=lidar,
        scan_name="bunny mesh samples",
        lidar_name="bunny mesh samples",
        source="embedded low-resolution Stanford bunny, 50,000 and 100,000 "
        "surface samples (the real scans were not found; set "
        "DEEPSCOPE_BENCH_DATA after running benchmarks/fetch_data.sh)",
        real=False,
    )


# ----------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median, interquartile range, number of rounds."""

    median: float
    iqr: float
    rounds: int
    times: tuple[float, ...] = field(repr=False)


def measure(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    repeats: int = 20,
    budget: float = 1.0,
    scale: float = 1.0,
) -> Timing:
    """Times ``fn()`` after warm-up calls.

    Rounds continue until ``repeats`` rounds are done or ``budget`` seconds
    have passed, but at least 3 rounds when one call takes under half the
    budget. A call that alone exceeds the budget is timed once: a warm-up
    call that long counts as the only round.

    Returns:
        :class:`Timing` of the rounds, each multiplied by ``scale``.
    """
    times: list[float] = []
    call = 0.0
    for _ in range(max(warmup, 0)):
        t0 = time.perf_counter()
        fn()
        call = time.perf_counter() - t0
        if call > budget:
            return _timing([call], scale)  # too slow to repeat: one round
    least = 3 if call < budget / 2 else 1
    started = time.perf_counter()
    while len(times) < least or (
        len(times) < repeats and time.perf_counter() - started < budget
    ):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) == 1 and times[0] > budget:
            break
    return _timing(times, scale)


def _timing(times: list[float], scale: float) -> Timing:
    scaled = [t * scale for t in times]
    q1, q3 = np.percentile(scaled, [25, 75]) if len(scaled) > 1 else (0.0, 0.0)
    return Timing(statistics.median(scaled), float(q3 - q1), len(scaled), tuple(scaled))


# ----------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class Result:
    """One candidate's outcome.

    Attributes:
        workload: the workload's name.
        title: the workload's heading, data names filled in.
        candidate: the candidate's name.
        peer: None for deepscope, else the peer's label.
        status: ``"ok"``, ``"skipped"`` or ``"error"``.
        timing: the timing when ``status == "ok"``.
        ratio: median / deepscope's best median in the workload (None if
            either is missing).
        note: why it was skipped or failed, or the candidate's remark.
    """

    workload: str
    title: str
    candidate: str
    peer: str | None
    status: str
    timing: Timing | None = None
    ratio: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Report:
    """Everything a run produced: metadata and results."""

    metadata: dict[str, Any]
    results: list[Result]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict ``{"metadata": ..., "results": [...]}``."""
        rows = []
        for result in self.results:
            row = asdict(result)
            if result.timing is not None:
                row["timing"] = {
                    "median_s": result.timing.median,
                    "iqr_s": result.timing.iqr,
                    "rounds": result.timing.rounds,
                    "times_s": list(result.timing.times),
                }
            rows.append(row)
        return {"metadata": self.metadata, "results": rows}


def _cuda_usable() -> bool:
    """A CUDA GPU usable by deepscope and by torch."""
    import deepscope

    if not deepscope.cuda_available() or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _select(only: Sequence[str] | None, quick: bool) -> list[Workload]:
    chosen = workloads()
    if only:
        known = {w.name for w in chosen}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise ValueError(
                f"only: unknown workload(s) {', '.join(unknown)}; expected some of "
                f"{', '.join(sorted(known))}"
            )
        return [w for w in chosen if w.name in only]
    return [w for w in chosen if w.quick or not quick]


def run(
    *,
    quick: bool = False,
    only: Sequence[str] | None = None,
    data: Data | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    repeats: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Runs the workloads against deepscope and every installed peer.

    Args:
        quick: a short run (about a minute on two cores): fewer rounds,
            smaller budgets, no slow candidates or full-size-only workloads.
        only: workload names to run (default: all, or all quick ones).
        data: the point sets (default: :func:`load_data` of ``data_dir``).
        data_dir: where the real scans are (see :func:`load_data`).
        repeats: the most timed rounds per candidate (default 20 quick, 50).
        progress: called with a line before each candidate is timed.

    Returns:
        A :class:`Report` with the machine metadata and one :class:`Result`
        per candidate.
    """
    policy = dict(QUICK if quick else FULL)
    if repeats is not None:
        if repeats < 1:
            raise ValueError(f"repeats: expected >= 1, got {repeats}")
        policy["repeats"] = repeats
    selected = _select(only, quick)
    data = data if data is not None else load_data(data_dir)
    peers = installed_peers()
    metadata = machine_metadata()
    metadata.update(
        mode="quick" if quick else "full",
        data=data.source,
        real_data=data.real,
        peers=dict(peers),
        policy=policy,
    )

    gpu = _cuda_usable()
    metadata["cuda_usable"] = gpu
    results: list[Result] = []
    for workload in selected:
        title = workload.title.format(scan=data.scan_name, lidar=data.lidar_name)
        if workload.cuda and not gpu:
            results += [
                Result(
                    workload.name,
                    title,
                    c.name,
                    c.peer,
                    "skipped",
                    note="needs a usable CUDA GPU, torch with CUDA and deepscope "
                    "built with CUDA",
                )
                for c in workload.candidates
            ]
            continue
        state = workload.setup(data, quick)
        rows = [
            _run_candidate(workload, title, c, state, peers, quick, policy, progress)
            for c in workload.candidates
        ]
        ours = [
            r.timing.median for r in rows if r.peer is None and r.timing is not None
        ]
        best = min(ours) if ours else None
        for row in rows:
            if best and row.timing is not None:
                row = replace(row, ratio=row.timing.median / best)
            results.append(row)
        del state
        gc.collect()
    return Report(metadata, results)


def _run_candidate(
    workload: Workload,
    title: str,
    candidate: Candidate,
    state: Any,
    peers: dict[str, str | None],
    quick: bool,
    policy: dict[str, Any],
    progress: Callable[[str], None] | None,
) -> Result:
    base = {
        "workload": workload.name,
        "title": title,
        "candidate": candidate.name,
        "peer": candidate.peer,
    }
    if candidate.peer is not None and peers.get(candidate.peer) is None:
        return Result(**base, status="skipped", note=f"{candidate.peer} not installed")
    if quick and candidate.slow:
        return Result(**base, status="skipped", note="slow; run without --quick")
    if progress is not None:
        progress(f"{title}: {candidate.name}")
    try:
        fn = candidate.make(state)
        timing = measure(fn, scale=candidate.scale, **policy)
    except Exception as error:  # a peer's failure must not end the run
        return Result(**base, status="error", note=f"{type(error).__name__}: {error}")
    return Result(**base, status="ok", timing=timing, note=candidate.note)


# ----------------------------------------------------------------------------
# Output


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} us"


def format_table(report: Report) -> str:
    """The report as plain text: metadata, then one table per workload."""
    meta = report.metadata
    lines = [
        f"deepscope {meta['deepscope']} bench ({meta['mode']}), {meta['date']}",
        f"machine  {meta['cpu']}, {meta['cpu_count']} CPUs, OpenMP threads "
        f"{meta['openmp_threads']}, CUDA compiled: {meta['cuda_compiled']}",
        f"python   {meta['python']}, numpy {meta['numpy']}, {meta['platform']}",
        "peers    "
        + ", ".join(
            f"{peer} {version}" if version else f"{peer} (missing)"
            for peer, version in meta["peers"].items()
        ),
        f"data     {meta['data']}",
        "ratio = median / deepscope's best median in the workload "
        "(above 1: deepscope is faster)",
    ]
    by_title: dict[str, list[Result]] = {}
    for result in report.results:
        by_title.setdefault(result.title, []).append(result)
    for title, rows in by_title.items():
        lines += ["", title]
        notes = {r.note for r in rows}
        if all(r.status == "skipped" for r in rows) and len(notes) == 1:
            lines.append(f"  skipped: {notes.pop()}")
            continue
        width = max(len(r.candidate) for r in rows)
        header = f"  {'method':<{width}}  {'median':>9}  {'IQR':>9}  rounds  ratio"
        lines += [header, "  " + "-" * (len(header) - 2)]
        for r in _ordered(rows):
            if r.timing is None:
                lines.append(f"  {r.candidate:<{width}}  {r.status}: {r.note}")
                continue
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
            lines.append(
                f"  {r.candidate:<{width}}  {_seconds(r.timing.median):>9}  "
                f"{_seconds(r.timing.iqr):>9}  {r.timing.rounds:>6}  {ratio}"
            )
        notes = [f"{r.candidate}: {r.note}" for r in rows if r.timing and r.note]
        lines += [f"  note: {note}" for note in notes]
    return "\n".join(lines)


def _ordered(rows: Iterable[Result]) -> list[Result]:
    timed = sorted((r for r in rows if r.timing), key=lambda r: r.timing.median)
    return timed + [r for r in rows if not r.timing]


def dumps(report: Report) -> str:
    """The report as indented JSON text."""
    return json.dumps(report.to_json(), indent=2, default=str)
