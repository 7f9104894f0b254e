"""Run ``bundler verify`` and ``bundler load`` (the CLI entry point, in this process) on each bundle named in a JSON
job file and print one JSON line per bundle: the exit codes and the stderr lines. Used by tests/test_scan_parity.py
in a subprocess, so a bundle that kills the loader by a signal is pinned on the bundle it was working on."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path


def run(verb: str, path: str) -> dict[str, object]:
    from bundler.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--quiet", verb, path])
    return {"exit": code, "stderr": err.getvalue()}


def main(argv: list[str]) -> int:
    jobs: dict[str, str] = json.loads(Path(argv[0]).read_text())
    for name, path in jobs.items():
        print(json.dumps({"start": name}), flush=True)
        print(json.dumps({"name": name, "verify": run("verify", path), "load": run("load", path)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
