"""A user-defined model class: not in the default allowlist, so loaders must trust it explicitly."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler


class CustomModel:
    def __init__(self) -> None:
        self.coef = [0.0, 1.0]

    def predict(self, X: list[int]) -> list[int]:
        return [0 for _ in X]


class ClippedScaler(StandardScaler):  # type: ignore[misc]  # scikit-learn ships no type stubs
    """A user's subclass of a scikit-learn estimator: its payload names only this class, never scikit-learn."""

    def transform(self, X: Any, copy: bool | None = None) -> Any:
        return np.clip(super().transform(X, copy=copy), -3.0, 3.0)
