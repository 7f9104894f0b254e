"""Test environments: what to install for "the bundle's pins with only one package changed", and installing it.

Nothing taken from a bundle reaches the installer but plain ``name==version`` pins that ``bundler.environment.pins``
validated (the bundle was verified before anything was read from it); the installer takes binary wheels only
(uv ``--no-build``, pip ``--only-binary :all:``), so no build backend of any package ever runs. Besides those pins
the installer gets only what this module writes itself: the varied package at the exact version the index resolved
for the requested one, ``numpy<2`` for scikit-learn releases that cannot import under numpy 2, ``pandas`` when the
stored sample is a DataFrame, and the wheel of the running bundler (``selfwheel``).

A requested version the index does not have is a usage error naming it, found before any environment is built;
pins that cannot be installed together with a version make that cell ``not-installable``: pins are never dropped to
make an environment resolve, since the cell would then describe another environment than the bundle's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import Version

from bundler.environment.pins import Pin
from bundler.environment.versions import parse_version
from bundler.errors import UsageError

__all__ = ["EnvBuilder", "EnvPlan", "InstallError", "Installer", "find_uv", "plan_environment", "venv_python"]

#: First scikit-learn release whose wheels work with numpy 2; older ones need ``numpy<2`` to import at all.
FIRST_NUMPY2_SKLEARN = Version("1.4.2")
COMMAND_TIMEOUT = 900.0
#: Marker file recording what an environment was built from, so an unchanged one is reused.
MARKER = ".bundler-matrix.json"


class InstallError(Exception):
    """The installer failed; ``lines`` are its last lines of output (why)."""

    def __init__(self, command: str, lines: Sequence[str]) -> None:
        super().__init__(f"{command} failed")
        self.command = command
        self.lines = list(lines)


def find_uv() -> str | None:
    """``$BUNDLER_MATRIX_UV`` (set by noxfile.py), uv on PATH, or next to the running interpreter."""
    explicit = os.environ.get("BUNDLER_MATRIX_UV")
    if explicit and Path(explicit).exists():
        return explicit
    found = shutil.which("uv")
    if found:
        return found
    sibling = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    return str(sibling) if sibling.exists() else None


def venv_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def requested_spec(package: str, version: str) -> str:
    """``1.5`` -> ``scikit-learn==1.5.*`` (the newest 1.5.z); ``1.5.2`` -> ``scikit-learn==1.5.2``."""
    parsed = parse_version(version)
    if parsed is None:
        raise UsageError(f"{package} version {version!r} is not a version (X.Y or X.Y.Z)")
    if len(parsed.release) < 2:
        raise UsageError(f"{package} version {version!r} is not of the form X.Y or X.Y.Z")
    return f"{package}=={version}.*" if len(parsed.release) == 2 and str(parsed) == version else f"{package}=={version}"


@dataclass
class EnvPlan:
    """What one test environment gets: requirement strings for the installer and, in words, every change from the
    bundle's own pins (so a report never hides that the loading environment is not exactly the bundle's)."""

    requirements: list[str]
    adjustments: list[str] = field(default_factory=list)


def plan_environment(pins: Sequence[Pin], package: str, version: str, *, dataframe_sample: bool = False) -> EnvPlan:
    """The bundle's ``pins`` with ``package`` at ``version`` (an exact, resolved version), plus what that forces."""
    exact = Version(version)
    out = [f"{package}=={version}"]
    adjustments: list[str] = []
    names = {pin.name for pin in pins}
    if package not in names:
        adjustments.append(f"{package}=={version} added (the bundle does not pin {package})")
    needs_numpy1 = package == "scikit-learn" and exact < FIRST_NUMPY2_SKLEARN
    for pin in pins:
        if pin.name == package:
            continue
        if pin.name == "numpy" and needs_numpy1 and Version(pin.version).major >= 2:
            out.append("numpy<2")
            adjustments.append(f"{pin} -> numpy<2 (scikit-learn {version} needs numpy 1.x)")
            continue
        out.append(str(pin))
    if needs_numpy1 and "numpy" not in names:
        out.append("numpy<2")
        adjustments.append(f"numpy<2 added (scikit-learn {version} needs numpy 1.x)")
    if dataframe_sample and "pandas" not in names:
        out.append("pandas")
        adjustments.append("pandas added (the stored sample is a DataFrame)")
    return EnvPlan(out, adjustments)


