"""The child of tests/hypothesis/test_state_fuzz.py: reads length-prefixed payloads on stdin, loads each with
bundler's safety pipeline and, when accepted, calls its prediction methods on well-formed input; writes one line
per payload ("refused <class>: <reason>", "predicted", or "loaded"). A payload that crashes the loader kills this
process, which is exactly what the parent test detects."""

from __future__ import annotations

import contextlib
import os
import resource
import struct
import sys
import warnings


def main() -> int:
    import numpy as np

    from bundler.errors import BundleError
    from bundler.safety.allowlist import DEFAULT_ALLOWLIST
    from bundler.safety.loading import safe_load

    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # a runaway allocation is a MemoryError here
    warnings.simplefilter("ignore")
    X = np.random.RandomState(3).uniform(size=(20, 4))
    X[:, 3] = np.arange(20) % 4
    stdin = sys.stdin.buffer
    stdout = os.fdopen(os.dup(1), "w")  # results only: whatever the library prints goes to stderr
    os.dup2(2, 1)
    while header := stdin.read(8):
        data = bytearray(stdin.read(struct.unpack("<Q", header)[0]))
        try:
            model = safe_load(data, "pickle", DEFAULT_ALLOWLIST)
        except BundleError as exc:
            stdout.write(f"refused {type(exc).__name__}: {exc.problems[0][:200]}\n")
            stdout.flush()
            continue
        called = False
        for name in ("predict", "predict_proba", "decision_function", "transform", "score_samples",
                     "kneighbors", "apply", "decision_path"):
            method = getattr(model, name, None)
            if method is None:
                continue
            try:
                method(X)
                called = True
            except Exception:  # a Python exception is a clean outcome
                called = True
        if isinstance(model, dict) and "m" in model:
            with contextlib.suppress(Exception):
                model["m"] @ np.ones(4)
        stdout.write("predicted\n" if called else "loaded\n")
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
