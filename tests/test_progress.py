"""Progress lines: only when enabled (the CLI enables them on a terminal), only after the delay, one final line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bundler
from bundler.pipelines import progress


def test_progress_when_enabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.0)
    progress.enable(stream)
    try:
        path = tmp_path / "m.mlbundle"
        bundler.pack({"w": np.zeros(3_000_000)}, path)
        assert bundler.verify(path).ok
    finally:
        progress.enable(None)
    text = stream.getvalue()
    assert "bundler: writing model/model.joblib:" in text
    assert "bundler: verifying model/model.joblib:" in text and "100%" in text
    assert text.count("done (") == 2 and text.endswith("\n")


def test_no_progress_when_disabled_or_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str], model: Any) -> None:
    path = tmp_path / "m.mlbundle"
    bundler.pack(model, path)
    bundler.verify(path)
    assert capsys.readouterr().err == ""
    stream = io.StringIO()
    progress.enable(stream)
    try:
        bundler.verify(path)  # far below the one-second delay
    finally:
        progress.enable(None)
    assert stream.getvalue() == ""
