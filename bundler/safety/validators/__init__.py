"""State validation of a deserialized model before it is returned: every native-backed object is checked.

``validate_model`` walks the whole object graph (``walker``) and runs the validator registered for each object's
exact class (``registry``; the family modules ``trees``, ``neighbors``, ``sparse``, ``sizes``, ``widths``, ``linear``,
``more``, ``thirdparty`` and ``misc`` register them). It returns every problem found, each with the attribute path
from the model's root, so that a refusal names where the crafted state is
(``model.estimators_[3].tree_: split feature indices outside [0, 4)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bundler.safety.validators.walker import Context, ValidationProblem, walk

__all__ = ["ValidationProblem", "validate_model"]


def validate_model(model: Any, *, handed: Mapping[int, str] | None, allow: Any,
                   max_objects: int = 10_000_000) -> list[ValidationProblem]:
    """Every problem in ``model``'s state. ``handed`` maps the id of each global the unpickler handed out to its
    name (classes and functions the model holds are judged against ``allow``'s value rules and placements); with
    ``None`` (an object built in this process, not loaded) the classes and functions it holds are not judged."""
    import numpy as np

    from bundler.safety.validators import linear, misc, more, neighbors, sizes, sparse, thirdparty, trees, widths
    from bundler.safety.validators.registry import BATCH_VALIDATORS, VALIDATORS

    del linear, more, neighbors, sizes, sparse, thirdparty, trees, widths  # imported for their registrations
    ctx = Context(np=np, handed=handed or {}, may_hold=allow.may_hold, placements=allow.placements,
                  validators=VALIDATORS, max_objects=max_objects, generic=misc.generic_sklearn,
                  batch_validators=BATCH_VALIDATORS)
    return walk(model, ctx)
