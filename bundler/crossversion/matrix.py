"""The cross-version matrix: "if I bundle under scikit-learn X, will it load and predict the same under Y?"

scikit-learn does not support loading a model pickled under one version in another; users still have to know, pair by
pair, what happens. This module answers it by experiment, never by guessing: for every loading version Y it builds a
throw-away virtual environment (``uv`` when available, ``python -m venv`` + pip otherwise) from the bundle's own pins
with only scikit-learn replaced, installs bundler there, and in that environment

1. verifies the bundle under the **default** policy (does bundler let it through?), then
2. loads it with policy ``none`` and runs the behaviour check on the stored sample (what would happen if forced?).

Each cell gets one status, the most important fact first:

``fails-to-load``       deserializing (or the restricted unpickler, or a missing class) failed under Y; the error
                        line is kept.
``predictions-differ``  it loads, but the stored sample predicts differently (the behaviour check's lines are kept).
``same-version-ok``     X == Y: accepted by the default policy, loads, predicts the same.
``refused-by-policy``   the default policy refuses it (as it should across scikit-learn versions); forced with policy
                        ``none`` it loads and predicts the same.
``loads-predicts-same`` accepted by the default policy, loads and predicts the same across different versions.

Two modes share the machinery: one user bundle against ``--versions`` (``bundler matrix BUNDLE --versions 1.5 1.6``,
running the real ``bundler verify`` / ``bundler load`` CLI in each environment), and all pairs of the committed
reference fixtures (``bundler matrix --fixtures fixtures --reports reports``, used by ``nox -s matrix``), where a
fresh worker process per bundle uses the Python API (``verify`` then ``load(policy="none")``), two at a time. Fresh
processes matter: a model loaded earlier can leave modules imported that make a later one load when it would not on
its own.

Only the standard library is imported at module level; matplotlib is optional (the ``plot`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bundler.errors import UsageError

SAME_VERSION_OK = "same-version-ok"
REFUSED_BY_POLICY = "refused-by-policy"
LOADS_PREDICTS_SAME = "loads-predicts-same"
PREDICTIONS_DIFFER = "predictions-differ"
FAILS_TO_LOAD = "fails-to-load"
#: Every status, from best to worst (the order of the legend and of "worst of" summaries).
STATUSES = (SAME_VERSION_OK, LOADS_PREDICTS_SAME, REFUSED_BY_POLICY, PREDICTIONS_DIFFER, FAILS_TO_LOAD)
STATUS_TEXT = {
    SAME_VERSION_OK: "same version: ok",
    LOADS_PREDICTS_SAME: "accepted, loads, predicts the same",
    REFUSED_BY_POLICY: "refused by the default policy (forced: loads, predicts the same)",
    PREDICTIONS_DIFFER: "loads, but predictions differ",
    FAILS_TO_LOAD: "fails to load",
}
STATUS_SHORT = {
    SAME_VERSION_OK: "ok",
    LOADS_PREDICTS_SAME: "same",
    REFUSED_BY_POLICY: "refused",
    PREDICTIONS_DIFFER: "DIFFER",
    FAILS_TO_LOAD: "FAIL",
}
STATUS_COLOUR = {
    SAME_VERSION_OK: "#1a9850",
    LOADS_PREDICTS_SAME: "#91cf60",
    REFUSED_BY_POLICY: "#74add1",
    PREDICTIONS_DIFFER: "#fdae61",
    FAILS_TO_LOAD: "#d73027",
}
#: First scikit-learn release whose wheels work with numpy 2; older ones need ``numpy<2`` to import at all.
FIRST_NUMPY2_SKLEARN = (1, 4, 2)
#: Oldest scikit-learn with CPython 3.11 wheels; older ones would have to compile from source.
OLDEST_SKLEARN_PY311 = (1, 1, 3)
#: scikit-learn's own run-time dependencies: relaxed first when an environment cannot be resolved with the pins.
SKLEARN_DEPENDENCIES = ("numpy", "scipy", "joblib", "threadpoolctl")
COMMAND_TIMEOUT = 900.0


@dataclass
class Cell:
    """One (bundled under X, loaded under Y) result. ``model`` names the bundle (a fixture name or a file stem)."""

    model: str
    bundled: str
    loaded: str
    status: str
    policy: str = "accepted"  # "accepted" or "refused" under the default policy ("error" if verify failed otherwise)
    policy_problems: list[str] = field(default_factory=list)
    error: str | None = None
    behaviour: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    adjustments: list[str] = field(default_factory=list)
    seconds: float = 0.0


def classify(*, same_version: bool, policy_accepted: bool, load_error: str | None,
             behaviour: Sequence[str]) -> str:
    """Return the cell status; dangerous outcomes take precedence over what the policy said (see module doc)."""
    if load_error is not None:
        return FAILS_TO_LOAD
    if behaviour:
        return PREDICTIONS_DIFFER
    if not policy_accepted:
        return REFUSED_BY_POLICY
    return SAME_VERSION_OK if same_version else LOADS_PREDICTS_SAME


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.4.1.post1"`` -> ``(1, 4, 1)``: the numeric release part, for comparisons against known thresholds."""
    out = []
    for part in version.split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        out.append(int(digits))
        if digits != part:
            break
    return tuple(out)


