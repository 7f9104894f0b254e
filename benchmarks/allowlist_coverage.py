"""How many scikit-learn estimators (fitted with default parameters on tiny data) load by default:
bundler's DEFAULT_ALLOWLIST versus skops' default trust (refused when ``skops.io.get_untrusted_types`` is non-empty).

Run:  python benchmarks/allowlist_coverage.py
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import joblib  # noqa: E402
import skops.io as sio  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from bundler.safety.allowlist import DEFAULT_ALLOWLIST  # noqa: E402
from bundler.safety.scan import scan_bytes  # noqa: E402
from tests.estimator_zoo import Fitted, fit_all  # noqa: E402


def main() -> None:
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = fit_all()
    fitted = [r for r in results if isinstance(r, Fitted)]
    ours_refused: list[str] = []
    skops_refused: dict[str, list[str]] = {}
    for f in fitted:
        bio = io.BytesIO()
        joblib.dump(f.estimator, bio)
        if DEFAULT_ALLOWLIST.audit(scan_bytes(bio.getvalue())):
            ours_refused.append(f.name)
        try:
            untrusted = sio.get_untrusted_types(data=sio.dumps(f.estimator))
        except Exception as exc:
            untrusted = [f"<skops cannot dump it: {type(exc).__name__}>"]
        if untrusted:
            skops_refused[f.name] = list(untrusted)
    n = len(fitted)
    print(f"{len(results)} estimators from all_estimators(); {n} fit with default parameters on tiny data")
    ok = n - len(ours_refused)
    print(f"bundler DEFAULT_ALLOWLIST: {ok}/{n} load by default ({100 * ok / n:.1f}%)")
    print(f"skops default trust:       {n - len(skops_refused)}/{n} load by default "
          f"({100 * (n - len(skops_refused)) / n:.1f}%)")
    for name in ours_refused:
        print(f"  bundler refuses {name}")
    for name, types in sorted(skops_refused.items()):
        print(f"  skops refuses {name}: {', '.join(sorted(types))[:150]}")


if __name__ == "__main__":
    main()
