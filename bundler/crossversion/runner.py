"""Running the experiment: check the bundles, plan and build one environment per version, run the worker, make cells.

Two modes share the machinery:

* one bundle against ``versions`` of one package (``bundler matrix BUNDLE --versions 1.5 1.6 [--package NAME]``):
  each environment is the bundle's own pins with only that package changed (``environments.plan_environment``);
* all pairs over the committed reference fixtures (``bundler matrix --fixtures DIR``): one environment per loading
  version from ``DIR/environments.json`` (the very environments the fixtures were made in), reused for every fixture.

Before anything is read from a bundle it is verified here, in the running bundler: integrity, the signature (with the
caller's key, when given: anything but a valid signature from it is refused), and the pins (plain ``name==version``
only). Content outside the allowlist is refused too: the test environments install the same bundler and would
refuse it in every cell. Only then are its pins and sample kind taken from the verified manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bundler.container.manifest import Manifest
from bundler.crossversion.cells import NOT_INSTALLABLE, Cell, classify, version_key
from bundler.crossversion.environments import (
    COMMAND_TIMEOUT,
    EnvBuilder,
    Installer,
    InstallError,
    plan_environment,
    requested_spec,
    venv_python,
)
from bundler.crossversion.selfwheel import build_self_wheel
from bundler.environment.pins import Pin, parse_plain_pin
from bundler.errors import BundleError, UsageError
from bundler.integrity.signing import SignatureStatus, VerifyKey

__all__ = ["CheckedBundle", "KeyOption", "check_bundle", "fixture_matrix", "user_matrix"]

NOT_PINNED = "not pinned"


@dataclass(frozen=True)
class KeyOption:
    """The caller's key as the worker takes it (``--public-key PEM`` or ``--hmac-key-file F``), and loaded."""

    option: str
    path: str
    key: VerifyKey

    def args(self) -> list[str]:
        return [self.option, str(Path(self.path).resolve())]


@dataclass(frozen=True)
class CheckedBundle:
    """A bundle verified in the running bundler, with what the matrix takes from its verified manifest."""

    path: Path
    manifest: Manifest
    pins: tuple[Pin, ...]
    signature: SignatureStatus | None = None

    @property
    def dataframe_sample(self) -> bool:
        sample = self.manifest.sample or {}
        return isinstance(sample.get("input"), Mapping) and sample["input"].get("kind") == "dataframe"

    def version_of(self, package: str) -> str:
        return self.manifest.environment.packages.get(package, NOT_PINNED)


def check_bundle(path: str | os.PathLike[str], key: KeyOption | None = None) -> CheckedBundle:
    """Verify ``path`` (policy ``none``: versions are what the matrix varies) and return its checked manifest.

    Raises the error of the most serious problem found (``IntegrityError``/``SignatureError`` exit 3 for a bad
    bundle, bad signature or pins that are not plain exact pins; ``UnsafeContent`` exit 5), with every problem.
    """
    from bundler.pipelines.verify import verify

    target = Path(path)
    if not target.is_file():
        raise UsageError(f"{target}: no such bundle")
    report = verify(target, key=key.key if key else None, policy="none")
    error = report.error()
    if error is not None:
        raise error
    manifest = report.manifest
    assert manifest is not None  # noqa: S101 - a report without problems has a manifest
    # verify refused anything else; parsed again here so that this module relies on nothing but its own check
    pins = tuple(parse_plain_pin(line) for line in manifest.requirements)
    return CheckedBundle(target.resolve(), manifest, pins, report.signature)


