"""The ``bundler matrix`` verb: arguments, output, and the exit code that lets CI gate on the matrix.

Exit codes (the README's table): ``0`` every cell loads and predicts the same (or is refused by the default policy
although it would); ``6`` a cell's outputs differ silently or a method now raises; ``4`` otherwise, a cell fails to
load or its environment cannot be installed; and as every verb: ``2`` usage (a bad argument, a version the package
index does not have, an unreadable bundle or cells file), ``3`` the bundle fails integrity or signature checks or
its pins are not plain exact pins, ``5`` its payload is unsafe. Drift outranks a load failure here: a load failure is
seen by whoever deploys, a silent drift by no one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bundler.crossversion.cells import BROKEN, DRIFT, Cell, counts
from bundler.errors import UsageError
from bundler.findings import EXIT_OK, Kind

__all__ = ["add_parser", "exit_code", "run"]


def exit_code(cells: Sequence[Cell]) -> int:
    """6 when any cell drifts (silently or by raising), else 4 when any fails to load or install, else 0."""
    statuses = {c.status for c in cells}
    if statuses & set(DRIFT):
        return Kind.BEHAVIOUR.exit_code
    if statuses & set(BROKEN):
        return Kind.ENVIRONMENT.exit_code
    return EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Register the ``matrix`` verb on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "matrix", help="load a bundle under several versions of scikit-learn (or another package) and report",
        description="Verify the bundle, then build one throw-away environment per version from its own pins with "
                    "only that package changed (binary wheels only), verify under the default policy, load with "
                    "policy none, re-run the stored sample. --fixtures runs all pairs over the reference fixtures; "
                    "--merge joins cells files written by separate jobs.")
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", nargs="?", help="the .mlbundle to test (omit with --fixtures or --merge)")
    parser.add_argument("--versions", nargs="+", metavar="X.Y", help="versions to load under (X.Y: newest X.Y.z)")
    parser.add_argument("--package", default="scikit-learn", metavar="NAME",
                        help="the package whose version varies (default scikit-learn, also for bundles that do not "
                             "pin it)")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--public-key", metavar="PEM", help="require a valid Ed25519 signature from this public key")
    keys.add_argument("--hmac-key-file", metavar="F", help="require a valid HMAC-SHA256 signature with this secret")
    parser.add_argument("--python", help="interpreter for the environments (default: this one)")
    parser.add_argument("--json", dest="json_out", metavar="OUT", nargs="?", const="-",
                        help="the cells as JSON (the format --merge reads): to OUT, or alone on stdout")
    parser.add_argument("--markdown", dest="markdown_out", metavar="OUT", help="write a Markdown report to OUT")
    parser.add_argument("--reports", metavar="DIR", help="write matrix.md, matrix.json, matrix.png into DIR")
    parser.add_argument("--workdir", metavar="DIR", help="where to create the environments (kept; reused next run)")
    parser.add_argument("--keep-envs", action="store_true", help="keep the throw-away environments")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--fixtures", metavar="DIR", help="all pairs over DIR/sklearn-X.Y/*.mlbundle")
    mode.add_argument("--merge", nargs="+", metavar="DIR", help="merge the JSON cells files below these folders")


def _key_option(args: argparse.Namespace) -> Any:
    from bundler.crossversion.runner import KeyOption
    from bundler.integrity.signing import Ed25519PublicKey, HmacKey

    if args.public_key:
        return KeyOption("--public-key", args.public_key, Ed25519PublicKey.from_file(args.public_key))
    if args.hmac_key_file:
        return KeyOption("--hmac-key-file", args.hmac_key_file, HmacKey.from_file(args.hmac_key_file))
    return None


def _cells(args: argparse.Namespace) -> tuple[list[Cell], str, dict[str, Any]]:
    from bundler.crossversion import runner
    from bundler.crossversion.environments import Installer

    if args.merge:
        if args.bundle or args.versions:
            raise UsageError("--merge takes folders of cells files, not a bundle or --versions")
        from bundler.crossversion.merge import merge_cells

        cells, meta = merge_cells(args.merge)
        return cells, "Cross-version matrix of the reference fixtures", meta
    installer = Installer(python=args.python)
    if args.fixtures:
        if args.bundle:
            raise UsageError("--fixtures runs the committed fixtures; give no BUNDLE with it")
        fixtures = Path(args.fixtures)
        envdir = Path(args.workdir) if args.workdir else fixtures.parent / ".nox" / "matrix-envs"
        cells = runner.fixture_matrix(fixtures, envdir=envdir, versions=args.versions, installer=installer)
        return cells, "Cross-version matrix of the reference fixtures", {}
    if not args.bundle or not args.versions:
        raise UsageError("give a BUNDLE and --versions X.Y ... (or --fixtures DIR, or --merge DIR...)")
    from bundler.environment.capture import normalize

    cells = runner.user_matrix(args.bundle, args.versions, package=normalize(args.package), key=_key_option(args),
                               installer=installer, workdir=Path(args.workdir) if args.workdir else None,
                               keep=args.keep_envs)
    return cells, f"Cross-version matrix of {Path(args.bundle).name}", {}


def run(args: argparse.Namespace) -> int:
    """Handler of ``bundler matrix``: one line per cell on stderr, the requested reports, the gating exit code."""
    from bundler._version import __version__
    from bundler.crossversion.reports import to_json, to_markdown, write_json, write_reports

    started = time.monotonic()
    cells, title, meta = _cells(args)
    meta = {"bundler": __version__, "python": ".".join(map(str, sys.version_info[:3])), "cells": len(cells),
            **meta}
    if not args.merge:
        meta["duration_seconds"] = round(time.monotonic() - started, 1)
    for cell in cells:
        detail = cell.error or "; ".join((cell.differs + cell.raises)[:1])
        print(f"{cell.model}: {cell.bundled} -> {cell.loaded}: {cell.status}" + (f" ({detail})" if detail else ""),
              file=sys.stderr)
    tally = {status: n for status, n in counts(cells).items() if n}
    print("matrix: " + ", ".join(f"{n} {status}" for status, n in tally.items()), file=sys.stderr)
    if args.reports:
        for path in write_reports(cells, args.reports, title=title, meta=meta):
            print(f"wrote {path}", file=sys.stderr)
    if args.json_out == "-":
        import json

        sys.stdout.write(json.dumps(to_json(cells, meta=meta), indent=1, sort_keys=True) + "\n")
    elif args.json_out:
        write_json(cells, Path(args.json_out), meta=meta)
    if args.markdown_out:
        Path(args.markdown_out).write_text(to_markdown(cells, title=title, meta=meta), encoding="utf-8")
    return exit_code(cells)
