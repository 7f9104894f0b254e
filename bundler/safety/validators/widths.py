"""Per-feature arrays of the feature-wise transformers: each must hold exactly one value per input feature.

A fitted scaler keeps one statistic per input column (``scale_``, ``mean_``, ``max_abs_``, ``center_``, ...).
On dense input a wrong width is caught by numpy's broadcasting, but on sparse input scikit-learn scales in place
with ``scale.take(X.indices, mode="clip")`` behind an ``assert`` of the widths: under ``python -O`` the assert is
gone, a crafted ``scale_`` of the wrong length is silently clipped onto the wrong columns, and the model returns
wrong numbers with no error. A wider ``quantiles_`` is ignored in the same way. So the widths are checked here,
where the state is loaded, whatever flags the deploy process runs with: every present per-feature array must be a
1-D float array whose length is ``n_features_in_`` (or, for models pickled before scikit-learn recorded
``n_features_in_``, the one width they all share). An attribute that the estimator's settings leave unset (``mean_``
of a ``StandardScaler(with_mean=False)``) may be ``None``, and only then.
"""

from __future__ import annotations

from typing import Any

from bundler.safety.validators.common import array_ok, is_int
from bundler.safety.validators.registry import validates
from bundler.safety.validators.walker import Context, Node, qualname

__all__ = ["PER_FEATURE", "feature_widths", "quantile_widths"]

#: For each transformer: its per-feature attributes, each with the hyperparameter that, when False, leaves it None.
PER_FEATURE: dict[str, dict[str, str | None]] = {
    "sklearn.preprocessing._data.StandardScaler": {"mean_": "with_mean", "var_": "with_std", "scale_": "with_std"},
    "sklearn.preprocessing._data.MaxAbsScaler": {"max_abs_": None, "scale_": None},
    "sklearn.preprocessing._data.MinMaxScaler": {"min_": None, "scale_": None, "data_min_": None,
                                                 "data_max_": None, "data_range_": None},
    "sklearn.preprocessing._data.RobustScaler": {"center_": "with_centering", "scale_": "with_scaling"},
    "sklearn.preprocessing._data.PowerTransformer": {"lambdas_": None},
}

_QUANTILE = "sklearn.preprocessing._data.QuantileTransformer"


def _unset_allowed(obj: Any, switch: str | None) -> bool:
    """``None`` is legitimate only where the estimator's own setting says the statistic is not computed."""
    return switch is not None and getattr(obj, "__dict__", {}).get(switch) is False


def _width(ctx: Context, node: Node, attr: str, value: Any, ndim: int) -> int | None:
    """The feature width of one array attribute (its last axis), or None when it is not a float array of ``ndim``."""
    return int(value.shape[-1]) if array_ok(ctx, node, attr, value, ndim=ndim, kinds="f") else None


def _agree(ctx: Context, node: Node, obj: Any, widths: dict[str, int]) -> None:
    """Every width equals ``n_features_in_``; without it (an old pickle), the width of the first array."""
    d = obj.__dict__
    if "n_features_in_" in d:
        if not is_int(d["n_features_in_"]):
            return  # n_features_in_ itself is crafted: the check every scikit-learn object gets reports it
        expected, source = int(d["n_features_in_"]), "n_features_in_"
    elif widths:
        first = next(iter(widths))
        expected, source = widths[first], first
    else:
        return
    for attr, width in widths.items():
        if width != expected:
            ctx.fail(node, f"holds {width} values but {source} says {expected} features", attr)


@validates(*PER_FEATURE)
def feature_widths(obj: Any, node: Node, ctx: Context) -> None:
    """One value per input feature in every per-feature statistic of a scaler or power transformer."""
    d = obj.__dict__
    widths: dict[str, int] = {}
    for attr, switch in PER_FEATURE[qualname(obj)].items():
        if attr not in d:
            continue
        value = d[attr]
        if value is None:
            if not _unset_allowed(obj, switch):
                ctx.fail(node, "is None although the estimator's settings compute it", attr)
            continue
        width = _width(ctx, node, attr, value, 1)
        if width is not None:
            widths[attr] = width
    _agree(ctx, node, obj, widths)


@validates(_QUANTILE)
def quantile_widths(obj: Any, node: Node, ctx: Context) -> None:
    """``quantiles_`` is ``(n_quantiles_, n_features)`` and ``references_`` one level per quantile row."""
    d = obj.__dict__
    if "quantiles_" not in d:
        return
    width = _width(ctx, node, "quantiles_", d["quantiles_"], 2)
    if width is None:
        return
    _agree(ctx, node, obj, {"quantiles_": width})
    rows = int(d["quantiles_"].shape[0])
    if "references_" in d:
        refs = d["references_"]
        if _width(ctx, node, "references_", refs, 1) is not None and int(refs.shape[0]) != rows:
            ctx.fail(node, f"holds {int(refs.shape[0])} levels for {rows} quantile rows", "references_")
    n_q = d.get("n_quantiles_")
    if n_q is not None and (not is_int(n_q) or int(n_q) != rows):
        ctx.fail(node, f"does not match the {rows} rows of quantiles_", "n_quantiles_")
