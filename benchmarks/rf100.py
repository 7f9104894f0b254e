"""Pack and load of a 100-tree random forest against joblib.dump / joblib.load (issue 2's closing figures).

Run: ``python benchmarks/rf100.py``. Nine interleaved repetitions, warm page cache, medians; files in a temp dir.
The full side-by-side benchmark (pickle, skops, larger models, memory) is ``benchmarks/bench.py``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import joblib
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

import bundler


def main() -> None:
    X, y = make_classification(n_samples=16_000, n_features=20, flip_y=0.05, random_state=0)
    rf = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=2).fit(X, y)
    with tempfile.TemporaryDirectory(prefix="bundler-rf100-") as tmp:
        jpath, bpath = Path(tmp) / "rf.joblib", Path(tmp) / "rf.mlbundle"
        steps: dict[str, Callable[[], object]] = {
            "joblib.dump": lambda: joblib.dump(rf, jpath),
            "bundler.pack": lambda: bundler.pack(rf, bpath),
            "joblib.load": lambda: joblib.load(jpath),
            "bundler.load": lambda: bundler.load(bpath),
        }
        for step in steps.values():  # warm-up: imports, page cache
            step()
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(9):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        size = jpath.stat().st_size / 1e6
    med = {name: statistics.median(v) * 1e3 for name, v in times.items()}
    print(f"100-tree forest, {size:.1f} MB as joblib")
    print(f"pack {med['bundler.pack']:.1f} ms vs joblib.dump {med['joblib.dump']:.1f} ms: "
          f"{med['bundler.pack'] / med['joblib.dump']:.2f}x")
    print(f"load {med['bundler.load']:.1f} ms vs joblib.load {med['joblib.load']:.1f} ms: "
          f"{med['bundler.load'] / med['joblib.load']:.2f}x")


if __name__ == "__main__":
    main()