def same_minor(a: str, b: str) -> bool:
    return version_tuple(a)[:2] == version_tuple(b)[:2]


def sklearn_requirement(version: str) -> str:
    """``"1.5"`` -> ``scikit-learn==1.5.*`` (latest patch of that minor); ``"1.5.2"`` -> ``scikit-learn==1.5.2``."""
    parts = version_tuple(version)
    if len(parts) < 2:
        raise UsageError(f"scikit-learn version {version!r} is not of the form X.Y or X.Y.Z")
    if len(parts) == 2 and version.count(".") == 1:
        return f"scikit-learn=={parts[0]}.{parts[1]}.*"
    return f"scikit-learn=={version}"


def env_requirements(pins: Sequence[str], sklearn_version: str, *, relax: Iterable[str] = ()) -> tuple[
        list[str], list[str]]:
    """Requirements for an environment that differs from ``pins`` only in scikit-learn (plus what that forces).

    Returns ``(requirements, adjustments)``; ``adjustments`` says in words what was changed besides scikit-learn, so
    that a report never hides that the loading environment is not exactly the bundle's. ``relax`` names packages whose
    pins are dropped (used on a second attempt when the first cannot be resolved).
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    relaxed = {canonicalize_name(n) for n in relax}
    target = version_tuple(sklearn_version)
    if len(target) < 2:
        raise UsageError(f"scikit-learn version {sklearn_version!r} is not of the form X.Y or X.Y.Z")
    if target[:3] < OLDEST_SKLEARN_PY311 and sys.version_info >= (3, 11):
        raise UsageError(f"scikit-learn {sklearn_version} has no wheels for Python 3.11+; use 1.2 or later")
    # X.Y without a patch means "the latest X.Y.z" (for 1.4 that is 1.4.2, which works with numpy 2)
    needs_numpy1 = ((*target, 99) if len(target) == 2 else target) < FIRST_NUMPY2_SKLEARN
    out = [sklearn_requirement(sklearn_version)]
    adjustments: list[str] = []
    seen_numpy = False
    for line in pins:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == "scikit-learn":
            continue
        if name in relaxed:
            out.append("numpy<2" if name == "numpy" and needs_numpy1 else name)
            adjustments.append(f"{line} relaxed to {out[-1]} (the pinned set does not resolve)")
            seen_numpy = seen_numpy or name == "numpy"
            continue
        if name == "numpy":
            seen_numpy = True
            pinned = [s.version for s in req.specifier if s.operator in ("==", "===")]
            if needs_numpy1 and (not pinned or version_tuple(pinned[0])[:1] >= (2,)):
                out.append("numpy<2")
                adjustments.append(f"{line} -> numpy<2 (scikit-learn {sklearn_version} needs numpy 1.x)")
                continue
        out.append(line)
    if needs_numpy1 and not seen_numpy:
        out.append("numpy<2")
        adjustments.append(f"numpy<2 added (scikit-learn {sklearn_version} needs numpy 1.x)")
    return out, adjustments


# ------------------------------------------------------------------------------------------ environments


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


def project_root() -> Path | None:
    """The source tree bundler runs from (holding pyproject.toml), to install the same code into each environment."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def _project_name(root: Path) -> str:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        return str(data["project"]["name"])
    except (OSError, KeyError, ValueError):
        return "bundler"


def venv_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


