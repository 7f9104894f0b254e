"""An offline stand-in for ``uv`` (``$BUNDLER_MATRIX_UV``), so that ``bundler matrix`` runs for real in tests.

The package index is the one thing a test cannot reach in seconds. This script answers the three uv commands
``bundler.crossversion.environments.Installer`` runs, from the packages of the environment running the tests
instead of an index:

- ``uv venv --python PY ENV``: a real virtual environment (without pip, which nothing there needs);
- ``uv pip compile -`` (resolving ``name==X.Y.*``): the installed version when it satisfies the request, else the
  failure an index gives for a release it does not have;
- ``uv pip install --python ENVPY REQ... WHEEL``: every requirement must be satisfied by the installed version
  (else it fails as an index would); the wheel (bundler's self-wheel) is really installed into ENV, and ENV then sees
  this environment's site-packages through a ``.pth`` line, added after the wheel (as ``tests/test_selfwheel.py``).

So the matrix's own code runs unchanged: real venvs, the self-wheel, the worker in its own processes, real cells.
"""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement


def _installed(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _satisfied(line: str) -> str | None:
    """``name==version`` of what is installed for ``line``, or None when it cannot be had offline."""
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return None
    have = _installed(req.name)
    if have is None or not req.specifier.contains(have, prereleases=True):
        return None
    return f"{req.name}=={have}"


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _fail(message: str) -> int:
    print(f"error: No solution found when resolving dependencies: {message}", file=sys.stderr)
    return 1


def main(args: list[str]) -> int:
    if args[:1] == ["venv"]:
        env = args[-1]
        subprocess.run([_option(args, "--python"), "-m", "venv", "--without-pip", env], check=True)
        return 0
    if args[:2] == ["pip", "compile"]:
        out = []
        for line in sys.stdin.read().split("\n"):
            if line.strip():
                pinned = _satisfied(line.strip())
                if pinned is None:
                    return _fail(f"{line.strip()} is not available (offline index: the test environment)")
                out.append(pinned)
        print("\n".join(out))
        return 0
    if args[:2] == ["pip", "install"]:
        python = _option(args, "--python")
        skip = {python} | {args[i + 1] for i, a in enumerate(args) if a == "--reinstall-package"}
        wanted = [a for a in args[2:] if not a.startswith("-") and a not in skip]
        wheels = [a for a in wanted if a.endswith(".whl")]
        for line in wanted:
            if line not in wheels and _satisfied(line) is None:
                return _fail(f"{line} is not available (offline index: the test environment)")
        purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        for wheel in wheels:  # a pure wheel is installed by unpacking it into purelib (PEP 427)
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(purelib)
        Path(purelib, "parent-environment.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
        return 0
    print(f"fake uv: unsupported command {' '.join(args)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
