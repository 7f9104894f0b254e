"""What runs inside a test environment: ``python -m bundler.crossversion.worker OUTDIR [KEY OPTION] BUNDLE...``.

One process per bundle: a model loaded earlier can leave modules imported (or aliases registered) that make a later
one load when it would not on its own, and every cell must describe what a deployment loading only that bundle
would see; a crash costs only its own cell. So each bundle is handled in a child forked from a parent that has only
imported what every load imports (bundler, numpy, scikit-learn's base): the imports are paid once per batch instead
of once per bundle. The process runs outside any project folder, so no ``[tool.bundler]`` settings leak into "the
default policy".

In the environment it uses the installed bundler's public API, as a deployment would:

1. ``verify`` under the **default** policy (does bundler let it through here?), with the caller's key if any;
2. ``load`` with policy ``none`` and the behaviour check off (what happens when forced?), then the behaviour check
   as findings, so that a method that now raises is told apart from outputs that silently changed.

The record it writes is plain JSON (see ``record_for``); nothing of a bundle's own failure raises here.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "record_for"]

#: Distributions whose versions every cell records besides the bundle's pins.
ALWAYS_RECORDED = ("scikit-learn", "numpy", "scipy", "joblib", "pandas", "bundler")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}" if text else type(exc).__name__


def environment_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` (``"-"`` when absent) and the Python version."""
    out: dict[str, str] = {}
    for name in sorted(set(names) | set(ALWAYS_RECORDED)):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "-"
    out["python"] = ".".join(map(str, sys.version_info[:3]))
    return out


def _key(option: str | None, path: str | None) -> Any:
    from bundler.integrity.signing import Ed25519PublicKey, HmacKey

    if option == "--public-key" and path:
        return Ed25519PublicKey.from_file(path)
    if option == "--hmac-key-file" and path:
        return HmacKey.from_file(path)
    return None


def sample_findings(path: str, model: Any, manifest: Any) -> list[dict[str, str]]:
    """The behaviour check as findings, reading the stored sample members through the safe reader, each checked
    against the verified manifest's SHA-256 (``load`` ran its own check off: here the kind of each finding counts)."""
    import hashlib

    from bundler.container.archive import BundleReader
    from bundler.errors import IntegrityError
    from bundler.pipelines.behaviour import MAX_BYTES, behaviour_findings

    with BundleReader(path) as reader:
        def read(name: str) -> bytes:
            entry = manifest.file(name)
            if entry is None:
                raise IntegrityError(f"sample member {name!r} is not listed in the manifest")
            data = reader.read_small(name, MAX_BYTES)
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                raise IntegrityError(f"sample member {name!r} does not match the manifest")
            return data

        findings = behaviour_findings(model, read, manifest.sample)
    return [{"method": f.method, "kind": f.kind, "message": f.message} for f in findings]


def record_for(path: str, *, key: Any = None) -> dict[str, Any]:
    """Verify (default policy), force-load (policy ``none``) and behaviour-check one bundle; a JSON-able record:
    ``environment``, ``verify`` (ok, exit_code, problems), ``error`` (why it could not be loaded, or None),
    ``findings`` (``{"method", "kind", "message"}`` each) and ``seconds``."""
    from bundler import BundleError
    from bundler import load as _load
    from bundler import verify as _verify

    started = time.monotonic()
    record: dict[str, Any] = {"path": path, "error": None, "findings": []}
    manifest = None
    try:
        report = _verify(path, key=key, policy="default")
        manifest = report.manifest
        record["verify"] = {"ok": report.ok, "exit_code": report.exit_code,
                            "problems": [p.message for p in report.problems]}
    except BundleError as exc:
        record["verify"] = {"ok": False, "exit_code": exc.exit_code, "problems": exc.problems}
    except Exception as exc:  # noqa: BLE001 - a crash is a result here, not a reason to stop the matrix
        record["verify"] = {"ok": False, "exit_code": 1, "problems": [_one_line(exc)]}
    pinned = list(manifest.environment.packages) if manifest is not None else []
    record["environment"] = environment_versions(pinned)
    try:
        model = _load(path, key=key, policy="none", check_behaviour=False)
    except BundleError as exc:
        record["error"] = f"{type(exc).__name__}: {exc.problems[0]}"
        record["error_lines"] = list(exc.problems)
    except Exception as exc:  # noqa: BLE001 - a crash of the loaded model is a result too
        record["error"] = _one_line(exc)
    else:
        if manifest is not None and manifest.sample is not None:
            try:
                record["findings"] = sample_findings(path, model, manifest)
            except Exception as exc:  # noqa: BLE001 - the behaviour check failing is a result of the cell too
                record["findings"] = [{"method": "sample", "kind": "sample", "message": _one_line(exc)}]
    record["seconds"] = round(time.monotonic() - started, 3)
    return record