def run_workers(python: Path, bundles: Sequence[Path], workdir: Path, *, key: KeyOption | None = None,
                jobs: int | None = None) -> list[dict[str, Any]]:
    """Run the worker in ``python`` over ``bundles``: ``jobs`` batches at a time (default: cores), every bundle in a
    process of its own within its batch (see ``worker``). Returns one record per bundle, in order."""
    workdir.mkdir(parents=True, exist_ok=True)
    count = max(1, min(jobs or os.cpu_count() or 2, len(bundles)))
    batches = [list(range(len(bundles)))[i::count] for i in range(count)]

    def batch(number: int) -> dict[int, dict[str, Any]]:
        outdir = Path(tempfile.mkdtemp(prefix=f"batch-{number}-", dir=workdir)).resolve()
        indices = batches[number]
        cmd = [str(python), "-m", "bundler.crossversion.worker", str(outdir), *(key.args() if key else []),
               *(str(bundles[i]) for i in indices)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT * len(indices),
                              check=False, cwd=tempfile.gettempdir())
        lines = [line for line in (proc.stderr or proc.stdout or "").strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        out: dict[int, dict[str, Any]] = {}
        for position, index in enumerate(indices):
            record_file = outdir / f"{position}.json"
            if record_file.is_file():
                out[index] = json.loads(record_file.read_text(encoding="utf-8"))
            else:
                out[index] = {"path": str(bundles[index]), "environment": {}, "findings": [], "seconds": 0.0,
                              "verify": {"ok": False, "exit_code": 1, "problems": []},
                              "error": f"the loading process crashed: {last}"}
        shutil.rmtree(outdir, ignore_errors=True)
        return out

    with ThreadPoolExecutor(max_workers=count) as pool:
        merged: dict[int, dict[str, Any]] = {}
        for part in pool.map(batch, range(count)):
            merged.update(part)
    return [merged[i] for i in range(len(bundles))]


def cell_from_record(record: Mapping[str, Any], *, model: str, bundled: str, loaded: str, package: str,
                     adjustments: Sequence[str] = (), same_version: bool | None = None) -> Cell:
    """Classify a worker record. ``same_version`` defaults to "the installed ``package`` is exactly the bundled one"."""
    env = {str(k): str(v) for k, v in (record.get("environment") or {}).items()}
    if same_version is None:
        same_version = env.get(package) == bundled
    verify = record.get("verify") or {}
    accepted = bool(verify.get("ok"))
    policy = "accepted" if accepted else ("refused" if verify.get("exit_code") == 4 else "error")
    findings = [f for f in record.get("findings") or [] if isinstance(f, Mapping)]
    differs = [str(f.get("message")) for f in findings if f.get("kind") == "differs"]
    # a method that raises or is gone, and a stored sample that cannot be used, are loud: nothing silent about them
    raises = [str(f.get("message")) for f in findings if f.get("kind") != "differs"]
    error = record.get("error")
    status = classify(same_version=same_version, policy_accepted=accepted, load_error=error, differs=differs,
                      raises=raises)
    return Cell(model=model, bundled=bundled, loaded=loaded, status=status, package=package, policy=policy,
                policy_problems=[str(p) for p in verify.get("problems") or []][:10],
                error=None if error is None else str(error), differs=differs, raises=raises, environment=env,
                adjustments=list(adjustments), seconds=float(record.get("seconds") or 0.0))


def _log(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def user_matrix(bundle: str | os.PathLike[str], versions: Sequence[str], *, package: str = "scikit-learn",
                key: KeyOption | None = None, installer: Installer | None = None, workdir: Path | None = None,
                keep: bool = False, log: Callable[[str], None] = _log,
                checked: CheckedBundle | None = None) -> list[Cell]:
    """The matrix of one bundle against ``versions`` of ``package``; one throw-away environment per version.
    ``checked`` is the bundle as the caller already verified it (``check_bundle``), so it is not verified twice."""
    checked = checked or check_bundle(bundle, key)
    installer = installer or Installer()
    # every requested version must exist before anything is built: a typo is a usage error, not a red cell
    resolved = [(requested, installer.resolve(requested_spec(package, requested))) for requested in versions]
    bundled = checked.version_of(package)
    owned = workdir is None
    # absolute: the workers run with another working directory (a relative --workdir gave "no such file")
    base = Path(tempfile.mkdtemp(prefix="bundler-matrix-")) if workdir is None else workdir.resolve()
    base.mkdir(parents=True, exist_ok=True)
    builder = EnvBuilder(base, installer, build_self_wheel(base), log=log)
    model = checked.path.stem
    cells = []
    try:
        for requested, exact in resolved:
            started = time.monotonic()
            plan = plan_environment(checked.pins, package, exact, dataframe_sample=checked.dataframe_sample)
            try:
                env = builder.build(f"{package}-{exact}", plan.requirements)
            except InstallError as exc:
                cells.append(Cell(model=model, bundled=bundled, loaded=exact, status=NOT_INSTALLABLE,
                                  package=package, policy="error", adjustments=plan.adjustments,
                                  error=f"cannot install the bundle's pins with {package} {exact}: "
                                        + "; ".join(exc.lines[-2:]), seconds=round(time.monotonic() - started, 3)))
                log(f"[matrix] {package} {requested}: {cells[-1].error}")
                continue
            [record] = run_workers(venv_python(env), [checked.path], base / "results", key=key)
            cell = cell_from_record(record, model=model, bundled=bundled, loaded=exact, package=package,
                                    adjustments=plan.adjustments)
            cell.seconds = round(time.monotonic() - started, 3)
            cells.append(cell)
            log(f"[matrix] {bundled} -> {exact}: {cell.status}")
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
        return {str(k): [str(r) for r in v] for k, v in data["environments"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: cannot read the reference environments: {exc}") from None


def fixture_bundles(fixtures: Path) -> list[tuple[str, str, Path]]:
    """``(bundled minor, model name, path)`` for every ``fixtures/sklearn-X.Y/<model>.mlbundle``, sorted."""
    out = []
    for directory in sorted(fixtures.glob("sklearn-*"), key=lambda p: version_key(p.name.split("-", 1)[1])):
        for bundle in sorted(directory.glob("*.mlbundle")):
            out.append((directory.name.split("-", 1)[1], bundle.stem, bundle))
    return out


def fixture_matrix(fixtures: Path, *, envdir: Path, versions: Sequence[str] | None = None,
                   installer: Installer | None = None, log: Callable[[str], None] = _log) -> list[Cell]:
    """All pairs over the committed fixtures: one environment per loading version, reused for every fixture."""
    environments = load_fixture_environments(fixtures)
    bundles = fixture_bundles(fixtures)
    if not bundles:
        raise UsageError(f"no fixtures under {fixtures} (run `nox -s fixtures` first)")
    unknown = [v for v in versions or () if v not in environments]
    if unknown:
        raise UsageError(f"no reference environment for scikit-learn {', '.join(unknown)} in "
                         f"{fixtures / 'environments.json'} (it has {', '.join(environments)})")
    errors: list[BundleError] = []
    for _, _, path in bundles:
        try:
            check_bundle(path)
        except BundleError as exc:
            errors.append(type(exc)(f"{path}: {exc.problems[0]}", problems=[f"{path}: {p}" for p in exc.problems]))
    if errors:
        # every problem of every fixture, raised as the most serious kind found (integrity, unsafe, then the rest)
        first = min(errors, key=lambda e: (3, 5).index(e.exit_code) if e.exit_code in (3, 5) else 2)
        raise type(first)(first.problems[0], problems=[line for e in errors for line in e.problems])
    loaded_versions = list(versions) if versions else sorted(environments, key=version_key)
    envdir = envdir.resolve()  # the workers run with another working directory
    builder = EnvBuilder(envdir, installer or Installer(), build_self_wheel(envdir), log=log)
    cells: list[Cell] = []
    for loaded in loaded_versions:
        started = time.monotonic()
        try:
            env = builder.build(f"sklearn-{loaded}", environments[loaded])
        except InstallError as exc:
            raise UsageError(f"cannot build the reference environment {loaded}: {exc.command}",
                             problems=[f"cannot build the reference environment {loaded}: {line}"
                                       for line in exc.lines[-3:]]) from None
        records = run_workers(venv_python(env), [b[2].resolve() for b in bundles], envdir / "results")
        for (bundled, model, _), record in zip(bundles, records, strict=True):
            # fixtures are labelled by minor; the same label means the same pinned reference environment
            cells.append(cell_from_record(record, model=model, bundled=bundled, loaded=loaded,
                                          package="scikit-learn", same_version=bundled == loaded))
        log(f"[matrix] loaded under {loaded}: {len(bundles)} bundles in {time.monotonic() - started:.1f}s")
    return cells
