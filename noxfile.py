"""nox sessions: the test suite, the cross-version fixtures, matrix and allowlist sweep, the benchmark.

``nox`` alone runs ``tests``. The cross-version sessions are parametrized so that every scikit-learn version is its own
session id (``nox --list``): ``nox -s "fixtures(sklearn='1.5')"`` rebuilds one version's fixtures, ``nox -s fixtures``
all of them. The versions and their exact pins live in ``fixtures/environments.json``, shared with
``bundler matrix --fixtures`` so that the fixtures are loaded in the very environments they were made in.

- ``fixtures(sklearn)``: pack the reference models under that release into ``fixtures/sklearn-X.Y/`` (committed).
- ``sweep(sklearn)``: record the globals that release pickles into ``fixtures/allowlist/sklearn-X.Y.json`` and, for
  every release but the newest, pack small sweep bundles into ``fixtures/sweep/sklearn-X.Y/`` (committed).
- ``allowlist``: regenerate ``bundler/safety/_allowlist_data.py`` from the committed sweep records (no network).
- ``deploy``: pack every model kind people ship (tests/model_kinds.py) and load each bundle in a fresh virtual
  environment made only from its requirements.txt plus bundler: the expensive proof that the pins are complete.
- ``matrix``: every fixture under every version on this machine, writing ``reports/matrix.{md,json,png}``;
  ``nox -s matrix -- BUNDLE --versions 1.5 1.6`` runs the same experiment for one of your own bundles.
- ``matrix_cells(sklearn)``: every fixture loaded under that one version, written as JSON cells to
  ``$BUNDLER_CELLS_DIR`` (default ``.nox/cells``): one CI job each; ``bundler matrix --merge DIR...`` joins them
  (``.github/workflows/matrix.yml``).

uv makes environments when available (``uv|virtualenv``): it is what keeps the matrix inside its time budget.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).resolve().parent
FIXTURES = ROOT / "fixtures"
ENVIRONMENTS: dict[str, list[str]] = json.loads((FIXTURES / "environments.json").read_text(encoding="utf-8"))[
    "environments"]
SKLEARN_VERSIONS = sorted(ENVIRONMENTS, key=lambda v: tuple(int(p) for p in v.split(".")))
NEWEST = SKLEARN_VERSIONS[-1]
#: `bundler matrix` exits 4 (a cell fails to load) or 6 (a cell drifts) when it found what the matrix is for; a
#: session that writes the reports has done its job then (the merge, or the report itself, gates).
CELL_CODES = [0, 4, 6]


def _uv_env() -> dict[str, str]:
    """Tell bundler's matrix which uv nox found, so the per-version environments are made with it too."""
    try:
        has_uv, uv_bin, _ = nox.virtualenv.find_uv()
    except Exception:  # noqa: BLE001 - older nox without find_uv: the matrix looks on PATH itself
        return {}
    return {"BUNDLER_MATRIX_UV": uv_bin} if has_uv else {}


def _install_release(session: nox.Session, sklearn: str) -> None:
    """bundler from this tree and the committed reference environment of one release."""
    session.install(".", *ENVIRONMENTS[sklearn])
    session.run("python", "-c", "import sklearn, numpy; print('scikit-learn', sklearn.__version__, 'numpy', "
                "numpy.__version__)")


@nox.session
def tests(session: nox.Session) -> None:
    """The default test suite, exactly as .ci/run and the README run it."""
    session.install("-c", ".ci/constraints.txt", ".[test,thirdparty]")
    session.run("python", "-m", "pytest", "-q", "-n", "2", *session.posargs)


@nox.session
def deploy(session: nox.Session) -> None:
    """Every model kind of tests/model_kinds.py, packed through the API and the CLI, loaded and behaviour-checked in
    fresh virtual environments made only from each bundle's requirements.txt plus bundler (tests/deploy_check.py)."""
    session.install("-c", ".ci/constraints.txt", ".[test]")
    session.run("python", "tests/deploy_check.py", "--workdir", str(ROOT / ".nox" / "deploy-envs"), *session.posargs)


@nox.session
@nox.parametrize("sklearn", SKLEARN_VERSIONS)
def fixtures(session: nox.Session, sklearn: str) -> None:
    """Pack the reference models under one scikit-learn version into fixtures/sklearn-X.Y/ (committed)."""
    _install_release(session, sklearn)
    session.run("python", str(FIXTURES / "make_reference.py"), str(FIXTURES / f"sklearn-{sklearn}"))


@nox.session
@nox.parametrize("sklearn", SKLEARN_VERSIONS)
def sweep(session: nox.Session, sklearn: str) -> None:
    """Record the globals one release pickles (fixtures/allowlist/sklearn-X.Y.json) and its sweep bundles."""
    _install_release(session, sklearn)
    bundles = [] if sklearn == NEWEST else [str(FIXTURES / "sweep" / f"sklearn-{sklearn}")]
    session.run("python", str(FIXTURES / "allowlist" / "sweep.py"),
                str(FIXTURES / "allowlist" / f"sklearn-{sklearn}.json"), *bundles)


@nox.session
def allowlist(session: nox.Session) -> None:
    """Regenerate bundler/safety/_allowlist_data.py from the committed sweep records (after `nox -s sweep`)."""
    session.install("-c", ".ci/constraints.txt", ".")
    session.run("python", "tests/make_allowlist.py")


@nox.session
def matrix(session: nox.Session) -> None:
    """Every (bundled under X, loaded under Y) pair of the fixtures; or, with arguments, one bundle of your own."""
    session.install(".[plot]")
    env = _uv_env()
    if session.posargs:
        session.run("bundler", "matrix", *session.posargs, env=env)
        return
    session.run("bundler", "matrix", "--fixtures", str(FIXTURES), "--reports", str(ROOT / "reports"),
                "--workdir", str(ROOT / ".nox" / "matrix-envs"), env=env, success_codes=CELL_CODES)


@nox.session
@nox.parametrize("sklearn", SKLEARN_VERSIONS)
def matrix_cells(session: nox.Session, sklearn: str) -> None:
    """Every fixture loaded under one version, as JSON cells for `bundler matrix --merge` (one CI job each)."""
    session.install(".")
    cells = Path(os.environ.get("BUNDLER_CELLS_DIR", ROOT / ".nox" / "cells"))
    session.run("bundler", "matrix", "--fixtures", str(FIXTURES), "--versions", sklearn,
                "--json", str(cells / f"sklearn-{sklearn}.json"), "--workdir", str(ROOT / ".nox" / "matrix-envs"),
                env=_uv_env(), success_codes=CELL_CODES)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark (benchmarks/bench.py): joblib, pickle, skops and bundler side by side."""
    session.install(".[skops,plot]")
    session.run("python", "benchmarks/bench.py", *session.posargs)
