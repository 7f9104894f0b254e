"""The default allowlist: specific names, every estimator, nothing dangerous; audit lines name every offender."""

from __future__ import annotations

import pickle

import pytest
from sklearn.utils import all_estimators

from bundler.safety.allowlist import DEFAULT_ALLOWLIST, Allowlist, is_dangerous, offending_names
from bundler.safety.scan import ScanResult, scan_bytes


def test_every_estimator_class_is_constructible() -> None:
    missing = [f"{c.__module__}.{c.__qualname__}" for _, c in all_estimators()
               if f"{c.__module__}.{c.__qualname__}" not in DEFAULT_ALLOWLIST.constructible]
    assert missing == []


def test_internal_classes_present() -> None:
    for name in ("sklearn.tree._tree.Tree", "sklearn.neighbors._kd_tree.KDTree",
                 "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                 "sklearn.gaussian_process.kernels.RBF", "scipy.sparse._csr.csr_matrix",
                 "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
                 "joblib.numpy_pickle.NumpyArrayWrapper", "copyreg._reconstructor", "_codecs.encode"):
        assert name in DEFAULT_ALLOWLIST.constructible, name
    assert "sklearn.feature_selection._univariate_selection.f_classif" in DEFAULT_ALLOWLIST.referable


@pytest.mark.parametrize("name", ["builtins.eval", "builtins.exec", "builtins.getattr", "builtins.__import__",
                                  "builtins.open", "os.system", "posix.system", "subprocess.Popen", "numpy.load",
                                  "joblib.load", "pickle.loads", "operator.attrgetter", "sys.modules",
                                  "importlib.import_module", "types.FunctionType", "ctypes.CDLL", "shutil.rmtree"])
def test_dangerous_names_never_default(name: str) -> None:
    assert is_dangerous(name)
    assert not DEFAULT_ALLOWLIST.may_import(name)


def test_no_wholesale_packages_and_nothing_dangerous() -> None:
    names = DEFAULT_ALLOWLIST.constructible | DEFAULT_ALLOWLIST.referable
    assert not [n for n in names if is_dangerous(n)]
    assert not [n for n in names if n.endswith(".*") or n in ("sklearn", "numpy", "scipy", "joblib")]


def test_audit_reports_every_offender_in_words_for_every_audience() -> None:
    """Audit lines say what is wrong; what to do (``trust=[...]`` or ``--trust X``) is the error's hint, worded by
    whoever shows it."""
    res = ScanResult("pickle", ("os.system", "sklearn.tree._tree.Tree", "x.y"), ("os.system", "<computed callable>"),
                     None)
    lines = DEFAULT_ALLOWLIST.audit(res)
    assert any(ln.startswith("os.system is called") for ln in lines)
    assert not any("--trust" in ln or "trust=" in ln for ln in lines)
    assert any("x.y is imported" in ln for ln in lines)
    assert any("not a plain global" in ln for ln in lines)
    assert len(lines) == 3
    assert offending_names(res) == ["<computed callable>", "os.system", "x.y"]


def test_referable_but_called_is_refused() -> None:
    res = ScanResult("pickle", ("sklearn.feature_selection._univariate_selection.f_classif",),
                     ("sklearn.feature_selection._univariate_selection.f_classif",), None)
    (line,) = DEFAULT_ALLOWLIST.audit(res)
    assert "as a value only" in line


def test_extended_trust_makes_names_constructible() -> None:
    res = scan_bytes(pickle.dumps(complex(1, 2), 2))
    assert DEFAULT_ALLOWLIST.audit(res) == []
    custom = ScanResult("pickle", ("mypkg.Model",), ("mypkg.Model",), "mypkg.Model")
    assert DEFAULT_ALLOWLIST.audit(custom)
    trusted = DEFAULT_ALLOWLIST.extended(["mypkg.Model"])
    assert trusted.audit(custom) == []
    assert isinstance(trusted, Allowlist)
    assert DEFAULT_ALLOWLIST.audit(custom)
    computed = ScanResult("pickle", (), ("<computed callable>",), None)
    assert DEFAULT_ALLOWLIST.extended(["<computed callable>"]).audit(computed) != []  # never trustable


def test_legacy_wrapper_message() -> None:
    res = ScanResult("pickle", ("joblib.numpy_pickle.NDArrayWrapper",), ("joblib.numpy_pickle.NDArrayWrapper",), None)
    (line,) = DEFAULT_ALLOWLIST.audit(res)
    assert "legacy joblib" in line
    assert "side files" in line
