"""What runs inside a test environment: ``python -m bundler.crossversion.worker OUT.json [KEY OPTION] BUNDLE``.

One process per bundle: a model loaded earlier can leave modules imported (or aliases registered) that make a later
one load when it would not on its own, and every cell must describe what a deployment loading only that bundle
would see; a crash costs only its own cell. The process runs outside any project folder, so no ``[tool.bundler]``
settings leak into "the default policy".

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


def _read_sample_member(path: str, manifest: Any) -> Any:
    """A reader of sample members that checks each against the verified manifest's SHA-256."""
    import hashlib

    from bundler.container.archive import BundleReader
    from bundler.errors import IntegrityError
    from bundler.pipelines.behaviour import MAX_BYTES

    def read(name: str) -> bytes:
        entry = manifest.file(name)
        if entry is None:
            raise IntegrityError(f"sample member {name!r} is not listed in the manifest")
        with BundleReader(path) as reader:
            data = reader.read_small(name, MAX_BYTES)
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise IntegrityError(f"sample member {name!r} does not match the manifest")
        return data

    return read


def record_for(path: str, *, key: Any = None) -> dict[str, Any]:
    """Verify (default policy), force-load (policy ``none``) and behaviour-check one bundle; a JSON-able record:
    ``environment``, ``verify`` (ok, exit_code, problems), ``error`` (why it could not be loaded, or None),
    ``findings`` (``{"method", "kind", "message"}`` each) and ``seconds``."""
    from bundler import BundleError
    from bundler import load as _load
    from bundler import verify as _verify
    from bundler.pipelines.behaviour import behaviour_findings

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
    except Exception as exc:  # a crash is a result here, not a reason to stop the matrix
        record["verify"] = {"ok": False, "exit_code": 1, "problems": [_one_line(exc)]}
    pinned = list(manifest.environment.packages) if manifest is not None else []
    record["environment"] = environment_versions(pinned)
    try:
        model = _load(path, key=key, policy="none", check_behaviour=False)
    except BundleError as exc:
        record["error"] = f"{type(exc).__name__}: {exc.problems[0]}"
        record["error_lines"] = list(exc.problems)
    except Exception as exc:  # a crash of the loaded model is a result too
        record["error"] = _one_line(exc)
    else:
        if manifest is not None and manifest.sample is not None:
            try:
                findings = behaviour_findings(model, _read_sample_member(path, manifest), manifest.sample)
                record["findings"] = [{"method": f.method, "kind": f.kind, "message": f.message} for f in findings]
            except Exception as exc:
                record["findings"] = [{"method": "sample", "kind": "sample", "message": _one_line(exc)}]
    record["seconds"] = round(time.monotonic() - started, 3)
    return record



def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 4):
        print("usage: python -m bundler.crossversion.worker OUT.json [--public-key PEM | --hmac-key-file F] BUNDLE",
              file=sys.stderr)
        return 2
    out, bundle = Path(args[0]), args[-1]
    option, key_path = (args[1], args[2]) if len(args) == 4 else (None, None)
    from bundler.errors import BundleError

    try:
        key = _key(option, key_path)
    except BundleError as exc:
        print(f"error: {exc.problems[0]}", file=sys.stderr)
        return exc.exit_code
    out.write_text(json.dumps(record_for(bundle, key=key)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