class Installer:
    """Creates virtual environments and installs binary wheels into them: uv when available, else venv + pip."""

    def __init__(self, *, python: str | None = None, uv: str | None = None) -> None:
        self.python = python or sys.executable
        self.uv = uv if uv is not None else find_uv()

    def _run(self, cmd: Sequence[str], *, stdin: str | None = None) -> str:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
                              input=stdin)
        if proc.returncode != 0:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            raise InstallError(" ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd[:4])), lines[-6:])
        return proc.stdout

    def resolve(self, spec: str) -> str:
        """The exact version the index offers (as a wheel for the environments' Python) for ``spec``, e.g.
        ``scikit-learn==1.5.*`` -> ``1.5.2``; ``UsageError`` when it has none."""
        name = spec.split("==", 1)[0]
        try:
            if self.uv:
                out = self._run([self.uv, "pip", "compile", "-", "--no-deps", "--no-build", "--no-header",
                                 "--no-annotate", "--quiet", "--python", self.python], stdin=spec + "\n")
                found = [ln.split("==", 1)[1].strip() for ln in out.splitlines() if ln.startswith(f"{name}==")]
            else:
                out = self._run([self.python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                                 "--only-binary", ":all:", "--quiet", "--report", "-", spec])
                found = [str(item["metadata"]["version"]) for item in json.loads(out).get("install", [])]
        except (InstallError, ValueError, KeyError) as exc:
            why = exc.lines[-1] if isinstance(exc, InstallError) and exc.lines else str(exc)
            raise UsageError(f"{spec}: the package index has no such release as a wheel for Python "
                             f"{self._python_version()} ({why})") from None
        if len(found) != 1:
            raise UsageError(f"{spec}: the package index gave no single release for it")
        return found[0]

    def _python_version(self) -> str:
        if self.python == sys.executable:
            return ".".join(map(str, sys.version_info[:2]))
        return Path(self.python).name

    def create(self, env: Path) -> None:
        if self.uv:
            self._run([self.uv, "venv", "--quiet", "--python", self.python, str(env)])
        else:
            self._run([self.python, "-m", "venv", str(env)])

    def install(self, env: Path, requirements: Sequence[str], *, reinstall: Sequence[str] = ()) -> None:
        """Install ``requirements`` (binary wheels only); ``reinstall`` names packages to reinstall even if present."""
        py = str(venv_python(env))
        if self.uv:
            cmd = [self.uv, "pip", "install", "--quiet", "--no-build", "--python", py]
            for name in reinstall:
                cmd += ["--reinstall-package", name]
            self._run([*cmd, *requirements])
        else:
            cmd = [py, "-m", "pip", "install", "--quiet", "--only-binary", ":all:"]
            self._run([*cmd, *requirements])
            if reinstall:
                self._run([*cmd, "--force-reinstall", "--no-deps", *[r for r in requirements
                                                                      if r.endswith(".whl")]])


class EnvBuilder:
    """One environment per label below ``base_dir``, reused while it was built from the same requirements."""

    def __init__(self, base_dir: Path, installer: Installer, wheel: Path,
                 log: Callable[[str], None] | None = None) -> None:
        self.base_dir = base_dir
        self.installer = installer
        self.wheel = wheel
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))

    def build(self, label: str, requirements: Sequence[str]) -> Path:
        """The environment for ``requirements`` (plus bundler's wheel); ``InstallError`` when they cannot be
        installed."""
        env = self.base_dir / label
        marker = env / MARKER
        wanted = {"python": self.installer.python, "requirements": list(requirements), "bundler": self.wheel.name,
                  "wheel": self.wheel.parent.name}
        previous = None
        if marker.is_file() and venv_python(env).exists():
            try:
                previous = json.loads(marker.read_text(encoding="utf-8"))
            except ValueError:
                previous = None
        if previous == wanted:
            return env
        reuse = previous is not None and {k: v for k, v in previous.items() if k != "wheel"} == {
            k: v for k, v in wanted.items() if k != "wheel"}
        if not reuse:
            if env.exists():
                shutil.rmtree(env)
            self.log(f"[matrix] creating {env} ({' '.join(requirements)})")
            self.installer.create(env)
        marker.unlink(missing_ok=True)
        self.installer.install(env, [*requirements, str(self.wheel)], reinstall=["bundler"] if reuse else ())
        marker.write_text(json.dumps(wanted), encoding="utf-8")
        return env
