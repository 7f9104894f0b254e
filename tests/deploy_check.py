"""``nox -s deploy``: every model kind, packed with a sample through the API and the CLI, verified, loaded and
behaviour-checked in a fresh virtual environment made only from the bundle's requirements.txt plus bundler.

This is the claim of the README ("``pip install -r requirements.txt`` is enough") tested the expensive way: real
environments, real installs. Bundles with the same requirements share one environment (the pins are all that
defines it). Each environment gets ``pip install --only-binary :all: -r requirements.txt bundler.whl`` and nothing
else; then, in it, ``bundler verify``, ``bundler load`` (which runs the behaviour check) and ``bundler requirements``
must succeed for every bundle of the group. Exit status 0 only when every bundle passed everywhere.

    python tests/deploy_check.py --workdir .nox/deploy-envs [--kinds text dataframe ...] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        cmd, capture_output=True, text=True, check=False, **kwargs)
    return done


def pack_all(kinds: list[str], folder: Path) -> list[Path]:
    """Each kind twice: ``bundler.pack`` of the object with its sample; ``bundler pack`` of a file, sample file."""
    import joblib

    import bundler
    from tests.model_kinds import make

    bundles = []
    for name in kinds:
        kind = make(name)
        api = folder / f"{name}.api.mlbundle"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bundler.pack(kind.model, api, sample=kind.sample)
        source = folder / f"{name}.joblib"
        joblib.dump(kind.model, source)
        sample_dir = folder / f"{name}-sample"
        sample_dir.mkdir(exist_ok=True)
        sample = kind.write_sample(sample_dir)
        cli = folder / f"{name}.cli.mlbundle"
        result = _run([sys.executable, "-m", "bundler", "pack", str(source), "-o", str(cli), "--sample", str(sample),
                       "--no-config", "-q"])
        if result.returncode != 0:
            raise SystemExit(f"bundler pack failed for {name}: {result.stderr}")
        bundles += [api, cli]
    return bundles


def build_wheel(folder: Path) -> Path:
    out = folder / "wheel"
    shutil.rmtree(out, ignore_errors=True)
    result = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)])
    if result.returncode != 0:
        raise SystemExit(f"cannot build the bundler wheel: {result.stderr}")
    (wheel,) = out.glob("bundler-*.whl")
    return wheel


def requirements_of(bundle: Path) -> str:
    import bundler
    from bundler.pipelines.verify import read_member_text

    bundler.verify(bundle).raise_for_problems()
    return read_member_text(bundle, "requirements.txt")


def make_env(folder: Path, requirements: str, wheel: Path) -> Path:
    """A fresh venv (no system site-packages) with exactly the bundle's pins and bundler installed."""
    key = hashlib.sha256(requirements.encode()).hexdigest()[:12]
    env = folder / f"env-{key}"
    python = env / "bin" / "python"
    marker = env / "requirements.txt"
    if marker.exists() and marker.read_text() == requirements and python.exists():
        return env
    shutil.rmtree(env, ignore_errors=True)
    result = _run([sys.executable, "-m", "venv", str(env)])
    if result.returncode != 0:
        raise SystemExit(f"cannot create {env}: {result.stderr}")
    req = folder / f"requirements-{key}.txt"
    req.write_text(requirements)
    result = _run([str(python), "-m", "pip", "install", "--quiet", "--only-binary", ":all:", "-r", str(req),
                   str(wheel)])
    if result.returncode != 0:
        raise SystemExit(f"pip install -r requirements.txt + bundler failed in {env}:\n{result.stderr}")
    marker.write_text(requirements)
    return env


def check_in(env: Path, bundle: Path, requirements: str) -> list[str]:
    """Problems of one bundle in one environment (empty: verified, loaded, behaviour check passed)."""
    bundler_cli = [str(env / "bin" / "python"), "-m", "bundler"]
    problems = []
    for verb in ("verify", "load", "requirements"):
        result = _run([*bundler_cli, verb, str(bundle), "--no-config"], cwd=env)
        if result.returncode != 0:
            problems.append(f"{verb}: exit {result.returncode}: {result.stderr.strip()}")
        elif verb == "load" and "behaviour check passed" not in result.stdout:
            problems.append(f"load: no behaviour check ({result.stdout.strip()})")
        elif verb == "requirements" and result.stdout != requirements:
            problems.append("requirements: printed something other than the bundle's requirements.txt")
    return problems


def main(argv: list[str] | None = None) -> int:
    from tests.model_kinds import KINDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".nox" / "deploy-envs")
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=sorted(KINDS))
    parser.add_argument("--keep", action="store_true", help="keep the environments (reused when the pins match)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    args.workdir.mkdir(parents=True, exist_ok=True)
    bundles_dir = args.workdir / "bundles"
    shutil.rmtree(bundles_dir, ignore_errors=True)
    bundles_dir.mkdir()
    bundles = pack_all(args.kinds, bundles_dir)
    wheel = build_wheel(args.workdir)
    groups: dict[str, list[Path]] = {}
    for bundle in bundles:
        groups.setdefault(requirements_of(bundle), []).append(bundle)
    failures = 0
    for requirements, members in groups.items():
        pins = ", ".join(line.split("==")[0] for line in requirements.split())
        print(f"== environment for {len(members)} bundles: {pins}", flush=True)
        env = make_env(args.workdir, requirements, wheel)
        for bundle in members:
            problems = check_in(env, bundle, requirements)
            failures += bool(problems)
            print(f"{'ok  ' if not problems else 'FAIL'} {bundle.name}", flush=True)
            for line in problems:
                print(f"     {line}", flush=True)
        if not args.keep:
            shutil.rmtree(env, ignore_errors=True)
    print(f"{len(bundles) - failures} of {len(bundles)} bundles verified, loaded and passed their behaviour check in "
          f"{len(groups)} fresh environments ({time.monotonic() - started:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
