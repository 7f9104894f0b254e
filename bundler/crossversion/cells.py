"""The result of one cross-version experiment: a cell (bundled under X, loaded under Y) and its status.

Statuses, from best to worst (the order of legends and of "worst of" summaries). The worst is the silent one: a model
that loads, runs every method and returns other values than it did at pack time fails no check a deployment would
notice; only the stored sample shows it.

``same-version-ok``       X == Y: accepted by the default policy, loads, predicts the same.
``loads-predicts-same``   accepted by the default policy, loads and predicts the same across different versions.
``refused-by-policy``     the default policy refuses the pair (as it should across scikit-learn versions); forced with
                          policy ``none`` it loads and predicts the same: the refusal was conservative.
``not-installable``       the bundle's pins cannot be installed together with Y (nothing was tested).
``fails-to-load``         deserializing failed under Y (a missing class, a changed layout): loud, at load time.
``method-raises``         it loads, but a method the sample recorded now raises or is gone: loud, at call time.
``outputs-differ``        it loads and every method runs, but outputs changed beyond the recorded tolerance: silent.

A cell where one method raises and another silently returns other values is ``outputs-differ``: the dangerous fact
comes first; its ``raises`` list still says what raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bundler.environment.versions import version_key
from bundler.errors import UsageError

__all__ = [
    "FAILS_TO_LOAD",
    "LOADS_PREDICTS_SAME",
    "METHOD_RAISES",
    "NOT_INSTALLABLE",
    "OUTPUTS_DIFFER",
    "REFUSED_BY_POLICY",
    "SAME_VERSION_OK",
    "STATUSES",
    "Cell",
    "cell_from_dict",
    "classify",
    "counts",
    "version_key",
    "worst",
]

SAME_VERSION_OK = "same-version-ok"
LOADS_PREDICTS_SAME = "loads-predicts-same"
REFUSED_BY_POLICY = "refused-by-policy"
NOT_INSTALLABLE = "not-installable"
FAILS_TO_LOAD = "fails-to-load"
METHOD_RAISES = "method-raises"
OUTPUTS_DIFFER = "outputs-differ"
#: Every status, from best to worst.
STATUSES = (SAME_VERSION_OK, LOADS_PREDICTS_SAME, REFUSED_BY_POLICY, NOT_INSTALLABLE, FAILS_TO_LOAD, METHOD_RAISES,
            OUTPUTS_DIFFER)
STATUS_TEXT = {
    SAME_VERSION_OK: "same version: ok",
    LOADS_PREDICTS_SAME: "accepted, loads, predicts the same",
    REFUSED_BY_POLICY: "refused by the default policy (forced: loads, predicts the same)",
    NOT_INSTALLABLE: "the bundle's pins cannot be installed with this version (not tested)",
    FAILS_TO_LOAD: "fails to load",
    METHOD_RAISES: "loads, but a method now raises",
    OUTPUTS_DIFFER: "loads and runs, but outputs differ SILENTLY",
}
STATUS_SHORT = {
    SAME_VERSION_OK: "ok",
    LOADS_PREDICTS_SAME: "same",
    REFUSED_BY_POLICY: "refused",
    NOT_INSTALLABLE: "no-env",
    FAILS_TO_LOAD: "FAIL",
    METHOD_RAISES: "RAISES",
    OUTPUTS_DIFFER: "SILENT",
}
STATUS_COLOUR = {
    SAME_VERSION_OK: "#1a9850",
    LOADS_PREDICTS_SAME: "#91cf60",
    REFUSED_BY_POLICY: "#74add1",
    NOT_INSTALLABLE: "#bdbdbd",
    FAILS_TO_LOAD: "#fdae61",
    METHOD_RAISES: "#f46d43",
    OUTPUTS_DIFFER: "#7b0d5a",
}
#: Statuses that make `bundler matrix` exit non-zero: what the model does there is not what it did at pack time.
DRIFT = (METHOD_RAISES, OUTPUTS_DIFFER)
BROKEN = (NOT_INSTALLABLE, FAILS_TO_LOAD)


@dataclass
class Cell:
    """One (bundled under X, loaded under Y) result; ``model`` names the bundle (a fixture name or a file stem).

    ``environment`` holds the exact versions the loading environment had of every package the bundle pins (and of
    the varied package, pandas and bundler), so a cell says precisely where it was observed. ``differs`` and
    ``raises`` are the behaviour check's lines of each kind.
    """

    model: str
    bundled: str
    loaded: str
    status: str
    package: str = "scikit-learn"
    policy: str = "accepted"  # "accepted" or "refused" under the default policy ("error" if verify failed otherwise)
    policy_problems: list[str] = field(default_factory=list)
    error: str | None = None
    differs: list[str] = field(default_factory=list)
    raises: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    adjustments: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify(*, same_version: bool, policy_accepted: bool, load_error: str | None, differs: Sequence[str],
             raises: Sequence[str]) -> str:
    """The cell status; what forcing the load does takes precedence over what the policy said (module doc)."""
    if load_error is not None:
        return FAILS_TO_LOAD
    if differs:
        return OUTPUTS_DIFFER
    if raises:
        return METHOD_RAISES
    if not policy_accepted:
        return REFUSED_BY_POLICY
    return SAME_VERSION_OK if same_version else LOADS_PREDICTS_SAME


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=STATUSES.index)


def counts(cells: Iterable[Cell]) -> dict[str, int]:
    """How many cells have each status (every status present, zeros included)."""
    out = dict.fromkeys(STATUSES, 0)
    for cell in cells:
        out[cell.status] += 1
    return out


_FIELDS = {f.name for f in fields(Cell)}


def cell_from_dict(data: Mapping[str, Any], *, source: str) -> Cell:
    """A cell from its JSON form (a report or a per-job cells file); ``UsageError`` naming ``source`` if malformed."""
    if not isinstance(data, Mapping):
        raise UsageError(f"{source}: a cell is not a JSON object")
    missing = [name for name in ("model", "bundled", "loaded", "status") if not isinstance(data.get(name), str)]
    if missing:
        raise UsageError(f"{source}: a cell lacks {', '.join(missing)}")
    if data["status"] not in STATUSES:
        raise UsageError(f"{source}: unknown status {data['status']!r} (not a cells file of this bundler version?)")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise UsageError(f"{source}: unknown cell fields {', '.join(unknown)}")
    try:
        return Cell(**dict(data))
    except TypeError as exc:
        raise UsageError(f"{source}: malformed cell: {exc}") from None
