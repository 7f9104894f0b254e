"""The globals a payload may hold as values (bundler/safety/referable.py): each one public, each with its reason,
each safe to call with hostile arguments (a model calls what it holds with arguments of the payload's choosing)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from typing import Any

import pytest

from bundler.safety.allowlist import DEFAULT_ALLOWLIST, is_dangerous
from bundler.safety.referable import PLACEMENTS, REFERABLE


def resolve(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def public_alias(name: str) -> str | None:
    """A spelling of the same object with no private component (``sklearn.metrics.f1_score`` for
    ``sklearn.metrics._classification.f1_score``), or None."""
    obj = resolve(name)
    module, _, attr = name.rpartition(".")
    if attr.startswith("_"):
        return None
    public = [p for p in module.split(".") if not p.startswith("_")]
    for k in range(len(public), 0, -1):
        candidate = ".".join(public[:k])
        try:
            found = getattr(importlib.import_module(candidate), attr, None)
        except ImportError:
            continue
        if found is obj:
            return f"{candidate}.{attr}"
    return None


@pytest.mark.parametrize("name", sorted(REFERABLE))
def test_each_entry_is_public_and_has_its_reason(name: str) -> None:
    assert len(REFERABLE[name]) > 20
    assert not is_dangerous(name)
    assert public_alias(name) is not None, f"{name} has no public spelling: it must not be referable"


def test_nothing_private_and_nothing_native_internal() -> None:
    assert not [n for n in REFERABLE if n.rpartition(".")[2].startswith("_")]
    assert "sklearn.cluster._kmeans._kmeans_single_lloyd" not in REFERABLE
    assert "numpy.void" not in REFERABLE  # np.void(n) allocates n bytes


@pytest.mark.parametrize("name", sorted(PLACEMENTS))
def test_placements_name_real_slots(name: str) -> None:
    slots, reason = PLACEMENTS[name]
    assert len(reason) > 20
    assert slots
    assert name not in REFERABLE
    # the slot's class may exist only in other releases (scikit-learn renamed its scorers); one must exist here
    assert any(owner in DEFAULT_ALLOWLIST.constructible for owner, _ in slots), slots
    assert all(attr.isidentifier() for _, attr in slots)


_HOSTILE_CALLS = r"""
import json, resource, sys, warnings
import numpy as np
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
warnings.simplefilter("ignore")
import importlib
names = json.loads(sys.argv[1])
X = np.ones((4, 3)); y = np.array([0, 1, 0, 1])
big = 1 << 62
hostile = [
    (), (X,), (X, X), (X, X.T), (X, y), (y, y), (big,), (-big,), (X, big), ("text",), (None,), (X, None),
    (np.ones(0),), (np.ones((0, 3)),), (X.astype(object),), (np.ones((2, 2, 2)),), (X, X, X, X),
]
kwargs = [{}, {"axis": big}, {"out": np.empty(1)}, {"dtype": object}, {"n_jobs": 1}, {"where": np.ones(7, bool)},
          {"metric": "mahalanobis", "VI": np.eye(1)}, {"gamma": -1.0}, {"degree": big}, {"sample_weight": np.ones(1)},
          {"labels": np.arange(10**6)}, {"pos_label": big}, {"k": big}, {"q": big}, {"ddof": -big}]
done = 0
for name in names:
    module, _, attr = name.rpartition(".")
    func = getattr(importlib.import_module(module), attr)
    if not callable(func):
        continue
    print(name, flush=True)
    calls = [(args, {}) for args in hostile] + [(args, kw) for args in ((X,), (X, y)) for kw in kwargs[1:]]
    for args, kw in calls:
        try:
            func(*args, **kw)
        except Exception:
            pass
        done += 1
print(json.dumps({"calls": done}), flush=True)
"""


def test_hostile_calls_never_kill_the_process() -> None:
    """Every referable callable with hostile arguments (wrong shapes, dtypes, sizes, out arrays): a Python
    exception or a result, never a signal. One child runs them all; its last line says which it was on."""
    names = sorted(REFERABLE)
    proc = subprocess.run([sys.executable, "-c", _HOSTILE_CALLS, json.dumps(names)], capture_output=True,
                          text=True, timeout=600)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "<nothing>"
    assert proc.returncode == 0, f"child exited {proc.returncode} while calling {last}: {proc.stderr[-500:]}"
    assert json.loads(last)["calls"] > len(names) * 40
