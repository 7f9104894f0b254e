"""Generate ``bundler/safety/_allowlist_data.py``: the default allowlist as a static, reviewable table of names.

Run from the repository root: ``python tests/make_allowlist.py`` (or ``nox -s allowlist``); never imported at
runtime. It reads only committed data and imports no scikit-learn, so ``tests/test_allowlist_data.py`` can check in
the default suite that the committed file is what these records give.

Where the names come from, so that nothing is a guess:

1. ``fixtures/allowlist/sklearn-X.Y.json``, one per supported scikit-learn release, written by
   ``nox -s "sweep(sklearn='X.Y')"`` (``fixtures/allowlist/sweep.py``) inside that release's reference environment:
   the globals its estimator sweep pickles (called ones become constructible, the rest referable) and the classes
   and functions enumerated from its modules;
2. ``DOCUMENTED_*`` below: names of releases older than the sweep covers (numpy < 1.17, scipy < 1.8, scikit-learn
   < 1.2), each line saying which release used it;
3. ``short_loss_names``: the short module spelling (``_loss.``) of every Cython loss class, which meson builds of
   scikit-learn 1.5 - 1.8 pickle.

Each name is tagged with where it comes from: the releases whose records hold it, ``documented`` or ``derived``.
A name is constructible when any release calls it (a release that only references it does not make it less
allowed). Every name is checked against ``bundler.safety.allowlist.is_dangerous``; the generator aborts if one slips
in, and ``EXCLUDE`` keeps out names that are safe to build but not to use.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bundler.safety.allowlist import is_dangerous  # noqa: E402

RECORDS = ROOT / "fixtures" / "allowlist"
OUTPUT = ROOT / "bundler" / "safety" / "_allowlist_data.py"
DOCUMENTED = "documented"
DERIVED = "derived"

EXCLUDE = {
    # Holds an arbitrary Python callable and calls it at query time: keep it out of the default.
    "sklearn.metrics._dist_metrics.PyFuncDistance64", "sklearn.metrics._dist_metrics.PyFuncDistance32",
    "sklearn.metrics._dist_metrics.PyFuncDistance",
}

# Names under which releases older than the sweep covers pickle the same objects.
DOCUMENTED_CONSTRUCTIBLE = [
    # numpy < 1.17: RandomState pickled through numpy.random.__RandomState_ctor.
    "numpy.random.__RandomState_ctor", "numpy.random.mtrand.RandomState",
    # scipy < 1.8: sparse containers lived in public modules.
    "scipy.sparse.csr.csr_matrix", "scipy.sparse.csc.csc_matrix", "scipy.sparse.coo.coo_matrix",
    "scipy.sparse.bsr.bsr_matrix", "scipy.sparse.dia.dia_matrix", "scipy.sparse.dok.dok_matrix",
    "scipy.sparse.lil.lil_matrix",
    # scikit-learn < 1.2: Bunch in sklearn.utils.
    "sklearn.utils.Bunch",
    # scikit-learn <= 1.0: histogram gradient-boosting losses before sklearn._loss.
    "sklearn.ensemble._hist_gradient_boosting.loss.LeastSquares",
    "sklearn.ensemble._hist_gradient_boosting.loss.LeastAbsoluteDeviation",
    "sklearn.ensemble._hist_gradient_boosting.loss.Poisson",
    "sklearn.ensemble._hist_gradient_boosting.loss.BinaryCrossEntropy",
    "sklearn.ensemble._hist_gradient_boosting.loss.CategoricalCrossEntropy",
    # scikit-learn 1.1: distance metrics without the 64/32 suffix.
    "sklearn.metrics._dist_metrics.EuclideanDistance", "sklearn.metrics._dist_metrics.ManhattanDistance",
    "sklearn.metrics._dist_metrics.MinkowskiDistance", "sklearn.metrics._dist_metrics.ChebyshevDistance",
]
DOCUMENTED_REFERABLE = ["numpy.bool_"]


def release_key(release: str) -> tuple[int, ...]:
    return tuple(int(p) for p in release.split("."))


def read_records(folder: Path = RECORDS) -> dict[str, dict[str, Any]]:
    """``{release: record}`` for every ``sklearn-X.Y.json`` in ``folder``, oldest release first."""
    records = {}
    for path in folder.glob("sklearn-*.json"):
        records[path.stem.split("-", 1)[1]] = json.loads(path.read_text(encoding="utf-8"))
    if not records:
        raise SystemExit(f"no sweep records under {folder} (run `nox -s sweep`)")
    return dict(sorted(records.items(), key=lambda item: release_key(item[0])))


def release_names(record: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(called, every name) of one release's record: called globals and enumerated classes may be called."""
    called = set(record["sweep"].get("calls", ())) | set(record["enumerated"]["constructible"])
    seen = set(called) | set(record["enumerated"]["referable"])
    for names in record["sweep"].values():
        seen |= set(names)
    return called, seen


