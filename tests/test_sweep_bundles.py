"""Bundles made by older scikit-learn releases (``fixtures/sweep/sklearn-X.Y/``, packed by ``nox -s sweep``) under the
running release: a name of a known release that this environment lacks is an environment problem (exit 4, naming
it), never unsafe content (exit 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sklearn

import bundler
from bundler.errors import EnvironmentMismatch
from bundler.safety.allowlist import DEFAULT_ALLOWLIST, origin
from tests.conftest import ROOT, run_cli

SWEEP = sorted((ROOT / "fixtures" / "sweep").glob("sklearn-*/*.mlbundle"))
OLD = [p for p in SWEEP if not sklearn.__version__.startswith(p.parent.name.split("-", 1)[1] + ".")]
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn's InconsistentVersionWarning


def sweep_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_at_least_two_old_releases_are_committed() -> None:
    releases = {p.parent.name for p in OLD}
    assert len(releases) >= 2, releases
    for path in SWEEP:
        assert path.stat().st_size < 64 * 1024, f"{path} is too large for a committed sweep bundle"


def test_old_bundles_carry_names_the_current_release_does_not_pickle() -> None:
    """The fixtures exercise what they are for: globals that only older releases pickle."""
    current = ".".join(sklearn.__version__.split(".")[:2])
    old_only = set()
    for path in OLD:
        for name in bundler.verify(path, policy="none").globals:
            tags = origin(name)
            assert tags, f"{sweep_id(path)}: {name} is not on the allowlist"
            if current not in tags:
                old_only.add(name)
    assert "sklearn._loss._loss.__pyx_unpickle_CyHalfPoissonLoss" in old_only
    assert "sklearn.ensemble._gb_losses.BinomialDeviance" in old_only


@pytest.mark.parametrize("path", OLD, ids=sweep_id)
def test_old_release_bundle_loads_or_is_an_environment_problem(path: Path) -> None:
    report = bundler.verify(path, policy="none")
    assert report.ok, [p.message for p in report.problems]
    assert [n for n in report.globals if not DEFAULT_ALLOWLIST.may_import(n)] == []
    try:
        bundler.load(path, policy="none")
    except EnvironmentMismatch as exc:
        # it names what is missing: one of the payload's own globals, or what the rebuild tripped on
        named = [n for n in report.globals if n in exc.problems[0]]
        assert named or "cannot be rebuilt in this environment" in exc.problems[0], exc.problems  # noqa: PT017


@pytest.mark.parametrize("path", [p for p in OLD if p.parent.name in ("sklearn-1.2", "sklearn-1.3", "sklearn-1.5")
                                  and p.stem in ("hgb_binary", "poisson", "gradient_boosting")], ids=sweep_id)
def test_cli_exit_code_is_never_unsafe(path: Path) -> None:
    result = run_cli("load", path, "--policy", "none")
    assert result.returncode in (0, 4), result.stderr
    assert "Traceback" not in result.stderr
    assert "not allowed" not in result.stderr