class EnvBuilder:
    """Creates (or reuses) one virtual environment per requirement set and installs bundler into it."""

    def __init__(self, base_dir: Path, *, python: str | None = None, uv: str | None = None,
                 bundler_spec: str | None = None, log: Any = None) -> None:
        self.base_dir = base_dir
        self.python = python or sys.executable
        self.uv = uv if uv is not None else find_uv()
        root = project_root()
        if bundler_spec is None:
            if root is None:
                raise UsageError("cannot find bundler's source tree to install into the test environments; "
                                 "pass --bundler-spec (a path or a requirement)")
            bundler_spec = str(root)
        self.bundler_spec = bundler_spec
        self.bundler_name = _project_name(Path(bundler_spec)) if Path(bundler_spec).is_dir() else "bundler"
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))

    def build(self, label: str, requirements: Sequence[str]) -> Path:
        """Return the environment for ``requirements``; raises UsageError with the installer's last lines on failure."""
        env = self.base_dir / label
        marker = env / ".bundler-matrix.json"
        wanted = {"python": self.python, "requirements": list(requirements)}
        fresh = True
        if marker.is_file() and venv_python(env).exists():
            try:
                fresh = json.loads(marker.read_text(encoding="utf-8")) != wanted
            except ValueError:
                fresh = True
        if fresh and env.exists():
            shutil.rmtree(env)
        started = time.monotonic()
        if fresh:
            self.log(f"[matrix] creating {env} ({' '.join(requirements)})")
            if self.uv:
                self._run([self.uv, "venv", "--quiet", "--python", self.python, str(env)])
            else:
                self._run([self.python, "-m", "venv", str(env)])
        self._install(env, requirements, reinstall_bundler=not fresh)
        marker.write_text(json.dumps(wanted), encoding="utf-8")
        self.log(f"[matrix] environment {label} ready in {time.monotonic() - started:.1f}s")
        return env

    def _install(self, env: Path, requirements: Sequence[str], *, reinstall_bundler: bool) -> None:
        py = str(venv_python(env))
        if self.uv:
            cmd = [self.uv, "pip", "install", "--quiet", "--python", py]
            if reinstall_bundler:
                cmd += ["--reinstall-package", self.bundler_name]
            self._run([*cmd, self.bundler_spec, *requirements])
        else:
            self._run([py, "-m", "pip", "install", "--quiet", self.bundler_spec, *requirements])
            if reinstall_bundler:
                self._run([py, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps",
                           self.bundler_spec])

    def _run(self, cmd: Sequence[str]) -> None:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
        if proc.returncode != 0:
            tail = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()][-6:]
            raise UsageError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode})", problems=tail or [
                f"{' '.join(cmd)} failed with exit {proc.returncode}"])


def build_for_version(builder: EnvBuilder, label: str, pins: Sequence[str], version: str) -> tuple[
        Path, list[str]]:
    """Build the environment for ``version`` from ``pins``; if it does not resolve, relax scikit-learn's own
    dependencies, then every pin. Returns the environment and the adjustments made."""
    attempts: list[tuple[str, ...]] = [(), SKLEARN_DEPENDENCIES]
    names = tuple(line.split("==")[0].strip() for line in pins if "==" in line)
    attempts.append(names)
    last: UsageError | None = None
    for relax in attempts:
        requirements, adjustments = env_requirements(pins, version, relax=relax)
        try:
            return builder.build(label, requirements), adjustments
        except UsageError as exc:
            last = exc
            builder.log(f"[matrix] {label}: cannot build with {' '.join(requirements)}: {exc.problems[-1]}")
    assert last is not None
    raise last


# ------------------------------------------------------------------------------------------ worker


