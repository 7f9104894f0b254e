"""Benchmark: joblib, pickle, skops and bundler side by side, in one run, interleaved (issues 5 and 11).

Run ``python benchmarks/bench.py`` (or ``nox -s bench``); ``--quick`` for a smoke check. See benchmarks/README.md.

What one run does, per model (a 300-tree random forest of about 60 MB, a tiny scaler+logistic pipeline, and a k-NN
model of about 800 MB, fit on 2,000,000 x 50 float64):

1. dump/pack it with every tool, N times, round-robin over the tools in each repetition (the starting tool rotates),
   and a *durable* ``joblib.dump`` (dump, flush, ``fsync``: what ``bundler.pack`` guarantees) in the same rotation;
2. read every file once (warm page cache) and load each once untimed (warm imports), then load N times, round-robin,
   with the *floor* of a verified load in the same rotation: SHA-256 of the bundle's payload bytes (held in memory)
   on every core, in equal parts (no verified load can be faster than hashing every byte);
3. load each file once more in a fresh subprocess and record its peak RSS (absolute, and minus the RSS after imports).

Then, once per run: cold ``python -m bundler verify SMALL -q`` against cold ``python -c "import sklearn"`` (fresh
processes, interleaved), and the environment check of a 20-package manifest
(``bundler.environment.policy.compare`` with a fresh ``InstalledVersions()`` each time). ``--profile`` also writes
cProfile reports of ``bundler.pack`` and ``bundler.load``. Every file is written under one temporary directory in
/tmp that is removed at the end.

Results go to ``--out`` (default benchmarks/results): results.md, results.json, results.png.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import pickle
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOOLS = ("joblib", "pickle", "skops", "bundler")
MODELS = ("tiny", "rf", "knn")
EXT = {"joblib": ".joblib", "pickle": ".pkl", "skops": ".skops", "bundler": ".mlbundle"}
PICKLE_PROTOCOL = 5

# Issue 11 targets (key, description, threshold, unit); the issue-5 environment-check target is kept.
TARGETS = [
    ("load_knn", "`bundler.load` / max(`joblib.load`, SHA-256 of the payload on every core), {knn}", 1.15, "ratio"),
    ("load_rf", "`bundler.load` / `joblib.load`, {rf}", 1.25, "ratio"),
    ("pack_rf", "`bundler.pack` / (`joblib.dump` + fsync of the file), {rf}", 1.25, "ratio"),
    ("rss_knn", "peak RSS of `bundler.load` / `joblib.load`'s, {knn}", 1.05, "ratio"),
    ("cold_verify", 'cold `bundler verify` of a small bundle / cold `python -c "import sklearn"`', 0.15, "ratio"),
    ("env_check", "environment check of a 20-package manifest (issue 5)", 10.0, "ms"),
]
#: Extra rows measured in the same rotation as the tools: the durable dump (reference of pack) and the hash floor.
DURABLE = "joblib+fsync"
FLOOR = "sha256 floor"


# -- models ------------------------------------------------------------------------------------------------------
def build_model(name: str, quick: bool) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    if name == "tiny":
        from sklearn.datasets import make_classification
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, y = make_classification(n_samples=500, n_features=20, random_state=0)
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    if name == "rf":
        from sklearn.datasets import make_classification
        from sklearn.ensemble import RandomForestClassifier

        # 16,000 x 20 with 5 % label noise gives ~2,600 nodes per tree: about 60 MB as joblib for 300 trees.
        n, trees = (3000, 50) if quick else (16000, 300)
        X, y = make_classification(n_samples=n, n_features=20, n_informative=10, flip_y=0.05, random_state=0)
        return RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=2).fit(X, y)
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        n = 100_000 if quick else 2_000_000
        X = rng.standard_normal((n, 50))  # float64, C-contiguous: fit keeps it without a copy
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
        model = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(X, y)
        del X
        return model
    raise ValueError(name)


def describe(name: str, quick: bool) -> str:
    """What a model really is in this run (``--quick`` shrinks them): the rows and targets carry it."""
    if name == "rf":
        return "random forest, 50 trees on 3,000 x 20 (quick)" if quick else "random forest, 300 trees on 16,000 x 20"
    if name == "knn":
        return "k-NN on 100,000 x 50 float64 (quick)" if quick else "k-NN on 2,000,000 x 50 float64"
    return "scaler + logistic regression on 500 x 20"


# -- the tools -----------------------------------------------------------------------------------------------------
def dump(tool: str, model: Any, path: Path) -> None:
    if tool == "joblib":
        import joblib

        joblib.dump(model, path)
    elif tool == DURABLE:  # what a crash-safe writer must pay: the bytes on disk before it returns
        import joblib

        with open(path, "wb") as fh:
            joblib.dump(model, fh)
            fh.flush()
            os.fsync(fh.fileno())
    elif tool == "pickle":
        with open(path, "wb") as fh:
            pickle.dump(model, fh, protocol=PICKLE_PROTOCOL)
    elif tool == "skops":
        import skops.io as sio

        sio.dump(model, path)
    elif tool == "bundler":
        import bundler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bundler.pack(model, path)
    else:
        raise ValueError(tool)


def load(tool: str, path: Path) -> Any:
    if tool == "joblib":
        import joblib

        return joblib.load(path)
    if tool == "pickle":
        with open(path, "rb") as fh:
            return pickle.load(fh)
    if tool == "skops":
        import skops.io as sio

        return sio.load(path, trusted=sio.get_untrusted_types(file=path))
    if tool == "bundler":
        import bundler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bundler.load(path, check_behaviour=False)
    raise ValueError(tool)


def import_tool(tool: str) -> None:
    """Import what a tool needs up front, so that no timed call pays for imports."""
    import joblib  # noqa: F401
    import numpy  # noqa: F401
    import sklearn  # noqa: F401

    if tool == "skops":
        import skops.io  # noqa: F401
    elif tool == "bundler":

        for mod in ("bundler.safety.allowlist", "bundler.safety.unpickler", "bundler.safety.validators",
                    "bundler.pipelines.load", "bundler.pipelines.verify", "bundler.pipelines.serializers"):
            with contextlib.suppress(ImportError):
                __import__(mod)


def bundler_status(tmp: Path) -> str | None:
    """None if bundler can pack and load a tiny model here; otherwise why not (it is then left out of the run)."""
    try:
        import_tool("bundler")
        model = build_model("tiny", quick=True)
        path = tmp / "probe.mlbundle"
        dump("bundler", model, path)
        load("bundler", path)
        path.unlink()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def warm_read(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(8 << 20):
            pass


def payload_bytes(bundle: Path) -> bytes:
    """The bundle's payload member, as bundler hashes it (read untimed, for the floor)."""
    from bundler.container.archive import BundleReader

    with BundleReader(bundle) as reader:
        name = next(n for n in reader.members if n.startswith("model/"))
        offset, size = reader.span(name)
        return os.pread(reader.fileno(), size, offset)


