"""Scan cost versus joblib.load on a 100-tree RandomForestClassifier (the issue's target: scan < 10% of load).

The scan reads the file once and skips array bytes without copying them into arrays, so its cost is mostly per
pickle opcode (~100-200 ns each in pure Python); joblib.load pays per opcode *and* per array byte.  The ratio
therefore depends on tree size: it is reported for several training-set sizes.

Run:  python benchmarks/scan_cost.py [n_samples ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

import joblib  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402

from bundler.safety.scan import scan_file  # noqa: E402


def best(fn, repeat: int = 7) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rf.joblib")
        print(f"{'n_samples':>9} {'file MiB':>9} {'load ms':>9} {'scan ms':>9} {'ratio':>7}")
        for n in sizes:
            X, y = make_classification(n_samples=n, n_features=20, random_state=0)
            model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1).fit(X, y)
            joblib.dump(model, path)
            t_load = best(lambda: joblib.load(path))
            t_scan = best(lambda: scan_file(path))
            size = os.path.getsize(path) / 2**20
            print(f"{n:>9} {size:>9.1f} {t_load * 1e3:>9.1f} {t_scan * 1e3:>9.1f} {t_scan / t_load:>7.1%}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000, 10_000, 50_000, 200_000])
