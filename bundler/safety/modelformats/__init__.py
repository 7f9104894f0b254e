"""Python readers of the model formats third-party boosters hand to their native parsers.

XGBoost's ``Booster.__setstate__`` passes raw UBJSON to C++, LightGBM's passes a model text to C++, CatBoost's passes
a binary (FlatBuffers) model to C++. None of those parsers is written for hostile input: a tree node pointing out of
range or a split on a feature the input does not have makes prediction read out of bounds. So before the library's
own ``__setstate__`` runs, the restricted unpickler hands the state to a *build guard*
(``bundler.safety.build_guards``), which parses the bytes here, in Python, checks every index native code will
follow, and (XGBoost, LightGBM) replaces the bytes by a canonical re-encoding of exactly what was checked, so the
native parser never sees a byte that was not validated.

Each module knows one format; all raise ``FormatError`` with the path inside the document
(``Model.learner.gradient_booster.model.trees[3].left_children[7]``). Nothing here imports the frameworks.
"""

from __future__ import annotations

__all__ = ["FormatError"]


class FormatError(ValueError):
    """The model bytes are not what the library writes, or hold indices native code would follow out of range."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
