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
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bundler.crossversion.cells import BROKEN, DRIFT, Cell, counts
from bundler.display import printable
from bundler.errors import UsageError
from bundler.findings import EXIT_OK, Kind

if TYPE_CHECKING:
    from bundler.crossversion.runner import CheckedBundle, KeyOption
    from bundler.integrity.signing import Signer

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
    keys.add_argument("--hmac-key-file", metavar="F", help="require a valid HMAC-SHA256 signature with this secret "
                                                           "(with --record: and re-sign with it)")
    keys.add_argument("--sign-key", metavar="PEM", help="with --record: require a valid Ed25519 signature from this "
                                                        "private key's public half, and re-sign with it")
    parser.add_argument("--record", action="store_true",
                        help="write the result into the bundle as compat/tested.json (merged with its record), "
                             "re-signed with --sign-key/--hmac-key-file; a checksummed bundle stays checksummed")
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


def _key_option(args: argparse.Namespace, stack: contextlib.ExitStack) -> KeyOption | None:
    """The key the bundle must verify with. ``--sign-key`` implies its public half, written to a temporary file
    for the workers (which verify in their own processes)."""
    import tempfile

    from bundler.crossversion.runner import KeyOption
    from bundler.integrity.signing import Ed25519PublicKey, Ed25519Signer, HmacKey

    if args.public_key:
        return KeyOption("--public-key", args.public_key, Ed25519PublicKey.from_file(args.public_key))
    if args.hmac_key_file:
        return KeyOption("--hmac-key-file", args.hmac_key_file, HmacKey.from_file(args.hmac_key_file))
    if args.sign_key:
        public = Ed25519Signer.from_file(args.sign_key).public_key
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bundler-record-key-")))
        (folder / "signer.pub.pem").write_bytes(public.pem())
        return KeyOption("--public-key", str(folder / "signer.pub.pem"), public)
    return None


def _signer(args: argparse.Namespace) -> Signer | None:
    """The key ``--record`` re-signs with (None: the bundle stays checksummed)."""
    from bundler.integrity.signing import Ed25519Signer, HmacKey

    if args.sign_key:
        return Ed25519Signer.from_file(args.sign_key)
    if args.hmac_key_file:
        return HmacKey.from_file(args.hmac_key_file)
    return None


def _check_record_options(args: argparse.Namespace) -> None:
    if args.sign_key and not args.record:
        raise UsageError("--sign-key re-signs the bundle with its record: give it with --record "
                         "(to require a signature only, give --public-key)")
    if not args.record:
        return
    if args.fixtures or args.merge:
        raise UsageError("--record writes one bundle's result into it: give a BUNDLE and --versions, not "
                         "--fixtures or --merge")
    if args.public_key:
        raise UsageError("--record rewrites and re-signs the bundle: give the private key (--sign-key PEM), "
                         "not --public-key")


def _cells(args: argparse.Namespace, stack: contextlib.ExitStack
           ) -> tuple[list[Cell], str, dict[str, Any], CheckedBundle | None]:
    from bundler.crossversion import runner
    from bundler.crossversion.environments import Installer

    if args.merge:
        if args.bundle or args.versions:
            raise UsageError("--merge takes folders of cells files, not a bundle or --versions")
        from bundler.crossversion.merge import merge_cells

        cells, meta = merge_cells(args.merge)
        return cells, "Cross-version matrix of the reference fixtures", meta, None
    installer = Installer(python=args.python)
    if args.fixtures:
        if args.bundle:
            raise UsageError("--fixtures runs the committed fixtures; give no BUNDLE with it")
        fixtures = Path(args.fixtures)
        envdir = Path(args.workdir) if args.workdir else fixtures.parent / ".nox" / "matrix-envs"
        cells = runner.fixture_matrix(fixtures, envdir=envdir, versions=args.versions, installer=installer)
        return cells, "Cross-version matrix of the reference fixtures", {}, None
    if not args.bundle or not args.versions:
        raise UsageError("give a BUNDLE and --versions X.Y ... (or --fixtures DIR, or --merge DIR...)")
    from bundler.environment.capture import normalize

    key = _key_option(args, stack)
    checked = runner.check_bundle(args.bundle, key)
    if args.record:  # refused now, not after the matrix ran: a signed bundle is re-signed only with its key
        from bundler.crossversion.record import signing_problem

        problem = signing_problem(checked.signature, _signer(args))
        if problem is not None:
            raise problem
    cells = runner.user_matrix(args.bundle, args.versions, package=normalize(args.package), key=key,
                               installer=installer, workdir=Path(args.workdir) if args.workdir else None,
                               keep=args.keep_envs, checked=checked)
    return cells, f"Cross-version matrix of {Path(args.bundle).name}", {}, checked


def run(args: argparse.Namespace) -> int:
    """Handler of ``bundler matrix``: one line per cell on stderr, the requested reports, the gating exit code;
    with ``--record``, the result written into the bundle."""
    _check_record_options(args)
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        cells, title, meta, checked = _cells(args, stack)
        code = _report(args, cells, title, meta, started)
        if args.record and checked is not None:
            _record(args, cells, checked, stack)
    return code


def _record(args: argparse.Namespace, cells: list[Cell], checked: CheckedBundle, stack: contextlib.ExitStack) -> None:
    """Write the cells into the bundle (``bundler.crossversion.record``) and say what was written, and how signed."""
    from bundler.crossversion.record import record_into_bundle

    key = _key_option(args, stack)
    recorded = record_into_bundle(args.bundle, cells, signer=_signer(args), key=key.key if key else None,
                                  expected=checked.manifest)
    for line in recorded.skipped:
        print(f"bundler: note: not recorded: {printable(line)}", file=sys.stderr)
    total = len(recorded.record.environments)
    if not recorded.added:
        print(f"bundler: note: nothing was tested, so nothing was recorded; {args.bundle} is unchanged",
              file=sys.stderr)
        return
    print(f"recorded {recorded.added} tested environment(s) into {args.bundle} (compat/tested.json now holds "
          f"{total})", file=sys.stderr)
    if recorded.scheme == "sha256":
        print(f"bundler: note: {args.bundle} is only checksummed, and so is its record: loaders use it under "
              "--policy tested only with --trust-record (sign the bundle when packing, then record with its key, "
              "to make the record evidence)", file=sys.stderr)
    else:
        print(f"bundler: re-signed {args.bundle} ({recorded.scheme}, key id {recorded.key_id})", file=sys.stderr)


def _report(args: argparse.Namespace, cells: list[Cell], title: str, meta: dict[str, Any], started: float) -> int:
    """One line per cell on stderr, the requested reports, and the gating exit code."""
    from bundler._version import __version__
    from bundler.crossversion.reports import to_json, to_markdown, write_json, write_reports

    meta = {"bundler": __version__, "python": ".".join(map(str, sys.version_info[:3])), "cells": len(cells),
            **meta}
    if not args.merge:
        meta["duration_seconds"] = round(time.monotonic() - started, 1)
    for cell in cells:
        detail = cell.error or "; ".join((cell.differs + cell.raises)[:1])
        line = f"{cell.model}: {cell.bundled} -> {cell.loaded}: {cell.status}" + (f" ({detail})" if detail else "")
        print(printable(line), file=sys.stderr)  # the details quote the bundle (or a cells file): escaped
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
