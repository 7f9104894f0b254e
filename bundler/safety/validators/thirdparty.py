"""Validators for the Python side of XGBoost, LightGBM and CatBoost models (after their build guards ran).

The model bytes themselves were validated before the libraries' ``__setstate__`` parsed them
(``bundler.safety.build_guards``); what is left are the attributes the wrappers hand to native code when they
predict: thread counts, the booster they hold (which must be the library's own booster, rebuilt by its guarded
``__setstate__``, holding a live native handle), and class and feature counts used to shape outputs. Native handles
(ctypes pointers, CatBoost's Cython model object) are not walked: they are the libraries' own objects, made by the
guarded ``__setstate__``, and nothing of the payload reaches them except through the validated model bytes.
"""

from __future__ import annotations

from typing import Any

from bundler.safety.validators.common import int_attr, is_int
from bundler.safety.validators.misc import MAX_WORKERS
from bundler.safety.validators.registry import validates
from bundler.safety.validators.walker import Context, Node, qualname

__all__: list[str] = []

_THREAD_KEYS = ("n_jobs", "nthread", "num_threads", "num_thread", "thread_count", "n_threads")


def _threads(value: Any, node: Node, ctx: Context, attr: str) -> None:
    if value is not None and (not is_int(value) or abs(int(value)) > MAX_WORKERS):
        ctx.fail(node, f"must be None or an integer within +-{MAX_WORKERS}", attr)


def _walk_except(obj: Any, node: Node, ctx: Context, skip: str) -> None:
    for key, value in obj.__dict__.items():
        if key != skip:
            ctx.enqueue(node.child(value, f".{key}" if key.isidentifier() else f"[{key[:40]!r}]"))


def _handle(obj: Any, node: Node, ctx: Context, attr: str) -> None:
    import ctypes

    handle = obj.__dict__.get(attr)
    if handle is not None and (type(handle) is not ctypes.c_void_p or not handle.value):
        ctx.fail(node, "must be the native handle its guarded __setstate__ created", attr)


@validates("xgboost.core.Booster", holds_children=True)
def xgboost_booster(obj: Any, node: Node, ctx: Context) -> None:
    """Rebuilt by the guarded ``__setstate__``: a native handle and nothing else of the payload's."""
    _handle(obj, node, ctx, "handle")
    _walk_except(obj, node, ctx, "handle")


@validates("lightgbm.basic.Booster", holds_children=True)
def lightgbm_booster(obj: Any, node: Node, ctx: Context) -> None:
    """A native handle from the guarded ``__setstate__``; ``params`` (passed to C++ on predict) with bounded thread
    counts; class and iteration counts exact integers."""
    _handle(obj, node, ctx, "_handle")
    d = obj.__dict__
    params = d.get("params", {})
    if not isinstance(params, dict):
        ctx.fail(node, "must be a dict", "params")
    else:
        for key in _THREAD_KEYS:
            if key in params:
                _threads(params[key], node, ctx, f"params[{key!r}]")
    for attr in ("_Booster__num_class", "best_iteration"):
        if attr in d and not is_int(d[attr]):
            ctx.fail(node, "must be an integer", attr)
    _walk_except(obj, node, ctx, "_handle")


@validates("catboost.core.CatBoost", "catboost.core.CatBoostClassifier", "catboost.core.CatBoostRegressor",
           "catboost.core.CatBoostRanker", holds_children=True)
def catboost_model(obj: Any, node: Node, ctx: Context) -> None:
    """The Cython model object comes from ``__setstate__`` (after its guard); the init parameters, which CatBoost
    passes to C++ when it predicts, hold plain values and a bounded ``thread_count``."""
    d = obj.__dict__
    inner = d.get("_object")
    if inner is not None and qualname(inner) != "_catboost._CatBoost":
        ctx.fail(node, "must be CatBoost's own model object", "_object")
    params = d.get("_init_params", {})
    if not isinstance(params, dict):
        ctx.fail(node, "must be a dict", "_init_params")
    elif "thread_count" in params:
        _threads(params["thread_count"], node, ctx, "_init_params['thread_count']")
    _walk_except(obj, node, ctx, "_object")


@validates("xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor", "xgboost.sklearn.XGBRanker",
           "xgboost.sklearn.XGBRFClassifier", "xgboost.sklearn.XGBRFRegressor", "xgboost.sklearn.XGBModel")
def xgboost_wrapper(obj: Any, node: Node, ctx: Context) -> None:
    """``n_jobs`` becomes the booster's thread count; ``_Booster`` must be XGBoost's booster; counts exact."""
    d = obj.__dict__
    _threads(d.get("n_jobs"), node, ctx, "n_jobs")
    booster = d.get("_Booster")
    if booster is not None and qualname(booster) != "xgboost.core.Booster":
        ctx.fail(node, "must be an xgboost.core.Booster", "_Booster")
    int_attr(obj, "n_classes_", node, ctx, low=0, high=1 << 16)
    int_attr(obj, "n_features_in_", node, ctx)


@validates("lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor", "lightgbm.sklearn.LGBMRanker",
           "lightgbm.sklearn.LGBMModel")
def lightgbm_wrapper(obj: Any, node: Node, ctx: Context) -> None:
    """``n_jobs`` becomes LightGBM's thread count; ``_Booster`` must be LightGBM's booster; counts exact."""
    d = obj.__dict__
    _threads(d.get("n_jobs"), node, ctx, "n_jobs")
    booster = d.get("_Booster")
    if booster is not None and qualname(booster) != "lightgbm.basic.Booster":
        ctx.fail(node, "must be a lightgbm.basic.Booster", "_Booster")
    for attr in ("_n_features", "_n_features_in", "_n_classes"):
        int_attr(obj, attr, node, ctx, low=-1, high=1 << 31)
    other = d.get("_other_params", {})
    if isinstance(other, dict):
        for key in _THREAD_KEYS:
            if key in other:
                _threads(other[key], node, ctx, f"_other_params[{key!r}]")
