"""nox sessions: the test suite, the cross-version fixtures, the cross-version matrix, the benchmark.

``nox`` alone runs ``tests``. The cross-version sessions are parametrized so that every scikit-learn version is its own
session id (``nox --list``): ``nox -s "fixtures(sklearn='1.5')"`` rebuilds one version's fixtures, ``nox -s fixtures``
all of them. The versions and their exact pins live in ``fixtures/environments.json``, shared with
``bundler matrix --fixtures`` so that the fixtures are loaded in the very environments they were made in.

``nox -s deploy`` packs every model kind people ship (tests/model_kinds.py) and loads each bundle in a fresh virtual
environment made only from its requirements.txt plus bundler: the expensive proof that the pins are complete.

``nox -s matrix`` loads every committed fixture under every version and writes ``reports/matrix.{md,json,png}``;
``nox -s matrix -- BUNDLE --versions 1.5 1.6`` runs the same experiment for one of your own bundles.
uv makes environments when available (``uv|virtualenv``): it is what keeps the matrix inside its time budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).resolve().parent
FIXTURES = ROOT / "fixtures"
ENVIRONMENTS: dict[str, list[str]] = json.loads((FIXTURES / "environments.json").read_text(encoding="utf-8"))[
    "environments"]
SKLEARN_VERSIONS = sorted(ENVIRONMENTS, key=lambda v: tuple(int(p) for p in v.split(".")))


def _uv_env() -> dict[str, str]:
    """Tell bundler.crossversion.matrix which uv nox found, so the per-version environments are made with it too."""
    try:
        has_uv, uv_bin, _ = nox.virtualenv.find_uv()
    except Exception:  # older nox without find_uv: bundler.crossversion.matrix looks on PATH itself
        return {}
    return {"BUNDLER_MATRIX_UV": uv_bin} if has_uv else {}


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
    session.install(".", *ENVIRONMENTS[sklearn])
    session.run("python", "-c", "import sklearn, numpy; print('scikit-learn', sklearn.__version__, 'numpy', "
                "numpy.__version__)")
    session.run("python", str(FIXTURES / "make_reference.py"), str(FIXTURES / f"sklearn-{sklearn}"))


@nox.session
def matrix(session: nox.Session) -> None:
    """Every (bundled under X, loaded under Y) pair of the fixtures; or, with arguments, one bundle of your own."""
    session.install(".[plot]")
    env = _uv_env()
    if session.posargs:
        session.run("python", "-m", "bundler.crossversion.matrix", *session.posargs, env=env)
        return
    session.run("python", "-m", "bundler.crossversion.matrix", "--fixtures", str(FIXTURES),
                "--reports", str(ROOT / "reports"), "--workdir", str(ROOT / ".nox" / "matrix-envs"), env=env)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark (benchmarks/bench.py): joblib, pickle, skops and bundler side by side."""
    session.install(".[skops,plot]")
    session.run("python", "benchmarks/bench.py", *session.posargs)