def short_loss_names(cons: Iterable[str]) -> set[str]:
    """scikit-learn 1.5 - 1.8 (meson builds) pickle the Cython loss objects of HistGradientBoosting with the module's
    short name (``_loss.__pyx_unpickle_CyHalfMultinomialLoss``). Allow every such class under that name, so such a
    bundle is judged by whether this environment can load it (exit 4 when it cannot), not refused as hostile."""
    prefix = "sklearn._loss._loss."
    classes = {n[len(prefix):] for n in cons if n.startswith(prefix) and n[len(prefix):].startswith("Cy")}
    return {f"_loss.{c}" for c in classes} | {f"_loss.__pyx_unpickle_{c}" for c in classes}


def build(records: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(constructible, referable), each name mapped to its tags; aborts on a dangerous name."""
    tags: dict[str, list[str]] = {}
    cons: set[str] = set()
    for release, record in records.items():
        called, seen = release_names(record)
        cons |= called
        for name in seen:
            tags.setdefault(name, []).append(release)
    cons |= set(DOCUMENTED_CONSTRUCTIBLE)
    for name in DOCUMENTED_CONSTRUCTIBLE + DOCUMENTED_REFERABLE:
        tags.setdefault(name, []).append(DOCUMENTED)
    for name in short_loss_names(cons) - set(tags):
        tags[name] = [DERIVED]
    cons = (cons | short_loss_names(cons)) - EXCLUDE
    refs = set(tags) - cons - EXCLUDE
    bad = sorted(n for n in cons | refs if is_dangerous(n))
    if bad:
        raise SystemExit(f"dangerous names would enter the default allowlist: {bad}")
    return ({n: tuple(tags[n]) for n in sorted(cons)}, {n: tuple(tags[n]) for n in sorted(refs)})


def render(records: Mapping[str, Mapping[str, Any]]) -> str:
    """The text of ``_allowlist_data.py`` for these records."""
    cons, refs = build(records)
    releases = tuple(records)
    lines = ['"""The default allowlist data. GENERATED by tests/make_allowlist.py from fixtures/allowlist/*.json -',
             "do not edit by hand.", "",
             "Every name maps to where it comes from: the scikit-learn releases whose sweep record holds it (``ALL``:",
             f"every one of {', '.join(releases)}), {DOCUMENTED!r} (a name of an older release, documented in the",
             f"generator) or {DERIVED!r} (the short ``_loss.`` spelling of a Cython loss class).", '"""', "",
             '__all__ = ["ALL", "CONSTRUCTIBLE", "REFERABLE", "RELEASES"]', "",
             f"RELEASES: tuple[str, ...] = {releases!r}",
             "ALL = RELEASES", ""]
    for title, table in (("CONSTRUCTIBLE", cons), ("REFERABLE", refs)):
        lines.append(f"{title}: dict[str, tuple[str, ...]] = {{")
        for name, where in table.items():
            lines.append(f"    {name!r}: {'ALL' if where == releases else repr(where)},")
        lines += ["}", ""]
    return "\n".join(lines)


def main() -> None:
    records = read_records()
    OUTPUT.write_text(render(records), encoding="utf-8")
    cons, refs = build(records)
    print(f"wrote {OUTPUT}: {len(cons)} constructible, {len(refs)} referable, from releases {', '.join(records)}")


if __name__ == "__main__":
    main()
