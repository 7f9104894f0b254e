"""A user-defined model class: not in the default allowlist, so loaders must trust it explicitly."""

from __future__ import annotations


class CustomModel:
    def __init__(self) -> None:
        self.coef = [0.0, 1.0]

    def predict(self, X: list[int]) -> list[int]:
        return [0 for _ in X]
