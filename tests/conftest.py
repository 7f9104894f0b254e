"""Shared fixtures: real scikit-learn models, real bundles on disk, keys generated per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import bundler
from bundler.integrity.signing import Ed25519PublicKey, Ed25519Signer, HmacKey, generate_keypair

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    return X, y


@pytest.fixture(scope="session")
def model(data: tuple[np.ndarray, np.ndarray]) -> Pipeline:
    X, y = data
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def packed(model: Pipeline, data: tuple[np.ndarray, np.ndarray], bundle_dir: Path) -> Path:
    """A checksummed joblib bundle with a sample. Treat as read-only: copy before altering."""
    path = bundle_dir / "model.mlbundle"
    bundler.pack(model, path, sample=data[0][:10], metadata={"accuracy": 0.9})
    return path


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys") / "test")


@pytest.fixture(scope="session")
def ed_signer(keypair: tuple[Path, Path]) -> Ed25519Signer:
    return Ed25519Signer.from_file(keypair[0])


@pytest.fixture(scope="session")
def ed_public(keypair: tuple[Path, Path]) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_file(keypair[1])


@pytest.fixture(scope="session")
def hmac_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hmac") / "secret.key"
    path.write_bytes(os.urandom(32).hex().encode() + b"\n")
    return path


@pytest.fixture(scope="session")
def hmac_key(hmac_file: Path) -> HmacKey:
    return HmacKey.from_file(hmac_file)


def run_cli(*args: Any, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    """Run ``python -m bundler`` in a real subprocess."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "bundler", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=300)
