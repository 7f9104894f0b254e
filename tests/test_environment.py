"""Environment capture, requirements inference and the version policy (table-driven)."""

from __future__ import annotations

import pytest

from bundler.environment.capture import InstalledVersions, capture_interpreter, normalize
from bundler.environment.policy import Policy, accepts, compare
from bundler.environment.requirements import infer_requirements, parse_pins
from bundler.errors import UsageError


@pytest.mark.parametrize(
    ("rule", "expected", "found", "ok"),
    [
        ("exact", "1.5.2", "1.5.2", True),
        ("exact", "1.5.2", "1.5.2.0", True),
        ("exact", "1.5.2", "1.5.1", False),
        ("minor", "1.5.2", "1.5.9", True),
        ("minor", "1.5.2", "1.6.0", False),
        ("minor", "2", "2.0.1", True),
        ("major", "1.26.4", "1.0", True),
        ("major", "1.26.4", "2.0.0", False),
        ("none", "1.0", "9.9", True),
        (">=1.5,<1.8", "1.5.0", "1.7.2", True),
        (">=1.5,<1.8", "1.5.0", "1.8.0", False),
        ("minor", "1.5.0", "1.5.0rc1", True),
    ],
)
def test_accepts(rule: str, expected: str, found: str, ok: bool) -> None:
    assert accepts(rule, expected, found) is ok


def test_default_policy_rules() -> None:
    p = Policy("default")
    assert p.rule_for("scikit-learn", []) == "exact"
    assert p.rule_for("xgboost", ["xgboost"]) == "exact"
    assert p.rule_for("numpy", []) == "major"
    assert p.rule_for("scipy", []) == "minor"
    assert Policy("default", {"numpy": "exact"}).rule_for("numpy", []) == "exact"
    assert Policy("minor").rule_for("scikit-learn", []) == "minor"


def test_compare_lists_every_mismatch() -> None:
    expected = {"scikit-learn": "1.5.0", "numpy": "1.26.4", "scipy": "1.13.0", "gone": "1.0"}
    installed = {"scikit-learn": "1.6.0", "numpy": "2.0.0", "scipy": "1.13.1", "gone": None}
    found = {m.package for m in compare(expected, installed, Policy("default"))}
    assert found == {"scikit-learn", "numpy", "gone"}
    assert compare(expected, installed, Policy("none")) == []


def test_bad_policies_report_every_problem() -> None:
    with pytest.raises(UsageError) as info:
        Policy("sometimes", {"a": "rarely", "b": ">=1"})
    assert len(info.value.problems) == 2


def test_capture_and_installed() -> None:
    info = capture_interpreter()
    assert set(info) == {"python_version", "implementation", "platform", "machine"}
    installed = InstalledVersions()
    import sklearn

    assert installed["scikit-learn"] == sklearn.__version__
    assert installed["definitely-not-installed-xyz"] is None


def test_infer_from_globals() -> None:
    inferred = infer_requirements(["sklearn.linear_model._logistic.LogisticRegression", "numpy.dtype",
                                   "builtins.slice", "copyreg._reconstructor", "mystery_module.Thing"],
                                  ["sklearn.linear_model._logistic.LogisticRegression", "numpy.dtype"])
    assert {"scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"} <= set(inferred.pins)
    assert inferred.frameworks == ["scikit-learn"]
    assert inferred.unmapped == ["mystery_module"]


def test_parse_pins() -> None:
    assert parse_pins(["NumPy==1.26.4", "  ", "scikit_learn==1.5.0"]) == {"numpy": "1.26.4", "scikit-learn": "1.5.0"}
    with pytest.raises(UsageError) as info:
        parse_pins(["a>=1", "b==2", "c", "d==x y"])
    assert len(info.value.problems) == 3
    assert normalize("Scikit_Learn") == "scikit-learn"


def test_installed_versions_are_looked_up_lazily() -> None:
    """Only the pinned packages are looked up (the speed of this is measured in benchmarks/, not here)."""
    installed = InstalledVersions()
    names = ["numpy", "scipy", "joblib", "scikit-learn", "threadpoolctl"]
    assert all(installed[n] for n in names)
    assert sorted(installed) == sorted(names)
