"""Trust profiles: the exact globals a third-party model library's scikit-learn wrappers and boosters pickle.

A profile is data, not a package wildcard: the names each library's own pickling writes, measured with the static
scan on real models (classifier, regressor and ranker, plain and inside a ``Pipeline``, with categorical features,
early stopping and several objectives; ``tests/test_thirdparty.py::test_profiles_cover_what_the_libraries_pickle``
re-measures them with the installed releases), together with the releases they were measured with. Trusting a
profile adds exactly these names to the allowlist (``trust_profiles=["xgboost"]``, ``--trust-profile xgboost``,
``trust-profiles = [...]`` in ``[tool.bundler]``). The native state those classes hand to C++ is validated whether
or not a profile is used (``bundler.safety.build_guards``, ``bundler.safety.validators.thirdparty``).

Standard library only: this runs inside ``bundler verify``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from bundler.errors import Hint, UsageError, trust_hint

__all__ = ["PROFILES", "TrustProfile", "profile", "profiles_for", "trust_hints"]


@dataclass(frozen=True)
class TrustProfile:
    """One library's names: what may be called while loading, and what may be held as a value (with why)."""

    name: str
    distribution: str
    measured_with: tuple[str, ...]
    constructible: frozenset[str]
    referable: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> frozenset[str]:
        return self.constructible | frozenset(self.referable)


_ORDERED_DICT = ("LightGBM keeps its best scores in a defaultdict whose factory is collections.OrderedDict; "
                 "calling it builds an empty ordered dict")

PROFILES: Final[dict[str, TrustProfile]] = {
    "xgboost": TrustProfile(
        name="xgboost", distribution="xgboost", measured_with=("xgboost 3.2.0",),
        constructible=frozenset({
            "xgboost.core.Booster",
            "xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor", "xgboost.sklearn.XGBRanker",
            "xgboost.sklearn.XGBRFClassifier", "xgboost.sklearn.XGBRFRegressor", "xgboost.sklearn.XGBModel",
        })),
    "lightgbm": TrustProfile(
        name="lightgbm", distribution="lightgbm", measured_with=("lightgbm 4.7.0",),
        constructible=frozenset({
            "lightgbm.basic.Booster",
            "lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor", "lightgbm.sklearn.LGBMRanker",
            "lightgbm.sklearn.LGBMModel",
        }),
        referable={"collections.OrderedDict": _ORDERED_DICT}),
    "catboost": TrustProfile(
        name="catboost", distribution="catboost", measured_with=("catboost 1.2.10",),
        constructible=frozenset({
            "catboost.core.CatBoost", "catboost.core.CatBoostClassifier", "catboost.core.CatBoostRegressor",
            "catboost.core.CatBoostRanker",
        })),
}


def profile(name: str) -> TrustProfile:
    """The profile called ``name``; an unknown name is a usage error listing the known ones."""
    found = PROFILES.get(name.strip().lower())
    if found is None:
        raise UsageError(f"unknown trust profile {name!r} (known: {', '.join(sorted(PROFILES))})")
    return found


def profiles_for(names: Iterable[str]) -> list[str]:
    """The profiles that would accept some of ``names`` (what a refusal suggests), sorted."""
    wanted = set(names)
    return sorted(p.name for p in PROFILES.values() if p.names & wanted)


def trust_hints(names: Iterable[str]) -> list[Hint]:
    """How to accept refused ``names``: the trust profiles that cover some of them (a profile also validates their
    state, so it comes first), then plain ``trust`` for the rest. Empty when nothing can be trusted (computed
    pseudo-names such as ``<bundled code>``)."""
    wanted = sorted(set(names))
    suggested = profiles_for(wanted)
    hints: list[Hint] = []
    if suggested:
        import json

        hints.append(Hint(f"a model of {' and '.join(suggested)}: its trust profile accepts the names its library "
                          "pickles (and validates their state)", api=f"trust_profiles={json.dumps(suggested)}",
                          cli=" ".join(f"--trust-profile {p}" for p in suggested)))
        covered = frozenset().union(*(PROFILES[p].names for p in suggested))
        wanted = [n for n in wanted if n not in covered]
    rest = trust_hint(wanted)
    if rest is not None:
        hints.append(rest)
    return hints