def sha256_floor(data: bytes) -> None:
    """SHA-256 of ``data`` on every core, in equal parts: the least time any verify-then-load of it can take."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    n = os.cpu_count() or 1
    view = memoryview(data)
    step = max(1 << 20, -(-len(view) // n))
    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(lambda i: hashlib.sha256(view[i:i + step]).digest(), range(0, len(view), step)))


# -- measurements ----------------------------------------------------------------------------------------------------
@dataclass
class Series:
    """Timings of one measure (e.g. "load rf") for every tool, repetition by repetition (paired by index)."""

    measure: str
    unit: str = "s"
    values: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def add(self, tool: str, value: float) -> None:
        self.values.setdefault(tool, []).append(value)

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        base = self.values.get("joblib")
        base_med = statistics.median(base) if base else None
        for tool in [t for t in (*TOOLS, DURABLE, FLOOR) if t in self.values or t in self.errors] + \
                [k for k in self.values if k not in (*TOOLS, DURABLE, FLOOR)]:
            if tool in self.errors:
                rows.append({"measure": self.measure, "tool": tool, "error": self.errors[tool]})
                continue
            vals = self.values.get(tool)
            if not vals:
                continue
            med = statistics.median(vals)
            row: dict[str, Any] = {"measure": self.measure, "tool": tool, "unit": self.unit, "n": len(vals),
                                   "median": med, "min": min(vals), "max": max(vals), "values": vals}
            if base_med:
                row["ratio"] = med / base_med
                paired = [v / b for v, b in zip(vals, base or [], strict=False) if b]
                if paired:
                    row["ratio_min"], row["ratio_max"] = min(paired), max(paired)
            rows.append(row)
        return rows


def rotated(tools: list[str], rep: int) -> list[str]:
    k = rep % len(tools)
    return tools[k:] + tools[:k]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_model(name: str, model: Any, tools: list[str], reps: int, tmp: Path, log: Callable[[str], None],
                rss: bool, label: str) -> dict[str, Any]:
    paths = {t: tmp / f"{name}{EXT[t]}" for t in tools}
    paths[DURABLE] = tmp / f"{name}.durable.joblib"
    dump_s = Series(f"dump/pack {name} [{label}]")
    load_s = Series(f"load {name} [{label}]")
    live = list(tools)
    dumpers = [*live, DURABLE]
    for rep in range(-1, reps):  # rep -1: one untimed warm-up dump per tool (first writes of a new file cost more)
        for tool in rotated(dumpers, max(rep, 0)):
            paths[tool].unlink(missing_ok=True)
            # Untimed: write back what earlier tools left dirty. Otherwise the next tool that syncs (bundler, the
            # durable dump) also pays, inside its fsync, for the previous tool's unsynced file (ext4 ordered mode).
            os.sync()
            try:
                dt, _ = timed(lambda: dump(tool, model, paths[tool]))  # noqa: B023
            except Exception as exc:
                dump_s.errors[tool] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                dumpers.remove(tool)
                if tool in live:
                    live.remove(tool)
                log(f"  {name} dump {tool}: FAILED {dump_s.errors[tool]}")
                continue
            if rep < 0:
                log(f"  {name} dump {tool:<7} warm-up: {dt:8.4f} s")
                continue
            dump_s.add(tool, dt)
            log(f"  {name} dump {tool:<7} rep {rep + 1}/{reps}: {dt:8.4f} s")
    sizes = {t: paths[t].stat().st_size for t in live}
    paths.pop(DURABLE).unlink(missing_ok=True)
    floor_data = payload_bytes(paths["bundler"]) if "bundler" in live else None
    # Warm the page cache (one read of every file) and the lazy imports (one untimed load each).
    for tool in list(live):
        warm_read(paths[tool])
        try:
            obj = load(tool, paths[tool])
            del obj
        except Exception as exc:
            load_s.errors[tool] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            live.remove(tool)
            log(f"  {name} load {tool}: FAILED {load_s.errors[tool]}")
    loaders = [*live, FLOOR] if floor_data is not None else list(live)
    for rep in range(reps):
        for tool in rotated(loaders, rep):
            if tool == FLOOR:
                dt, obj = timed(lambda: sha256_floor(floor_data or b""))
            else:
                dt, obj = timed(lambda: load(tool, paths[tool]))  # noqa: B023
            del obj
            load_s.add(tool, dt)
            log(f"  {name} load {tool:<7} rep {rep + 1}/{reps}: {dt:8.4f} s")
    floor_data = None
    gc.collect()
    rss_rows: dict[str, Any] = {}
    if rss:
        for tool in live:
            rss_rows[tool] = measure_rss(tool, paths[tool])
            r = rss_rows[tool]
            if "error" in r:
                log(f"  {name} rss  {tool:<7}: FAILED {r['error']}")
            else:
                log(f"  {name} rss  {tool:<7}: peak {r['peak_mb']:8.1f} MB, after imports {r['base_mb']:7.1f} MB, "
                    f"delta {r['delta_mb']:8.1f} MB")
    for p in paths.values():
        p.unlink(missing_ok=True)
    return {"model": name, "label": label, "sizes": sizes, "dump": dump_s, "load": load_s, "rss": rss_rows}


def measure_rss(tool: str, path: Path) -> dict[str, Any]:
    """Load ``path`` with ``tool`` in a fresh interpreter; its peak RSS after loading, and after imports only."""
    # Linux carries the parent's peak RSS into a child's ru_maxrss across fork+exec, so the benchmark (which holds the
    # models) would leak its own peak into the measure: start the child from a small intermediate interpreter.
    launcher = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    cmd = [sys.executable, "-c", launcher, sys.executable, str(Path(__file__).resolve()), "--_rss-child", tool,
           str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rss_child(tool: str, path: str) -> None:
    import_tool(tool)
    gc.collect()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    obj = load(tool, Path(path))
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = _vm_hwm_kib()
    del obj
    print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024, "delta_mb": (peak - base) / 1024,
                      "vm_hwm_mb": hwm / 1024 if hwm else None, "load_s": dt}))


def _vm_hwm_kib() -> int | None:
    """VmHWM from /proc/self/status (Linux): the same high-water mark, as a cross-check of ru_maxrss."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def bench_cold(tmp: Path, reps: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Fresh processes: ``python -m bundler verify SMALL -q`` vs ``python -c "import sklearn"`` (and an empty one)."""
    small = tmp / "cold-small.mlbundle"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dump("bundler", build_model("tiny", quick=True), small)
    cmds = {
        "bundler verify": [sys.executable, "-m", "bundler", "verify", str(small), "-q"],
        "import sklearn": [sys.executable, "-c", "import sklearn"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    series = Series("cold start (fresh process)")
    env = dict(os.environ)
    order = list(cmds)
    failures: dict[str, str] = {}
    # Warm-up: page cache of .pyc files and shared libraries. It may write bytecode even under
    # PYTHONDONTWRITEBYTECODE, as installing a package does: an editable checkout otherwise recompiles bundler in
    # every timed process while scikit-learn's wheel came with its .pyc files.
    warm_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for name in order:
        subprocess.run(cmds[name], capture_output=True, env=warm_env, check=False, cwd=tmp)
    for rep in range(reps):
        for name in rotated(order, rep):
            t0 = time.perf_counter()
            proc = subprocess.run(cmds[name], capture_output=True, text=True, env=env, check=False, cwd=tmp)
            dt = time.perf_counter() - t0
            if proc.returncode != 0:
                failures[name] = f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
            series.add(name, dt)
    # what `bundler verify` imports (it must not import scikit-learn, numpy or joblib)
    probe = (f"import sys, runpy; sys.argv=['bundler','verify',{str(small)!r},'-q']\n"
             "try:\n runpy.run_module('bundler', run_name='__main__')\n"
             "except SystemExit: pass\n"
             "print([m for m in ('sklearn','numpy','joblib','scipy','skops','pydantic','cryptography') "
             "if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=tmp)
    heavy = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-300:]
    small.unlink(missing_ok=True)
    meds = {k: statistics.median(v) for k, v in series.values.items()}
    log("  cold: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in meds.items()) + f"; verify imports {heavy}")
    got = paired_ratio(series.values, "bundler verify", ["import sklearn"])
    return {"series": series, "failures": failures, "verify_imports": heavy,
            "ratio": meds["bundler verify"] / meds["import sklearn"], "target": got}


def bench_env(reps: int, log: Callable[[str], None]) -> dict[str, Any]:
    """``compare`` of a 20-entry manifest of installed packages, with a fresh InstalledVersions() each time."""
    import importlib.metadata as md
    import re

    from bundler.environment.capture import InstalledVersions
    from bundler.environment.policy import Policy, compare

    def norm(n: str) -> str:
        return re.sub(r"[-_.]+", "-", n).lower()

    installed: dict[str, str] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            installed.setdefault(norm(name), dist.version)
    preferred = ["scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl", "pydantic", "pydantic-core",
                 "packaging", "cryptography", "cffi", "pycparser", "skops", "matplotlib", "pillow", "pyparsing",
                 "kiwisolver", "cycler", "fonttools", "contourpy", "python-dateutil", "six", "typing-extensions",
                 "annotated-types"]
    names = [n for n in preferred if n in installed]
    names += sorted(n for n in installed if n not in names)
    expected = {n: installed[n] for n in names[:20]}
    policy = Policy.of("default")
    times = []
    mismatches = None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = compare(expected, InstalledVersions(), policy, ["scikit-learn"])
        times.append((time.perf_counter() - t0) * 1000)
        mismatches = out
    s = Series("environment check, 20 packages", unit="ms")
    for t in times:
        s.add("bundler", t)
    log(f"  env check: median {statistics.median(times):.2f} ms (first {times[0]:.2f} ms, max {max(times):.2f} ms)")
    return {"series": s, "packages": expected, "mismatches": [str(m) for m in (mismatches or [])],
            "first_ms": times[0]}


# -- profiling -------------------------------------------------------------------------------------------------------
# Own time (tottime) of profiled functions, summed by what they do; the first matching rule wins.
CATEGORIES: list[tuple[str, Callable[[str, str], bool]]] = [
    ("sha256 (hashlib update)", lambda f, n: "_hashlib.HASH" in n or "openssl_sha256" in n),
    ("crc32 (zipfile)", lambda f, n: "zlib.crc32" in n),
    ("fsync", lambda f, n: "fsync" in n),
    ("file reads (io, preadv)", lambda f, n: f == "~" and ("readinto" in n or "'read' of '_io" in n
                                                          or "read1" in n or "'peek' of" in n or "preadv" in n
                                                          or "pread" in n)),
    ("waiting for a worker thread (lock acquire/join)", lambda f, n: "_thread.lock" in n or "threading.py" in f),
    ("file writes (io)", lambda f, n: f == "~" and "'write' of '_io" in n),
    ("opcode interpreter (bundler/safety/machine.py: scan and unpickler alike)",
     lambda f, n: f.endswith("bundler/safety/machine.py")),
    ("payload scan backend (bundler/safety/scan.py)", lambda f, n: f.endswith(("bundler/safety/scan.py",
                                                                              "bundler/safety/source.py"))),
    ("restricted unpickler backend (bundler/safety)", lambda f, n: f.endswith(
        ("bundler/safety/unpickler.py", "bundler/safety/allowlist.py", "bundler/safety/guards.py"))),
    ("state validation (bundler)", lambda f, n: "bundler/safety/validators/" in f),
    ("joblib/pickle machinery", lambda f, n: "joblib" in f or f.endswith("/pickle.py") or "_pickle" in n
     or "'dump' of" in n or "'load' of" in n),
    ("numpy (copies, frombuffer...)", lambda f, n: "numpy" in f or "numpy" in n),
    ("zipfile (python)", lambda f, n: f.endswith("/zipfile.py")),
    ("bundler hashing/archive wrappers", lambda f, n: f.endswith(("bundler/integrity/hashing.py",
                                                                  "bundler/integrity/read_once.py",
                                                                  "bundler/container/archive.py"))),
    ("package metadata (bundler/environment, importlib.metadata, email, pathlib)",
     lambda f, n: "bundler/environment/" in f or "importlib/metadata" in f or "email/" in f
     or f.endswith("/pathlib.py") or "sys.intern" in n),
    ("manifest / pydantic / json", lambda f, n: "pydantic" in f or f.endswith("bundler/container/manifest.py")
     or "json" in f),
]


def categorize(stats: Any) -> list[tuple[str, float]]:
    sums: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        cat = next((c for c, rule in CATEGORIES if rule(filename, func)), "other")
        sums[cat] = sums.get(cat, 0.0) + tt
    return sorted(sums.items(), key=lambda kv: -kv[1])


#: Steps of bundler.load / bundler.pack timed by wall clock (module, attribute, label): the scan's and the state
#: checks' share of a load (issue 11), without cProfile's distortion.
PHASES = {
    "load": [("bundler.pipelines.load", "", "verify_open", "verify: read + hash + scan + checks"),
             ("bundler.safety.scan", "", "scan_memory", "  of which the payload scan"),
             ("bundler.pipelines.serializers", "", "load_verified", "restricted unpickler"),
             ("bundler.pipelines.load", "", "validate_loaded", "state validation (structure checks)")],
    "pack": [("bundler.pipelines.serializers", "", "dump", "serialize (joblib.dump into memory)"),
             ("bundler.pipelines.pack", "", "_scan_memory", "scan (while the payload is written and hashed)"),
             ("bundler.pipelines.pack", "_Packer", "add_payload",
              "write + CRC + hash + fdatasync on workers, the scan alongside"),
             ("bundler.pipelines.pack", "", "infer_requirements", "requirements inference"),
             ("bundler.container.archive", "BundleWriter", "commit", "commit (zip directory, fsync, rename)")],
}


def time_phases(op: str, fn: Callable[[], Any], reps: int = 3) -> dict[str, float]:
    """Median wall time of ``fn`` and of each step in ``PHASES[op]``, over ``reps`` unprofiled runs."""
    import functools
    import importlib

    spent: dict[str, list[float]] = {}
    undo = []
    for module, cls, attr, label in PHASES[op]:
        holder: Any = importlib.import_module(module)
        if cls:
            holder = getattr(holder, cls)
        real = getattr(holder, attr)

        def timed_step(*a: Any, _real: Any = real, _label: str = label, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _real(*a, **k)
            finally:
                spent.setdefault(_label, []).append(time.perf_counter() - t0)

        setattr(holder, attr, functools.wraps(real)(timed_step))
        undo.append((holder, attr, real))
    totals = []
    try:
        for _ in range(reps):
            gc.collect()
            t0 = time.perf_counter()
            res = fn()
            totals.append(time.perf_counter() - t0)
            del res
    finally:
        for holder, attr, real in undo:
            setattr(holder, attr, real)
    out = {"total": statistics.median(totals)}
    out.update({label: sum(v) / reps for label, v in spent.items()})
    return out


def profile_bundler(name: str, model: Any, tmp: Path, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    import cProfile
    import pstats

    path = tmp / f"profile-{name}.mlbundle"
    found: dict[str, Any] = {}
    for op, fn in (("pack", lambda: dump("bundler", model, path)), ("load", lambda: load("bundler", path))):
        if op == "pack":
            path.unlink(missing_ok=True)
        else:
            warm_read(path)
            load("bundler", path)  # warm imports
        gc.collect()
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        res = fn()
        prof.disable()
        total = time.perf_counter() - t0
        del res
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        cats = categorize(stats)
        if op == "pack":
            phases = time_phases(op, lambda: (path.unlink(missing_ok=True), dump("bundler", model, path)))
        else:
            phases = time_phases(op, lambda: load("bundler", path))
        buf.write(f"bundler.{op} of {name}: {phases['total']:.3f} s wall, median of 3 unprofiled runs\n\n"
                  "== steps (wall clock, unprofiled) ==\n")
        for label, t in phases.items():
            if label != "total":
                buf.write(f"{t:9.4f} s  {100 * t / max(phases['total'], 1e-9):5.1f} %  {label}\n")
        buf.write(f"\nunder cProfile: {total:.3f} s wall\n\n== own time by category ==\n")
        for cat, tt in cats:
            buf.write(f"{tt:9.4f} s  {100 * tt / max(total, 1e-9):5.1f} %  {cat}\n")
        buf.write("\n== by cumulative time ==\n")
        stats.sort_stats("cumulative").print_stats(35)
        buf.write("\n== by own time ==\n")
        stats.sort_stats("tottime").print_stats(25)
        (out / f"profile_{name}_{op}.txt").write_text(buf.getvalue(), encoding="utf-8")
        found[op] = {"total_s": total, "categories": dict(cats), "phases": phases}
        log(f"  profile {name} {op}: {total:.3f} s -> {out / f'profile_{name}_{op}.txt'}")
    path.unlink(missing_ok=True)
    return found


# -- reporting ---------------------------------------------------------------------------------------------------------
def fmt_val(v: float, unit: str) -> str:
    if unit == "ms":
        return f"{v:.2f} ms"
    if unit == "MB":
        return f"{v:.1f} MB"
    if v < 1:
        return f"{v * 1000:.1f} ms"
    return f"{v:.3f} s"


def rss_series(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for res in results:
        rss = res["rss"]
        if not rss:
            continue
        jb = rss.get("joblib", {})
        for tool in TOOLS:
            r = rss.get(tool)
            if r is None:
                continue
            if "error" in r:
                rows.append({"measure": f"peak RSS load {res['model']} [{res['label']}]", "tool": tool,
                             "error": r["error"]})
                continue
            row = {"measure": f"peak RSS load {res['model']} [{res['label']}]", "tool": tool, "unit": "MB", **r}
            if "peak_mb" in jb:
                row["ratio_peak"] = r["peak_mb"] / jb["peak_mb"]
                row["ratio_delta"] = r["delta_mb"] / jb["delta_mb"] if jb["delta_mb"] > 0 else None
            rows.append(row)
    return rows


def _values(summary: dict[str, Any], kind: str, model: str) -> dict[str, list[float]]:
    """Per tool, the timings of one measure (``kind`` "load" or "dump/pack") of one model, repetition by repetition."""
    prefix = f"{kind} {model} ["
    return {row["tool"]: row["values"] for row in summary["timings"]
            if row["measure"].startswith(prefix) and "values" in row}


def paired_ratio(vals: dict[str, list[float]], tool: str, over: list[str]) -> dict[str, float] | None:
    """``tool``'s median over the largest median among ``over`` (the reference: one tool, or the max of several),
    and the min and max of the same ratio taken repetition by repetition (each repetition ran every tool once)."""
    if tool not in vals or any(t not in vals for t in over):
        return None
    mine = vals[tool]
    per_rep = [max(col) for col in zip(*(vals[t] for t in over), strict=False)]
    paired = [a / b for a, b in zip(mine, per_rep, strict=False) if b]
    if not paired:
        return None
    return {"value": statistics.median(mine) / max(statistics.median(vals[t]) for t in over),
            "min": min(paired), "max": max(paired)}


def target_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    labels = summary["meta"].get("labels", {})

    def rss_ratio() -> tuple[float | None, str]:
        for row in summary["rss"]:
            if row["measure"].startswith("peak RSS load knn") and row["tool"] == "bundler" and row.get("ratio_delta"):
                return row["ratio_delta"], (f"delta over the post-import baseline, one fresh process each "
                                            f"(absolute peak ratio {row['ratio_peak']:.2f})")
        return None, ""

    out = []
    for key, desc, limit, unit in TARGETS:
        note = ""
        got: dict[str, float] | None = None
        if key == "load_knn":
            got = paired_ratio(_values(summary, "load", "knn"), "bundler", ["joblib", FLOOR])
        elif key == "load_rf":
            got = paired_ratio(_values(summary, "load", "rf"), "bundler", ["joblib"])
        elif key == "pack_rf":
            got = paired_ratio(_values(summary, "dump/pack", "rf"), "bundler", [DURABLE])
        elif key == "rss_knn":
            val, note = rss_ratio()
            got = {"value": val} if val is not None else None
        elif key == "cold_verify":
            cold = summary.get("cold", {})
            got = cold.get("target")
        elif summary.get("env"):
            got = {"value": summary["env"]["median_ms"]}
        val = got["value"] if got else None
        if got and "min" in got:
            note = f"(per-repetition min {got['min']:.3f}, max {got['max']:.3f})" + (f"; {note}" if note else "")
        verdict = "n/a" if val is None else "PASS" if val <= limit else "MISS"
        out.append({"key": key, "measure": desc.format(rf=labels.get("rf", "rf"), knn=labels.get("knn", "knn")),
                    "target": f"<= {limit:g}" + (" ms" if unit == "ms" else ""), "value": val,
                    "min": got.get("min") if got else None, "max": got.get("max") if got else None,
                    "unit": unit, "verdict": verdict, "note": note})
    return out


def _loadavg(v: Any) -> str:
    return "/".join(f"{x:.2f}" for x in v) if v else "?"


def write_markdown(summary: dict[str, Any], path: Path) -> None:
    lines = ["# Benchmark results", ""]
    meta = summary["meta"]
    lines += [f"- command: `{meta['command']}`",
              f"- when: {meta['when']}; machine: {meta['machine']}; {meta['cpus']} CPUs; Python {meta['python']}; "
              f"load average at start {_loadavg(meta.get('loadavg_start'))}, "
              f"at end {_loadavg(meta.get('loadavg_end'))}; "
              f"run took {meta.get('elapsed_s', 0):.0f} s",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
              f"- repetitions: {meta['reps']}; interleaved round-robin over tools per repetition (rotating start), "
              "warm page cache (one read + one untimed load per file first)",
              "- bundler: pack(model, path) with defaults (joblib payload, no sample, checksum signature); "
              "load(path, check_behaviour=False)"]
    if meta.get("bundler_unavailable"):
        lines.append(f"- **bundler not measured**: {meta['bundler_unavailable']}")
    sizes = []
    for res in summary["models"]:
        sizes.append(f"{res['model']}: " + ", ".join(f"{t} {s / 1e6:.1f} MB" for t, s in res["sizes"].items()))
    lines += ["- file sizes: " + "; ".join(sizes), ""]

    if meta.get("quick"):
        lines += ["**Quick run** (`--quick`): small models and few repetitions, a smoke check; the targets are "
                  "defined on the full run's models.", ""]
    lines += ["## Issue 11 targets (ratios of medians in this run)", "", "| measure | target | measured | verdict |",
              "| --- | --- | --- | --- |"]
    for t in summary["targets"]:
        if t["value"] is None:
            val = "not measured"
        elif t["unit"] == "ms":
            val = f"{t['value']:.2f} ms"
        else:
            val = f"{t['value']:.3f}"
        if t["note"]:
            val += f" {t['note']}"
        lines.append(f"| {t['measure']} | {t['target']} | {val} | {t['verdict']} |")

    lines += ["", "## Timings (medians; ratio = tool median / joblib median; ratio range = min/max of the "
              "per-repetition paired ratios)", "",
              "| measure | tool | median | min | max | ratio to joblib | ratio min-max |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary["timings"]:
        if "error" in row:
            lines.append(f"| {row['measure']} | {row['tool']} | failed: {row['error']} | | | | |")
            continue
        u = row["unit"]
        ratio = f"{row['ratio']:.2f}" if "ratio" in row else ""
        if "ratio_sklearn" in row:
            ratio = f"{row['ratio_sklearn']:.2f} (to `import sklearn`)"
        rr = f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}" if "ratio_min" in row else ""
        lines.append(f"| {row['measure']} | {row['tool']} | {fmt_val(row['median'], u)} | {fmt_val(row['min'], u)} | "
                     f"{fmt_val(row['max'], u)} | {ratio} | {rr} |")

    if summary["rss"]:
        lines += ["", "## Peak RSS of a load in a fresh process (ru_maxrss; baseline = after importing numpy, "
                  "scikit-learn, joblib and the tool)", "",
                  "| measure | tool | peak | after imports | delta | peak / joblib | delta / joblib |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in summary["rss"]:
            if "error" in row:
                lines.append(f"| {row['measure']} | {row['tool']} | failed: {row['error']} | | | | |")
                continue
            rd = f"{row['ratio_delta']:.2f}" if row.get("ratio_delta") is not None else ""
            rp = f"{row['ratio_peak']:.2f}" if row.get("ratio_peak") is not None else ""
            lines.append(f"| {row['measure']} | {row['tool']} | {row['peak_mb']:.1f} MB | {row['base_mb']:.1f} MB | "
                         f"{row['delta_mb']:.1f} MB | {rp} | {rd} |")

    cold = summary.get("cold")
    if cold:
        lines += ["", "## Cold start (fresh processes)", "",
                  f"`bundler verify` imports of heavy modules: {cold['verify_imports']}"]
        if cold.get("failures"):
            lines.append(f"failures: {cold['failures']}")
    env = summary.get("env")
    if env:
        lines += ["", f"## Environment check: {len(env['packages'])} packages, policy `default`", "",
                  f"median {env['median_ms']:.2f} ms, first call {env['first_ms']:.2f} ms; mismatches: "
                  f"{env['mismatches'] or 'none'}", "", "packages: " + ", ".join(env["packages"])]
    if summary.get("profile"):
        lines += ["", "## Profiles (cProfile, see profile_*.txt)", ""]
        for model, ops in summary["profile"].items():
            for op, v in ops.items():
                steps = ", ".join(f"{c.strip()} {t * 1000:.0f} ms" for c, t in v["phases"].items() if c != "total")
                top = ", ".join(f"{c} {t:.3f} s" for c, t in list(v["categories"].items())[:6])
                lines.append(f"- {op} {model}: {v['phases']['total'] * 1000:.0f} ms unprofiled (steps: {steps}); "
                             f"{v['total_s']:.3f} s under cProfile, own time: {top}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_plot(summary: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    measures: list[str] = []
    data: dict[str, dict[str, tuple[float, float, float]]] = {}
    for row in summary["timings"]:
        if "ratio" not in row:
            continue
        if row["measure"] not in measures:
            measures.append(row["measure"])
        data.setdefault(row["tool"], {})[row["measure"]] = (row["ratio"], row.get("ratio_min", row["ratio"]),
                                                            row.get("ratio_max", row["ratio"]))
    for row in summary["rss"]:
        if row.get("ratio_delta") is None:
            continue
        m = row["measure"].replace("peak RSS load", "peak RSS delta")
        if m not in measures:
            measures.append(m)
        data.setdefault(row["tool"], {})[m] = (row["ratio_delta"],) * 3
    if not measures:
        return False
    tools = [t for t in TOOLS if t in data]
    fig, ax = plt.subplots(figsize=(max(8, 1.5 * len(measures)), 4.8))
    width = 0.8 / len(tools)
    for i, tool in enumerate(tools):
        xs, ys, lo, hi = [], [], [], []
        for j, m in enumerate(measures):
            if m in data[tool]:
                r, rmin, rmax = data[tool][m]
                xs.append(j + (i - (len(tools) - 1) / 2) * width)
                ys.append(r)
                lo.append(max(r - rmin, 0))
                hi.append(max(rmax - r, 0))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=tool)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(measures)))
    ax.set_xticklabels(measures, rotation=20, ha="right")
    ax.set_ylabel("ratio to joblib (median; bars: min-max paired), log scale")
    ax.set_title("joblib vs pickle vs skops vs bundler (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("bundler", "scikit-learn", "numpy", "joblib", "skops", "scipy"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


def jsonable(summary: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(summary, default=lambda o: o.__dict__ if hasattr(o, "__dict__") else str(o)))


# -- main --------------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small models and few repetitions: a smoke check")
    p.add_argument("--only", default=",".join(MODELS), help="comma-separated models among tiny,rf,knn")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated tools among joblib,pickle,skops,bundler")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 5, 3 for knn; 3 and 2 with --quick)")
    p.add_argument("--knn-reps", type=int, default=None, help="repetitions for the 800 MB model (default: 3 or --reps)")
    p.add_argument("--cold-reps", type=int, default=10, help="fresh processes per cold-start command (default 10)")
    p.add_argument("--env-reps", type=int, default=50, help="repetitions of the environment check (default 50)")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-start and environment-check measures")
    p.add_argument("--profile", action="store_true", help="also write cProfile reports of bundler.pack/load")
    p.add_argument("--out", default=str(HERE / "results"), help="output directory (default benchmarks/results)")
    p.add_argument("--tmp", default=None, help="parent of the scratch directory (default: the system temp dir)")
    p.add_argument("--_rss-child", nargs=2, metavar=("TOOL", "PATH"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._rss_child:
        rss_child(*args._rss_child)
        return 0
    models = [m.strip() for m in args.only.split(",") if m.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [m for m in models if m not in MODELS] + [t for t in tools if t not in TOOLS]
    if bad:
        print(f"unknown model or tool: {', '.join(bad)}", file=sys.stderr)
        return 2
    if "joblib" not in tools:
        tools.insert(0, "joblib")  # the reference for every ratio
    reps = args.reps or (3 if args.quick else 5)
    knn_reps = args.knn_reps or args.reps or (2 if args.quick else 3)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="bundler-bench-", dir=args.tmp))
    try:
        for t in tools:
            if t != "bundler":
                import_tool(t)
        why = None
        if "bundler" in tools:
            why = bundler_status(tmp)
            if why:
                log(f"bundler left out: {why}")
                tools.remove("bundler")
        summary: dict[str, Any] = {
            "meta": {"command": " ".join([Path(sys.executable).name, *sys.argv]),
                     "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.platform(),
                     "cpus": os.cpu_count(), "python": platform.python_version(), "versions": versions(),
                     "reps": {m: (knn_reps if m == "knn" else reps) for m in models}, "quick": args.quick,
                     "bundler_unavailable": why, "loadavg_start": os.getloadavg(),
                     "labels": {m: describe(m, args.quick) for m in models}},
            "models": [], "timings": [], "rss": []}
        results = []
        for name in models:
            log(f"building {name}")
            model = build_model(name, args.quick)
            n = knn_reps if name == "knn" else reps
            res = bench_model(name, model, tools, n, tmp, log, rss=not args.no_rss and name != "tiny",
                              label=summary["meta"]["labels"][name])
            if args.profile and "bundler" in tools:
                summary.setdefault("profile", {})[name] = profile_bundler(name, model, tmp, out, log)
            del model
            gc.collect()
            results.append(res)
            summary["models"].append({"model": name, "sizes": res["sizes"], "reps": n})
            summary["timings"] += res["dump"].summary() + res["load"].summary()
        summary["rss"] = rss_series(results)
        if not args.no_cold and "bundler" in tools:
            log("cold start")
            cold = bench_cold(tmp, args.cold_reps, log)
            rows = cold["series"].summary()
            for r in rows:  # the reference of these rows is `import sklearn`, not joblib
                r.pop("ratio", None), r.pop("ratio_min", None), r.pop("ratio_max", None)
                base = statistics.median(cold["series"].values["import sklearn"])
                r["ratio_to"] = "import sklearn"
                r["ratio_sklearn"] = r["median"] / base
            summary["timings"] += rows
            summary["cold"] = {"ratio": cold["ratio"], "verify_imports": cold["verify_imports"],
                               "failures": cold["failures"], "target": cold["target"]}
            env = bench_env(args.env_reps, log)
            env_rows = env["series"].summary()
            summary["timings"] += env_rows
            summary["env"] = {"median_ms": env_rows[0]["median"], "first_ms": env["first_ms"],
                              "packages": env["packages"], "mismatches": env["mismatches"]}
        summary["targets"] = target_rows(summary)
        summary["meta"]["elapsed_s"] = time.perf_counter() - started
        summary["meta"]["loadavg_end"] = os.getloadavg()
        (out / "results.json").write_text(json.dumps(jsonable(summary), indent=2) + "\n", encoding="utf-8")
        write_markdown(summary, out / "results.md")
        plotted = write_plot(summary, out / "results.png")
        print()
        print((out / "results.md").read_text(encoding="utf-8"))
        log(f"wrote {out / 'results.md'}, {out / 'results.json'}" + (f", {out / 'results.png'}" if plotted else ""))
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
