"""The generated allowlist data: current with the committed sweep records, every release represented, names tagged
with the releases they come from, and the dangerous-name guard enforced by the generator."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from bundler.safety import _allowlist_data as data
from bundler.safety.allowlist import DEFAULT_ALLOWLIST, origin
from tests import make_allowlist

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = json.loads((ROOT / "fixtures" / "environments.json").read_text(encoding="utf-8"))["environments"]


def test_generated_file_is_current() -> None:
    """Regenerating from the committed records gives the committed file byte for byte (run `nox -s allowlist`)."""
    expected = make_allowlist.render(make_allowlist.read_records())
    assert make_allowlist.OUTPUT.read_text(encoding="utf-8") == expected


def test_every_supported_release_has_a_sweep_record() -> None:
    records = make_allowlist.read_records()
    assert list(records) == sorted(ENVIRONMENTS, key=make_allowlist.release_key)
    assert tuple(records) == data.RELEASES
    for release, record in records.items():
        assert record["environment"]["scikit-learn"].startswith(release + "."), release
        assert len(record["sweep"]["calls"]) > 200
        assert record["objects"] > 200


def test_names_are_tagged_with_their_releases() -> None:
    # scikit-learn 1.2 - 1.4 pickle their Cython losses through this helper (the HistGradientBoosting and
    # Gamma/Poisson/Tweedie bundles); the current release does not
    name = "sklearn._loss._loss.__pyx_unpickle_CyHalfPoissonLoss"
    assert origin(name) == ("1.2", "1.3", "1.4")
    assert DEFAULT_ALLOWLIST.may_call(name)
    # 1.5 and 1.6 hold a ColumnTransformer's remainder columns in a private class of their own
    assert origin("sklearn.compose._column_transformer._RemainderColsList") == ("1.5", "1.6")
    assert origin("numpy.core.multiarray._reconstruct") == ("1.2", "1.3")  # numpy 1.x environments
    assert origin("sklearn.pipeline.Pipeline") == data.RELEASES
    assert origin("sklearn.utils.Bunch") == (make_allowlist.DOCUMENTED,)
    assert origin("os.system") == ()


def test_constructible_wins_over_referable_and_nothing_is_both() -> None:
    assert not set(data.CONSTRUCTIBLE) & set(data.REFERABLE)
    assert set(DEFAULT_ALLOWLIST.constructible) == set(data.CONSTRUCTIBLE)
    assert "sklearn.feature_selection._univariate_selection.f_classif" in data.REFERABLE


def test_generator_refuses_a_dangerous_name() -> None:
    records = copy.deepcopy(make_allowlist.read_records())
    next(iter(records.values()))["sweep"]["calls"].append("builtins.eval")
    expected = "dangerous names would enter the default allowlist: ['builtins.eval']"
    with pytest.raises(SystemExit, match=re.escape(expected)):
        make_allowlist.build(records)


def test_generator_keeps_excluded_names_out() -> None:
    records = copy.deepcopy(make_allowlist.read_records())
    next(iter(records.values()))["sweep"]["calls"].append("sklearn.metrics._dist_metrics.PyFuncDistance64")
    cons, refs = make_allowlist.build(records)
    assert "sklearn.metrics._dist_metrics.PyFuncDistance64" not in cons | refs.keys()
