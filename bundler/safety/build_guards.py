"""Build guards: the state of a third-party booster is validated *before* its library's ``__setstate__`` runs.

A state validator (``bundler.safety.validators``) runs after unpickling; for most classes that is early enough,
because native code reads their state only when the model predicts. XGBoost, LightGBM and CatBoost are different:
their ``__setstate__`` hands the model bytes straight to a C++ parser (``XGBoosterUnserializeFromBuffer``,
``LGBM_BoosterLoadModelFromString``, CatBoost's model deserializer), so by the time a validator could look, native
code has already parsed whatever the payload put there. The restricted unpickler therefore looks up the exact class
of every object it BUILDs here, and a registered guard receives the state first: it parses the model bytes in Python
(``bundler.safety.modelformats``), refuses anything out of range, and returns the state to apply, with the model
bytes replaced by a canonical re-encoding of what it checked where the format allows it (XGBoost, LightGBM).

Guards run whenever the class is built, whether a trust profile or an explicit ``trust=`` name allowed it: trusting
a class name never switches its state checks off. A refusal is ``UnsafeContent`` naming the class and the path
inside the model (``xgboost.core.Booster.handle: Model.learner...trees[0].left_children[1]: ...``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from bundler.errors import UnsafeContent
from bundler.safety.modelformats import FormatError

__all__ = ["BUILD_GUARDS", "MAX_THREADS", "guard_build"]

#: Thread counts a booster's own parameters may ask for.
MAX_THREADS: Final = 1024

BuildGuard = Callable[[Any], Any]


def _refuse(cls: str, attr: str, message: str) -> UnsafeContent:
    return UnsafeContent(f"{cls}.{attr}: {message}: not a model its library writes (crafted state); refused before "
                         "its native parser ran", offending=[f"<crafted state: {cls}.{attr}>"])


def _state_dict(cls: str, state: Any) -> dict[str, Any]:
    if type(state) is not dict or not all(type(k) is str for k in state):
        raise _refuse(cls, "__state__", "state is not a dict with string keys")
    return dict(state)


def _xgboost_booster(state: Any) -> Any:
    """``xgboost.core.Booster``: ``{"handle": bytearray}`` (UBJSON), re-encoded after validation."""
    from bundler.safety.modelformats.xgboost_model import check_serialized

    cls = "xgboost.core.Booster"
    state = _state_dict(cls, state)
    extra = set(state) - {"handle"}
    if extra:
        raise _refuse(cls, sorted(extra)[0], "unknown attribute in a booster's state")
    handle = state.get("handle")
    if handle is None:
        return state
    if type(handle) not in (bytes, bytearray):
        raise _refuse(cls, "handle", f"must be bytes, not {type(handle).__name__}")
    try:
        state["handle"] = check_serialized(handle)
    except FormatError as exc:
        raise _refuse(cls, "handle", str(exc)) from None
    return state


def _lightgbm_booster(state: Any) -> Any:
    """``lightgbm.basic.Booster``: its model text under ``_handle`` (older releases: ``handle``), re-emitted."""
    from bundler.safety.modelformats.lightgbm_model import check_model_text

    cls = "lightgbm.basic.Booster"
    state = _state_dict(cls, state)
    if "handle" in state and "_handle" in state:
        raise _refuse(cls, "handle", "both handle and _handle")
    key = "_handle" if "_handle" in state else "handle"
    text = state.get(key)
    if text is None:
        return state
    if type(text) is not str:
        raise _refuse(cls, key, f"must be the model text, not {type(text).__name__}")
    try:
        state[key] = check_model_text(text)
    except FormatError as exc:
        raise _refuse(cls, key, str(exc)) from None
    return state


def _catboost_model(cls: str) -> BuildGuard:
    """``catboost.core.CatBoost*``: init parameters plus ``__model`` (the binary model), validated in place."""

    def guard(state: Any) -> Any:
        from bundler.safety.modelformats.catboost_model import check_model, check_params

        state = _state_dict(cls, state)
        try:
            check_params(state, MAX_THREADS)
            if "__model" in state:
                if type(state["__model"]) is not bytes:
                    raise FormatError("__model", "must be bytes")
                check_model(state["__model"])
        except FormatError as exc:
            raise _refuse(cls, exc.path, exc.message) from None
        return state

    return guard


#: exact class name (module.qualname) -> guard of its BUILD state
BUILD_GUARDS: Final[dict[str, BuildGuard]] = {
    "xgboost.core.Booster": _xgboost_booster,
    "lightgbm.basic.Booster": _lightgbm_booster,
    **{f"catboost.core.{name}": _catboost_model(f"catboost.core.{name}")
       for name in ("CatBoost", "CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker")},
}


def guard_build(inst: Any, state: Any) -> Any:
    """The state to BUILD ``inst`` with: ``state`` itself, or what its class's guard returns (or refuses)."""
    t = type(inst)
    guard = BUILD_GUARDS.get(f"{t.__module__}.{t.__qualname__}")
    return state if guard is None else guard(state)