#: Seconds one bundle may take in its process before it is stopped and reported as hung.
BUNDLE_TIMEOUT = 900.0


def _baseline() -> None:
    """Import what every load imports anyway (bundler's verify/load path, numpy, scikit-learn's base), once per
    batch: a forked child starts from this state, which is what a deployment has before it loads its model. No
    model is ever loaded in the parent, so no child can see modules another bundle's load imported."""
    import contextlib
    import importlib

    for name in ("bundler", "bundler.pipelines.verify", "bundler.pipelines.load", "bundler.pipelines.behaviour",
                 "numpy", "sklearn.base"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _crashed(path: str, why: str) -> dict[str, Any]:
    return {"path": path, "environment": {}, "verify": {"ok": False, "exit_code": 1, "problems": []},
            "error": f"the loading process {why}", "findings": [], "seconds": 0.0}


def _run_forked(path: str, out: Path, key: Any) -> None:
    """``record_for(path)`` in a forked child (a fresh process for this bundle alone), its record written to
    ``out``; a child that dies by a signal, exits early or hangs gets a record saying so."""
    import os
    import signal

    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: one bundle, then exit without running the parent's cleanup
        code = 0
        try:
            out.write_text(json.dumps(record_for(path, key=key)), encoding="utf-8")
        except BaseException:  # noqa: BLE001 - reported by the parent as a crash of this bundle's process
            code = 70
        finally:
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > BUNDLE_TIMEOUT:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            out.write_text(json.dumps(_crashed(path, f"hung for more than {BUNDLE_TIMEOUT:.0f}s")), encoding="utf-8")
            return
        time.sleep(0.02)
    if os.WIFSIGNALED(status):
        out.write_text(json.dumps(_crashed(path, f"crashed: signal {os.WTERMSIG(status)}")), encoding="utf-8")
    elif os.waitstatus_to_exitcode(status) != 0 or not out.is_file():
        out.write_text(json.dumps(_crashed(path, f"crashed: exit status {os.waitstatus_to_exitcode(status)}")),
                       encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """``OUTDIR [--public-key PEM | --hmac-key-file F] BUNDLE...``: ``OUTDIR/<i>.json`` is the record of the i-th
    bundle, each made in a process of its own (forked from a parent that imported the baseline once; a new
    interpreter per bundle where there is no fork)."""
    import os
    import subprocess

    args = list(sys.argv[1:] if argv is None else argv)
    option, key_path = (args[1], args[2]) if len(args) > 2 and args[1] in ("--public-key", "--hmac-key-file") \
        else (None, None)
    bundles = args[3:] if option else args[1:]
    if not bundles:
        print("usage: python -m bundler.crossversion.worker OUTDIR [--public-key PEM | --hmac-key-file F] BUNDLE...",
              file=sys.stderr)
        return 2
    outdir = Path(args[0])
    outdir.mkdir(parents=True, exist_ok=True)
    from bundler.errors import BundleError

    try:
        key = _key(option, key_path)
    except BundleError as exc:
        print(f"error: {exc.problems[0]}", file=sys.stderr)
        return exc.exit_code
    if hasattr(os, "fork"):
        _baseline()
    for index, path in enumerate(bundles):
        out = outdir / f"{index}.json"
        if hasattr(os, "fork"):
            _run_forked(path, out, key)
            continue
        one = [sys.executable, "-m", "bundler.crossversion.worker", str(outdir / f"single-{index}"),
               *(args[1:3] if option else []), path]
        proc = subprocess.run(one, capture_output=True, text=True, timeout=BUNDLE_TIMEOUT, check=False)
        single = outdir / f"single-{index}" / "0.json"
        if proc.returncode == 0 and single.is_file():
            single.replace(out)
        else:
            out.write_text(json.dumps(_crashed(path, f"crashed: exit status {proc.returncode}")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
