"""The matrix as reports: JSON (the data, also the per-job cells format that ``--merge`` reads), Markdown, PNG.

The silent kind comes first everywhere: outputs that changed although every method runs is what no deployment
notices, so the Markdown report lists those cells before anything else, the summary table names them first in every
pair with their count, and the plot opens with a panel counting them per pair.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bundler.crossversion.cells import (
    BROKEN,
    DRIFT,
    FAILS_TO_LOAD,
    METHOD_RAISES,
    NOT_INSTALLABLE,
    OUTPUTS_DIFFER,
    STATUS_COLOUR,
    STATUS_SHORT,
    STATUS_TEXT,
    STATUSES,
    Cell,
    counts,
    version_key,
    worst,
)

__all__ = ["FORMAT", "to_json", "to_markdown", "write_json", "write_png", "write_reports"]

#: Version of the JSON layout (2: statuses ``outputs-differ`` / ``method-raises`` replaced ``predictions-differ``).
FORMAT = 2
#: Worst first: the order in which a summary cell names the bad outcomes of a pair.
BAD_WORST_FIRST = tuple(reversed(DRIFT + BROKEN))


def _order(values: Iterable[str]) -> list[str]:
    return sorted(set(values), key=version_key)


def to_json(cells: Sequence[Cell], *, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"format": FORMAT, "meta": dict(meta or {}), "statuses": {s: STATUS_TEXT[s] for s in STATUSES},
            "counts": counts(cells), "cells": [c.to_dict() for c in cells]}


def write_json(cells: Sequence[Cell], path: Path, *, meta: Mapping[str, Any] | None = None) -> None:
    """Write the JSON document atomically (a half-written cells file must never be merged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(to_json(cells, meta=meta), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)


def summary_cell(group: Sequence[Cell]) -> str:
    """One pair over all models: every bad outcome with its count, the silent one first and bold; else the worst
    good outcome. E.g. ``**SILENT 2** · FAIL 1 of 9`` or ``refused 9/9``."""
    if not group:
        return ""
    tally = counts(group)
    bad = [f"{STATUS_SHORT[s]} {tally[s]}" for s in BAD_WORST_FIRST if tally[s]]
    if bad:
        if tally[OUTPUTS_DIFFER]:
            bad[0] = f"**{bad[0]}**"
        return f"{' · '.join(bad)} of {len(group)}"
    status = worst(c.status for c in group)
    return f"{STATUS_SHORT[status]} {tally[status]}/{len(group)}"


def _table(rows: Sequence[str], cols: Sequence[str], render: Callable[[str, str], str]) -> list[str]:
    out = ["| bundled \\ loaded | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for x in rows:
        out.append(f"| **{x}** | " + " | ".join(render(x, y) for y in cols) + " |")
    return out


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _detail(cell: Cell) -> str:
    if cell.status in (FAILS_TO_LOAD, NOT_INSTALLABLE):
        return cell.error or ""
    if cell.status == OUTPUTS_DIFFER:
        lines = cell.differs[:3] + [f"(also raises: {line})" for line in cell.raises[:1]]
        return "; ".join(lines)
    return "; ".join(cell.raises[:3])


def _listing(cells: Sequence[Cell], statuses: Sequence[str]) -> list[str]:
    chosen = [c for c in cells if c.status in statuses]
    return [f"- **{c.model}** {c.bundled} → {c.loaded}: {STATUS_TEXT[c.status]}: {_clip(_detail(c), 300)}"
            for c in sorted(chosen, key=lambda c: (c.model, version_key(c.bundled), version_key(c.loaded)))]


def to_markdown(cells: Sequence[Cell], *, title: str = "Cross-version matrix",
                meta: Mapping[str, Any] | None = None) -> str:
    """The silent drifts first, then the summary over models, one table per model, the loud failures, and every
    change made to an environment besides the varied package."""
    package = next((c.package for c in cells), "scikit-learn")
    bundled = _order(c.bundled for c in cells)
    loaded = _order(c.loaded for c in cells)
    models = sorted({c.model for c in cells})
    index = {(c.model, c.bundled, c.loaded): c for c in cells}
    tally = counts(cells)
    lines = [f"# {title}", ""]
    lines += [f"- {key}: {value}" for key, value in (meta or {}).items()]
    if meta:
        lines.append("")
    lines += [f"Rows: {package} version the bundle was made with. Columns: version it is loaded under. Each "
              "environment is verified under the **default** policy, then the bundle is loaded with policy `none` "
              "and the behaviour check re-run on the stored sample.", "",
              "| status | meaning | cells |", "| --- | --- | --- |"]
    for status in reversed(STATUSES):
        row = f"| `{STATUS_SHORT[status]}` | {STATUS_TEXT[status]} | {tally[status]} |"
        lines.append(f"| **`{STATUS_SHORT[status]}`** | **{STATUS_TEXT[status]}** | **{tally[status]}** |"
                     if status == OUTPUTS_DIFFER else row)
    lines.append("")
    lines += [f"## Silent drift: outputs differ, every method runs ({tally[OUTPUTS_DIFFER]} cells)", ""]
    lines += _listing(cells, [OUTPUTS_DIFFER]) or ["None."]
    lines.append("")
    if len(models) > 1:
        lines += [f"## Summary over the {len(models)} models (bad outcomes worst first with how many models had "
                  "each; else the worst good outcome, `n/m`)", ""]
        lines += _table(bundled, loaded, lambda x, y: summary_cell([index[(m, x, y)] for m in models
                                                                     if (m, x, y) in index]))
        lines.append("")
    for model in models:
        if len(models) > 1:
            lines += [f"## {model}", ""]

        def render(x: str, y: str, model: str = model) -> str:
            cell = index.get((model, x, y))
            if cell is None:
                return ""
            return f"**{STATUS_SHORT[cell.status]}**" if cell.status == OUTPUTS_DIFFER else STATUS_SHORT[cell.status]

        lines += _table(bundled, loaded, render)
        lines.append("")
    loud = _listing(cells, [METHOD_RAISES, FAILS_TO_LOAD, NOT_INSTALLABLE])
    if loud:
        lines += ["## Loud failures: a method raises, the model fails to load, or no environment", ""]
        lines += loud
        lines.append("")
    adjusted = sorted({(c.loaded, a) for c in cells for a in c.adjustments}, key=lambda p: (version_key(p[0]), p[1]))
    if adjusted:
        lines += [f"## Environment changes besides {package}", ""]
        lines += [f"- {loaded_v}: {text}" for loaded_v, text in adjusted]
        lines.append("")
    return "\n".join(lines)


def write_png(cells: Sequence[Cell], path: Path, *, title: str = "Cross-version matrix") -> bool:
    """A panel counting the silent drifts per pair, then a status heat map per model (rows bundled, columns loaded).
    Returns False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch
    except ImportError:
        return False
    bundled = _order(c.bundled for c in cells)
    loaded = _order(c.loaded for c in cells)
    models = sorted({c.model for c in cells})
    index = {(c.model, c.bundled, c.loaded): c for c in cells}
    cmap = ListedColormap(["#ffffff"] + [STATUS_COLOUR[s] for s in STATUSES])
    panels = len(models) + 1
    ncols = min(4, panels)
    nrows = (panels + ncols - 1) // ncols
    size = 0.45 * max(len(loaded), 2) + 1.4
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(size * ncols, 7.5), size * nrows + 1.8), squeeze=False,
                             layout="constrained")
    flat = list(axes.flat)

    def frame(ax: Any, name: str) -> None:
        ax.set_xticks(range(len(loaded)), loaded, rotation=45, fontsize=7)
        ax.set_yticks(range(len(bundled)), bundled, fontsize=7)
        ax.set_xlabel("loaded under", fontsize=7)
        ax.set_ylabel("bundled under", fontsize=7)
        ax.set_title(name, fontsize=9)

    silent = [[sum(1 for m in models if (c := index.get((m, x, y))) is not None and c.status == OUTPUTS_DIFFER)
               for y in loaded] for x in bundled]
    ax = flat[0]
    ax.imshow(silent, cmap="Purples", vmin=0, vmax=max(1, len(models)), aspect="equal")
    frame(ax, "outputs differ SILENTLY\n(models per pair)")
    for i in range(len(bundled)):
        for j in range(len(loaded)):
            if silent[i][j]:
                ax.text(j, i, str(silent[i][j]), ha="center", va="center", fontsize=7, fontweight="bold",
                        color="white" if silent[i][j] > len(models) / 2 else "black")
    for ax, model in zip(flat[1:], models, strict=False):
        grid = [[STATUSES.index(index[(model, x, y)].status) + 1 if (model, x, y) in index else 0 for y in loaded]
                for x in bundled]
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=len(STATUSES), aspect="equal")
        frame(ax, model)
        for i, x in enumerate(bundled):
            for j, y in enumerate(loaded):
                cell = index.get((model, x, y))
                if cell is not None and cell.status in DRIFT + BROKEN:
                    ax.text(j, i, STATUS_SHORT[cell.status][0], ha="center", va="center", fontsize=6,
                            color="white" if cell.status == OUTPUTS_DIFFER else "black",
                            fontweight="bold" if cell.status == OUTPUTS_DIFFER else "normal")
    for ax in flat[panels:]:
        ax.axis("off")
    tally = counts(cells)
    fig.legend(handles=[Patch(color=STATUS_COLOUR[s], label=f"{STATUS_TEXT[s]} ({tally[s]})")
                        for s in reversed(STATUSES)], loc="outside lower center", ncol=2, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_reports(cells: Sequence[Cell], outdir: str | Path, *, title: str = "Cross-version matrix",
                  meta: Mapping[str, Any] | None = None, stem: str = "matrix") -> list[Path]:
    """Write ``matrix.md``, ``matrix.json`` and (with matplotlib) ``matrix.png`` under ``outdir``; return the paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    md_path = out / f"{stem}.md"
    md_path.write_text(to_markdown(cells, title=title, meta=meta), encoding="utf-8")
    json_path = out / f"{stem}.json"
    write_json(cells, json_path, meta=meta)
    written = [md_path, json_path]
    png_path = out / f"{stem}.png"
    if write_png(cells, png_path, title=title):
        written.append(png_path)
    else:
        print("note: matplotlib is not installed (extra `plot`); matrix.png not written", file=sys.stderr)
    return written
