"""Run hostile samples through every loading layer in *this* process and report each outcome as a JSON line.

Used by tests/test_hostile_native.py in a subprocess: a sample that crashed the loader would kill this process by
a signal, and the parent sees which sample it was working on ("start" lines) instead of losing its own process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def outcome(func: object) -> dict[str, object]:
    from bundler.errors import BundleError

    try:
        result = func()  # type: ignore[operator]
    except BundleError as exc:
        return {"class": type(exc).__name__, "exit": exc.exit_code, "problems": exc.problems}
    except Exception as exc:  # a bug: reported as such, the parent test fails on it
        return {"class": type(exc).__name__, "exit": 1, "problems": [str(exc)]}
    return {"class": None, "exit": getattr(result, "exit_code", 0),
            "problems": [p.message for p in getattr(result, "problems", [])]}


def main(argv: list[str]) -> int:
    import bundler
    from bundler.safety.allowlist import DEFAULT_ALLOWLIST
    from bundler.safety.loading import validate_loaded
    from bundler.safety.source import decompress_all
    from bundler.safety.unpickler import restricted_load_memory

    samples, work = Path(argv[0]), Path(argv[1])
    jobs = json.loads(Path(argv[2]).read_text())  # name -> {"format":..., "bundle": path of the swapped bundle}
    for name, job in jobs.items():
        print(json.dumps({"start": name}), flush=True)
        raw = (samples / name).read_bytes()
        plain = decompress_all(raw)[1]  # a compressed joblib payload: the unpickler reads what the loader inflates
        data = bytearray(plain if plain is not None else raw)

        def alone(data: bytearray = data, fmt: str = job["format"]) -> None:
            validate_loaded(restricted_load_memory(data, allow=DEFAULT_ALLOWLIST, spans=None, fmt=fmt),
                            DEFAULT_ALLOWLIST)

        results = {
            "unpickler": outcome(alone),
            "load": outcome(lambda job=job: bundler.load(job["bundle"])),
            "verify": outcome(lambda job=job: bundler.verify(job["bundle"])),
            "pack": outcome(lambda name=name: bundler.pack_file(samples / name, work / f"{name}.mlbundle")),
        }
        results["pack"]["written"] = (work / f"{name}.mlbundle").exists()
        print(json.dumps({"name": name, **results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
