"""Merging per-job cells into one matrix: ``bundler matrix --merge DIR...``.

When one machine is too slow, each loading version becomes a CI job (``nox -s "matrix_cells(sklearn='X.Y')"``,
``.github/workflows/matrix.yml``) that writes its cells as the matrix's own JSON document; the merge reads every such
file below the given folders (or the files given), refuses what it cannot trust to be one experiment (a file of
another format, two results for the same cell, cells of different varied packages), and returns one list of cells
for the reports. Every problem is reported at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bundler.crossversion.cells import Cell, cell_from_dict
from bundler.crossversion.reports import FORMAT
from bundler.errors import UsageError

__all__ = ["merge_cells"]


def _files(sources: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    missing = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.json") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            missing.append(f"{source}: no such file or folder")
    if missing:
        raise UsageError(missing[0], problems=missing)
    return files


def _read(path: Path) -> tuple[list[Cell], dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable JSON cells file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("cells"), list):
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise UsageError(f"{path}: not a cells file of format {FORMAT} (found {found!r})")
    meta: dict[str, Any] = doc["meta"] if isinstance(doc.get("meta"), dict) else {}
    return [cell_from_dict(c, source=str(path)) for c in doc["cells"]], meta


def merge_cells(sources: Sequence[str]) -> tuple[list[Cell], dict[str, Any]]:
    """All cells of the JSON files below ``sources``, and merged meta (files, summed job seconds)."""
    files = _files(sources)
    if not files:
        raise UsageError(f"no .json cells files under {', '.join(sources)}")
    problems: list[str] = []
    cells: list[Cell] = []
    seen: dict[tuple[str, str, str], Path] = {}
    seconds = 0.0
    for path in files:
        try:
            found, meta = _read(path)
        except UsageError as exc:
            problems += exc.problems
            continue
        seconds += float(meta.get("duration_seconds") or 0.0)
        for cell in found:
            key = (cell.model, cell.bundled, cell.loaded)
            if key in seen:
                problems.append(f"{path}: cell {cell.model} {cell.bundled} -> {cell.loaded} is also in {seen[key]}")
                continue
            seen[key] = path
            cells.append(cell)
    packages = sorted({c.package for c in cells})
    if len(packages) > 1:
        problems.append(f"the cells vary different packages ({', '.join(packages)}): not one matrix")
    if problems:
        raise UsageError(problems[0], problems=problems)
    return cells, {"merged_files": len(files), "job_seconds": round(seconds, 1)}
