"""The ``bundler`` command line: entry point, error rendering and exit codes; verbs in ``bundler.cli.commands``,
flags in ``bundler.cli.parser``.

Every user-facing failure is one line per problem on stderr (plus ``hint:`` lines worded for the command line) and
the exit code of docs/design.md. ``--debug`` adds the traceback and changes nothing else: the exit code is the same with
and without it. With ``--json``, stdout carries exactly one JSON document, on success and on failure alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from bundler.cli.commands import err, hint_lines
from bundler.cli.parser import build_parser
from bundler.errors import BundleError, BundlerWarning
from bundler.findings import EXIT_INTERNAL, Kind

__all__ = ["EXIT_BROKEN_PIPE", "build_parser", "main"]

#: Exit code when stdout's reader has gone: what a shell reports for a process killed by SIGPIPE.
EXIT_BROKEN_PIPE = 128 + 13


def _warning_printer(quiet: bool) -> Callable[..., None]:
    """Warnings as one line each; under ``--quiet`` only bundler's own (third-party chatter such as
    scikit-learn's InconsistentVersionWarning is dropped: the environment check already said what differs)."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,  # noqa: ARG001
             file: Any = None, line: str | None = None) -> None:  # noqa: ARG001 - warnings.showwarning's signature
        if isinstance(message, BundlerWarning):
            text = message.render("cli")
        elif quiet:
            return
        else:
            text = str(message)
        err(f"warning: {' '.join(text.split())}")

    return show


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the error document goes to stdout: ``--json`` as a flag, but not ``matrix --json OUT`` (a file)."""
    args = list(argv)
    if "--json=-" in args:
        return True
    if "--json" not in args:
        return False
    i = args.index("--json")
    if "matrix" not in args[:i]:
        return True  # a plain flag on every other verb
    value = args[i + 1] if i + 1 < len(args) else "-"
    return value.startswith("-")  # "--json" alone, "--json -" or followed by a flag: stdout; "--json OUT": a file


#: pydantic's switch for plugin discovery (https://docs.pydantic.dev/latest/concepts/plugins/).
PYDANTIC_PLUGINS_VAR = "PYDANTIC_DISABLE_PLUGINS"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code.

    The CLI does not load pydantic plugins (unless ``PYDANTIC_DISABLE_PLUGINS`` is set otherwise): pydantic is only
    the schema of bundler's own manifest, and discovering plugins means reading the entry points of every installed
    distribution, a measurable share of a cold ``bundler verify`` (issue 11) that buys nothing here. The library API
    leaves the caller's process alone."""
    os.environ.setdefault(PYDANTIC_PLUGINS_VAR, "__all__")
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    quiet = "--quiet" in args_list or "-q" in args_list
    with warnings.catch_warnings():  # restores the caller's warning printer when an in-process call returns
        warnings.showwarning = _warning_printer(quiet)
        return _run(args_list, debug)


def _run(args_list: list[str], debug: bool) -> int:
    try:
        args: argparse.Namespace = build_parser(args_list).parse_args(args_list)
        func: Callable[[argparse.Namespace], int] = args.func
        from bundler.pipelines import progress

        quiet_output = args.quiet or getattr(args, "json", False)
        progress.enable(sys.stderr if sys.stderr.isatty() and not quiet_output else None)
        try:
            code = func(args)
            sys.stdout.flush()  # here, so that a reader that went away is seen by the handler below
            return code
        finally:
            progress.enable(None)
    except BundleError as exc:
        if debug:
            traceback.print_exc()
        if _wants_json(args_list):
            print(json.dumps({"ok": False, "exit_code": exc.exit_code, "error": type(exc).__name__,
                              "problems": exc.problems, "hints": [h.render("cli") for h in exc.hints]},
                             indent=2, sort_keys=True))
        for line in exc.problems:
            err(f"error: {line}")
        hint_lines(exc.hints)
        return exc.exit_code
    except KeyboardInterrupt:
        err("interrupted; nothing was left half-written")
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (``bundler inspect B | head -1``): not a bug and not the bundle's fault.
        # Exit as a tool killed by SIGPIPE would (128 + 13), with stdout pointed at /dev/null so that the
        # interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except SystemExit as exc:  # argparse --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) else Kind.USAGE.exit_code
    except Exception as exc:  # noqa: BLE001 - the CLI's last resort: a bug becomes one line and exit 1, never a traceback
        if debug:
            traceback.print_exc()
        if _wants_json(args_list):
            print(json.dumps({"ok": False, "exit_code": EXIT_INTERNAL, "error": type(exc).__name__,
                              "problems": [f"internal error: {exc}"]}, indent=2, sort_keys=True))
        err(f"internal error: {type(exc).__name__}: {exc}" + ("" if debug else " (run with --debug for the traceback)"))
        return EXIT_INTERNAL
