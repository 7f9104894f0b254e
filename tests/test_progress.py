"""Progress bars (tqdm): only when enabled (the CLI enables them on a terminal), only after the delay, with percent,
rate and time left, on pack, verify and load; tqdm is not even imported when no bar is shown."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

import bundler
from bundler.pipelines import progress


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> Any:
    stream = io.StringIO()
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.0)
    progress.enable(stream)
    yield stream
    progress.enable(None)


def _final_lines(text: str) -> dict[str, str]:
    """The last state of every bar, by label (tqdm redraws a bar in place with carriage returns)."""
    last: dict[str, str] = {}
    for chunk in text.replace("\n", "\r").split("\r"):
        if chunk.startswith("bundler: "):
            last[chunk.split(":")[1].strip()] = chunk
    return last


def test_pack_verify_load_show_percent_rate_and_time_left(tmp_path: Path, bars: io.StringIO) -> None:
    model = {"w": np.zeros(3_000_000)}
    path = tmp_path / "m.mlbundle"
    bundler.pack(model, path)
    assert bundler.verify(path).ok
    bundler.load(path)
    last = _final_lines(bars.getvalue())
    # pack serializes (an estimate from the model's arrays) and writes; verify streams; load reads once
    assert set(last) == {"serializing", "writing model/model.joblib", "verifying model/model.joblib",
                         "reading model/model.joblib"}, last
    for line in last.values():
        assert "100%" in line, line  # an estimated total ends at 100 % of what was done
        # elapsed<time left, rate (tqdm says "?" for what it cannot tell yet on a step this fast)
        assert re.search(r"\[\d\d:\d\d<(\d\d:\d\d|\?), +([\d.]+[kMG]?|\?)B/s\]", line), line
    for label in ("verifying model/model.joblib", "reading model/model.joblib"):  # the whole payload, in MiB
        assert "22.9M/22.9M" in last[label], last[label]
    assert bars.getvalue().endswith("\n")


def test_pack_file_shows_reading_and_writing(tmp_path: Path, bars: io.StringIO) -> None:
    src = tmp_path / "m.joblib"
    joblib.dump({"w": np.zeros(2_000_000)}, src)
    bundler.pack_file(src, tmp_path / "m.mlbundle")
    last = _final_lines(bars.getvalue())
    assert set(last) == {"reading m.joblib", "writing model/model.joblib"}, last
    assert all("100%" in line for line in last.values()), last


def test_nothing_when_disabled_or_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str], model: Any) -> None:
    path = tmp_path / "m.mlbundle"
    bundler.pack(model, path)
    bundler.verify(path)
    assert capsys.readouterr().err == ""
    stream = io.StringIO()
    progress.enable(stream)
    try:
        bundler.verify(path)  # far below the one-second delay
        bundler.load(path)
    finally:
        progress.enable(None)
    assert stream.getvalue() == ""


def test_tqdm_is_imported_only_for_a_bar(packed: Path) -> None:
    code = ("import sys, io; from bundler.pipelines import progress; progress.enable(io.StringIO()); "
            "import bundler; bundler.verify(sys.argv[1]); print('tqdm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(packed)], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