def worker(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Run inside a loading environment: verify (default policy), then load (policy none) with the behaviour check.

    Returns one JSON-able record per bundle; never raises for a bundle's own failure.
    """
    import importlib.metadata as md

    from bundler import BehaviourDrift, BundleError
    from bundler import load as _load
    from bundler import verify as _verify

    env = {}
    for dist in ("scikit-learn", "numpy", "scipy", "joblib"):
        try:
            env[dist] = md.version(dist)
        except md.PackageNotFoundError:
            env[dist] = "-"
    env["python"] = ".".join(map(str, sys.version_info[:3]))
    records = []
    for path in paths:
        started = time.monotonic()
        record: dict[str, Any] = {"path": path, "environment": env}
        try:
            report = _verify(path, policy="default")
            record["verify"] = {"ok": report.ok, "exit_code": report.exit_code,
                                "problems": [getattr(p, "message", str(p)) for p in report.problems]}
        except BundleError as exc:
            record["verify"] = {"ok": False, "exit_code": exc.exit_code, "problems": exc.problems}
        except Exception as exc:  # a crash is a result here, not a reason to stop the matrix
            record["verify"] = {"ok": False, "exit_code": 1, "problems": [_one_line(exc)]}
        record["error"] = None
        record["behaviour"] = []
        try:
            _load(path, policy="none", check_behaviour=True)
        except BehaviourDrift as exc:
            record["behaviour"] = list(exc.problems)
        except BundleError as exc:
            record["error"] = f"{type(exc).__name__}: {exc.problems[0]}"
            record["error_lines"] = list(exc.problems)
        except Exception as exc:  # a crash of the loaded model is a result too
            record["error"] = _one_line(exc)
        record["seconds"] = round(time.monotonic() - started, 3)
        records.append(record)
    return records


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}" if text else type(exc).__name__


def run_worker(python: Path, paths: Sequence[str], workdir: Path, *, jobs: int | None = None) -> list[dict[str, Any]]:
    """Run :func:`worker` in another interpreter, one fresh process per bundle (``jobs`` at a time).

    A process per bundle costs a second or so each, but a model loaded earlier can leave modules imported (or
    aliases registered) that make a later one load when it would not on its own; every cell must describe what a
    deployment loading only that bundle would see. A crash of the process costs only its own cell.
    """
    from concurrent.futures import ThreadPoolExecutor

    workdir.mkdir(parents=True, exist_ok=True)

    def one(index_path: tuple[int, str]) -> dict[str, Any]:
        index, path = index_path
        out = (workdir / f"worker-{os.getpid()}-{index}.json").resolve()
        # run outside any project so that no [tool.bundler] policy overrides leak into "the default policy"
        proc = subprocess.run([str(python), "-m", "bundler.crossversion.matrix", "--worker-out", str(out), path],
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
                              cwd=tempfile.gettempdir())
        if proc.returncode == 0 and out.is_file():
            records = json.loads(out.read_text(encoding="utf-8"))
            out.unlink()
            return dict(records[0])
        lines = [line for line in (proc.stderr or proc.stdout or "").strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        return {"path": path, "environment": {}, "verify": {"ok": False, "exit_code": 1, "problems": []},
                "error": f"the loading process crashed: {last}", "behaviour": [], "seconds": 0.0}

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
        return list(pool.map(one, enumerate(paths)))


# ------------------------------------------------------------------------------------------ bundles


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a bundle as plain JSON (no verification: only used to label cells and pick pins)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("manifest.json")
            if info.file_size > 16 * 1024 * 1024:
                raise UsageError(f"{path}: manifest.json is implausibly large")
            data = json.loads(archive.read(info))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{path}: cannot read the manifest: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: manifest.json is not an object")
    return data


def bundle_sklearn_version(manifest: Mapping[str, Any]) -> str:
    packages = (manifest.get("environment") or {}).get("packages") or {}
    version = packages.get("scikit-learn")
    if not isinstance(version, str):
        raise UsageError("the bundle does not record a scikit-learn version")
    return version


def bundle_pins(manifest: Mapping[str, Any]) -> list[str]:
    requirements = manifest.get("requirements")
    if isinstance(requirements, list) and requirements:
        return [str(r) for r in requirements]
    packages = (manifest.get("environment") or {}).get("packages") or {}
    return [f"{name}=={version}" for name, version in sorted(packages.items())]


def cell_from_record(record: Mapping[str, Any], *, model: str, bundled: str, loaded: str,
                     adjustments: Sequence[str] = (), same_version: bool | None = None) -> Cell:
    """Turn a worker / CLI record into a classified cell. ``same_version`` defaults to "the installed scikit-learn is
    exactly the bundled one"."""
    env = dict(record.get("environment") or {})
    installed = env.get("scikit-learn", loaded)
    if same_version is None:
        same_version = installed == bundled
    verify = record.get("verify") or {}
    accepted = bool(verify.get("ok"))
    policy = "accepted" if accepted else ("refused" if verify.get("exit_code") == 4 else "error")
    status = classify(same_version=same_version, policy_accepted=accepted, load_error=record.get("error"),
                      behaviour=record.get("behaviour") or [])
    return Cell(model=model, bundled=bundled, loaded=loaded, status=status, policy=policy,
                policy_problems=list(verify.get("problems") or [])[:10], error=record.get("error"),
                behaviour=list(record.get("behaviour") or []), environment=env, adjustments=list(adjustments),
                seconds=float(record.get("seconds") or 0.0))


# ------------------------------------------------------------------------------------------ user bundle


def run_cli_cell(python: Path, bundle: str) -> dict[str, Any]:
    """One user-bundle cell through the real CLI: ``verify --json`` (default policy), ``load --policy none --json``."""
    started = time.monotonic()
    record: dict[str, Any] = {"path": bundle}
    env_proc = subprocess.run([str(python), "-c", _ENV_PROBE], capture_output=True, text=True, timeout=120,
                              check=False)
    record["environment"] = json.loads(env_proc.stdout) if env_proc.returncode == 0 else {}
    verify = subprocess.run([str(python), "-m", "bundler", "verify", bundle, "--json"], capture_output=True,
                            text=True, timeout=COMMAND_TIMEOUT, check=False)
    record["verify"] = {"ok": verify.returncode == 0, "exit_code": verify.returncode,
                        "problems": _problems(verify.stdout, verify.stderr)}
    load = subprocess.run([str(python), "-m", "bundler", "load", bundle, "--policy", "none", "--json"],
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    problems = _problems(load.stdout, load.stderr)
    record["error"] = None
    record["behaviour"] = []
    if load.returncode == 6:
        record["behaviour"] = problems or ["behaviour drift (no detail printed)"]
    elif load.returncode != 0:
        record["error"] = f"exit {load.returncode}: " + (problems[0] if problems else "no message")
        record["error_lines"] = problems
    record["seconds"] = round(time.monotonic() - started, 3)
    return record


_ENV_PROBE = (
    "import json, sys, importlib.metadata as m\n"
    "def v(n):\n"
    "    try: return m.version(n)\n"
    "    except m.PackageNotFoundError: return '-'\n"
    "d = {n: v(n) for n in ('scikit-learn', 'numpy', 'scipy', 'joblib')}\n"
    "d['python'] = '.'.join(map(str, sys.version_info[:3]))\n"
    "print(json.dumps(d))\n"
)


def _problems(stdout: str, stderr: str) -> list[str]:
    """Problem lines from a ``--json`` document (``problems`` as strings or objects with ``message``), else stderr."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = None
    lines: list[str] = []
    if isinstance(doc, dict):
        for item in doc.get("problems") or []:
            if isinstance(item, str):
                lines.append(item)
            elif isinstance(item, dict) and item.get("message"):
                lines.append(str(item["message"]))
    if not lines:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines


def user_matrix(bundle: str, versions: Sequence[str], *, python: str | None = None, workdir: Path | None = None,
                keep: bool = False, bundler_spec: str | None = None) -> list[Cell]:
    """The matrix of one bundle against ``versions`` (see module doc); one throw-away environment per version."""
    manifest = read_manifest(bundle)
    bundled = bundle_sklearn_version(manifest)
    pins = bundle_pins(manifest)
    bundle = str(Path(bundle).resolve())
    owned = workdir is None
    base = Path(tempfile.mkdtemp(prefix="bundler-matrix-")) if workdir is None else workdir
    base.mkdir(parents=True, exist_ok=True)
    builder = EnvBuilder(base, python=python, bundler_spec=bundler_spec)
    cells = []
    try:
        for version in versions:
            started = time.monotonic()
            label = f"sklearn-{version}"
            try:
                env, adjustments = build_for_version(builder, label, pins, version)
            except UsageError as exc:
                cells.append(Cell(model=Path(bundle).stem, bundled=bundled, loaded=version, status=FAILS_TO_LOAD,
                                  policy="error", error="could not build the environment: " + "; ".join(
                                      exc.problems[-2:]), seconds=round(time.monotonic() - started, 3)))
                continue
            record = run_cli_cell(venv_python(env), bundle)
            cell = cell_from_record(record, model=Path(bundle).stem, bundled=bundled,
                                    loaded=record["environment"].get("scikit-learn", version), adjustments=adjustments)
            cell.seconds = round(time.monotonic() - started, 3)
            cells.append(cell)
            builder.log(f"[matrix] {bundled} -> {cell.loaded}: {cell.status}")
    finally:
        if owned and not keep:
            shutil.rmtree(base, ignore_errors=True)
    return cells


# ------------------------------------------------------------------------------------------ fixtures (all pairs)


def load_fixture_environments(fixtures: Path) -> dict[str, list[str]]:
    """``fixtures/environments.json``: loading-environment pins per scikit-learn minor (shared with noxfile.py)."""
    path = fixtures / "environments.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the reference environments: {exc}") from exc
    return {str(k): [str(r) for r in v] for k, v in data["environments"].items()}


def fixture_bundles(fixtures: Path) -> list[tuple[str, str, Path]]:
    """``(bundled minor, model name, path)`` for every ``fixtures/sklearn-X.Y/<model>.mlbundle``, sorted."""
    out = []
    for directory in sorted(fixtures.glob("sklearn-*"), key=lambda p: version_tuple(p.name.split("-", 1)[1])):
        for bundle in sorted(directory.glob("*.mlbundle")):
            out.append((directory.name.split("-", 1)[1], bundle.stem, bundle))
    return out


def fixture_matrix(fixtures: Path, *, envdir: Path, versions: Sequence[str] | None = None,
                   python: str | None = None, bundler_spec: str | None = None) -> list[Cell]:
    """All pairs over the committed fixtures: one environment per loading version, reused for every fixture."""
    environments = load_fixture_environments(fixtures)
    bundles = fixture_bundles(fixtures)
    if not bundles:
        raise UsageError(f"no fixtures under {fixtures} (run `nox -s fixtures` first)")
    loaded_versions = list(versions) if versions else sorted(environments, key=version_tuple)
    builder = EnvBuilder(envdir, python=python, bundler_spec=bundler_spec)
    cells: list[Cell] = []
    for loaded in loaded_versions:
        if loaded not in environments:
            raise UsageError(f"no reference environment for scikit-learn {loaded} in {fixtures}/environments.json")
        try:
            env = builder.build(f"sklearn-{loaded}", environments[loaded])
        except UsageError as exc:
            for bundled, model, _ in bundles:
                cells.append(Cell(model=model, bundled=bundled, loaded=loaded, status=FAILS_TO_LOAD, policy="error",
                                  error="could not build the environment: " + "; ".join(exc.problems[-2:])))
            continue
        started = time.monotonic()
        records = run_worker(venv_python(env), [str(b[2].resolve()) for b in bundles], envdir / "results")
        by_path = {r["path"]: r for r in records}
        for bundled, model, path in bundles:
            record = by_path.get(str(path.resolve()), {"error": "no result from the worker", "verify": {}})
            # fixtures are labelled by minor; the same label means the same pinned reference environment
            cells.append(cell_from_record(record, model=model, bundled=bundled, loaded=loaded,
                                          same_version=bundled == loaded))
        builder.log(f"[matrix] loaded under {loaded}: {len(bundles)} bundles in {time.monotonic() - started:.1f}s")
    return cells


# ------------------------------------------------------------------------------------------ reports


def _order(values: Iterable[str]) -> list[str]:
    return sorted(set(values), key=lambda v: (version_tuple(v), v))


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=STATUSES.index)


def to_json(cells: Sequence[Cell], *, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    counts = {status: sum(1 for c in cells if c.status == status) for status in STATUSES}
    return {"format": 1, "meta": dict(meta or {}), "statuses": {s: STATUS_TEXT[s] for s in STATUSES},
            "counts": counts, "cells": [asdict(c) for c in cells]}


def to_markdown(cells: Sequence[Cell], *, title: str = "Cross-version matrix", meta: Mapping[str, Any] | None = None,
                ) -> str:
    """Rows: bundled under X; columns: loaded under Y. A summary (worst over models, with counts) then one table per
    model, then every failure and difference with its first line."""
    bundled = _order(c.bundled for c in cells)
    loaded = _order(c.loaded for c in cells)
    models = sorted({c.model for c in cells})
    index = {(c.model, c.bundled, c.loaded): c for c in cells}
    lines = [f"# {title}", ""]
    for key, value in (meta or {}).items():
        lines.append(f"- {key}: {value}")
    if meta:
        lines.append("")
    lines += ["Rows: scikit-learn version the bundle was made with. Columns: version it is loaded under.",
              "Each environment is verified under the **default** policy, then loaded with policy `none` and the "
              "behaviour check re-run on the stored sample.", "", "| status | meaning | cells |", "| --- | --- | --- |"]
    for status in STATUSES:
        lines.append(f"| `{STATUS_SHORT[status]}` | {STATUS_TEXT[status]} | "
                     f"{sum(1 for c in cells if c.status == status)} |")
    lines.append("")
    if len(models) > 1:
        lines += ["## Summary (worst outcome over all models; `n/m` = models with that outcome)", ""]
        lines += _table(bundled, loaded, lambda x, y: _summary_cell([index[(m, x, y)] for m in models
                                                                      if (m, x, y) in index]))
        lines.append("")
    for model in models:
        if len(models) > 1:
            lines += [f"## {model}", ""]
        lines += _table(bundled, loaded, lambda x, y, model=model: (
            STATUS_SHORT[index[(model, x, y)].status] if (model, x, y) in index else ""))
        lines.append("")
    bad = [c for c in cells if c.status in (FAILS_TO_LOAD, PREDICTIONS_DIFFER)]
    if bad:
        lines += ["## Failures and differences", ""]
        for c in sorted(bad, key=lambda c: (c.model, version_tuple(c.bundled), version_tuple(c.loaded))):
            detail = c.error if c.status == FAILS_TO_LOAD else "; ".join(c.behaviour[:3])
            detail = _clip(detail or "", 300)
            lines.append(f"- **{c.model}** {c.bundled} → {c.loaded}: {STATUS_TEXT[c.status]}: {detail}")
        lines.append("")
    adjusted = sorted({(c.loaded, a) for c in cells for a in c.adjustments})
    if adjusted:
        lines += ["## Environment adjustments besides scikit-learn", ""]
        lines += [f"- {loaded_v}: {text}" for loaded_v, text in adjusted]
        lines.append("")
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _summary_cell(group: Sequence[Cell]) -> str:
    if not group:
        return ""
    status = worst(c.status for c in group)
    count = sum(1 for c in group if c.status == status)
    return f"{STATUS_SHORT[status]} {count}/{len(group)}"


def _table(rows: Sequence[str], cols: Sequence[str], render: Any) -> list[str]:
    out = ["| bundled \\ loaded | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for x in rows:
        out.append(f"| **{x}** | " + " | ".join(render(x, y) for y in cols) + " |")
    return out


def write_png(cells: Sequence[Cell], path: Path, *, title: str = "Cross-version matrix") -> bool:
    """A heat map per model (rows bundled, columns loaded). Returns False when matplotlib is not installed."""
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
    ncols = min(3, len(models))
    nrows = (len(models) + ncols - 1) // ncols
    size = 0.55 * max(len(loaded), 2) + 1.5
    height = size * nrows + 2.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(size * ncols, 7.5), height), squeeze=False,
                             layout="constrained")
    for ax, model in zip(axes.flat, models, strict=False):
        grid = [[STATUSES.index(index[(model, x, y)].status) + 1 if (model, x, y) in index else 0 for y in loaded]
                for x in bundled]
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=len(STATUSES), aspect="equal")
        ax.set_xticks(range(len(loaded)), loaded, rotation=45, fontsize=8)
        ax.set_yticks(range(len(bundled)), bundled, fontsize=8)
        ax.set_xlabel("loaded under", fontsize=8)
        ax.set_ylabel("bundled under", fontsize=8)
        ax.set_title(model, fontsize=10)
        for i, x in enumerate(bundled):
            for j, y in enumerate(loaded):
                cell = index.get((model, x, y))
                if cell is not None:
                    ax.text(j, i, STATUS_SHORT[cell.status], ha="center", va="center", fontsize=5.5)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.legend(handles=[Patch(color=STATUS_COLOUR[s], label=STATUS_TEXT[s]) for s in STATUSES],
               loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=12)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_reports(cells: Sequence[Cell], outdir: str | Path, *, title: str = "Cross-version matrix",
                  meta: Mapping[str, Any] | None = None, stem: str = "matrix") -> list[Path]:
    """Write ``matrix.md``, ``matrix.json`` and (with matplotlib) ``matrix.png`` under ``outdir``; return the paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    md_path = out / f"{stem}.md"
    md_path.write_text(to_markdown(cells, title=title, meta=meta), encoding="utf-8")
    written.append(md_path)
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(to_json(cells, meta=meta), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    written.append(json_path)
    png_path = out / f"{stem}.png"
    if write_png(cells, png_path, title=title):
        written.append(png_path)
    else:
        print("note: matplotlib is not installed (extra `plot`); matrix.png not written", file=sys.stderr)
    return written


# ------------------------------------------------------------------------------------------ CLI


def add_parser(subparsers: Any) -> None:
    """Register the ``matrix`` verb on the CLI's subparsers (``run`` is its handler)."""
    parser = subparsers.add_parser(
        "matrix", help="load a bundle under several scikit-learn versions and report what happens",
        description="Build one throw-away environment per scikit-learn version from the bundle's own pins (only "
                    "scikit-learn changed), verify under the default policy, load with policy none, re-run the "
                    "stored sample. With --fixtures, run all pairs over the committed reference fixtures.")
    _add_arguments(parser)
    parser.set_defaults(func=run, handler=run)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", nargs="?", help="the .mlbundle to test (omit with --fixtures)")
    parser.add_argument("--versions", nargs="+", metavar="X.Y", help="scikit-learn versions to load under")
    parser.add_argument("--python", help="interpreter for the environments (default: this one)")
    parser.add_argument("--json", dest="json_out", metavar="OUT", nargs="?", const="-",
                        help="the cells as JSON: to OUT, or alone as the one document on stdout")
    parser.add_argument("--markdown", dest="markdown_out", metavar="OUT", help="write a Markdown table to OUT")
    parser.add_argument("--reports", metavar="DIR", help="write matrix.md, matrix.json, matrix.png into DIR")
    parser.add_argument("--workdir", metavar="DIR", help="where to create the environments (kept; reused next run)")
    parser.add_argument("--keep-envs", action="store_true", help="keep the throw-away environments")
    parser.add_argument("--bundler-spec", metavar="SPEC",
                        help="what to install as bundler in each environment (default: this source tree)")
    parser.add_argument("--fixtures", metavar="DIR", help="all pairs over DIR/sklearn-X.Y/*.mlbundle")


def run(args: argparse.Namespace) -> int:
    """Handler of ``bundler matrix``: prints one line per cell to stderr, writes the requested reports."""
    started = time.monotonic()
    if args.fixtures:
        fixtures = Path(args.fixtures)
        envdir = Path(args.workdir) if args.workdir else fixtures.parent / ".nox" / "matrix-envs"
        cells = fixture_matrix(fixtures, envdir=envdir, versions=args.versions, python=args.python,
                               bundler_spec=args.bundler_spec)
        title = "Cross-version matrix of the reference fixtures"
    else:
        if not args.bundle or not args.versions:
            raise UsageError("give a BUNDLE and --versions X.Y ... (or --fixtures DIR)")
        if not Path(args.bundle).is_file():
            raise UsageError(f"{args.bundle}: no such bundle")
        cells = user_matrix(args.bundle, args.versions, python=args.python,
                            workdir=Path(args.workdir) if args.workdir else None, keep=args.keep_envs,
                            bundler_spec=args.bundler_spec)
        title = f"Cross-version matrix of {Path(args.bundle).name}"
    elapsed = time.monotonic() - started
    meta = {"python": ".".join(map(str, sys.version_info[:3])), "cells": len(cells),
            "duration_seconds": round(elapsed, 1)}
    for cell in cells:
        detail = cell.error or ("; ".join(cell.behaviour[:1]) if cell.behaviour else "")
        print(f"{cell.model}: {cell.bundled} -> {cell.loaded}: {cell.status}" + (f" ({detail})" if detail else ""),
              file=sys.stderr)
    if args.reports:
        for path in write_reports(cells, args.reports, title=title, meta=meta):
            print(f"wrote {path}", file=sys.stderr)
    if args.json_out:
        document = json.dumps(to_json(cells, meta=meta), indent=1, sort_keys=True) + "\n"
        if args.json_out == "-":
            sys.stdout.write(document)
        else:
            Path(args.json_out).write_text(document, encoding="utf-8")
    if args.markdown_out:
        Path(args.markdown_out).write_text(to_markdown(cells, title=title, meta=meta), encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bundler.crossversion.matrix``: ``bundler matrix``, plus the internal ``--worker-out`` mode."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--worker-out":
        out = Path(argv[1])
        out.write_text(json.dumps(worker(argv[2:])), encoding="utf-8")
        return 0
    parser = argparse.ArgumentParser(prog="python -m bundler.crossversion.matrix")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UsageError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
