"""``load``: verify, then deserialize under the restricted unpickler, validate, and re-check the stored sample."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from bundler.container.archive import BundleReader
from bundler.container.manifest import Manifest
from bundler.environment.policy import Policy
from bundler.errors import BehaviourDrift, IntegrityError
from bundler.integrity.signing import VerifyKey
from bundler.pipelines.payload import validate_structures
from bundler.pipelines.report import Report
from bundler.pipelines.verify import resolve_policy, verify_open

__all__ = ["load", "load_with_report"]


def load(path: str | os.PathLike[str], *, key: VerifyKey | None = None, policy: Policy | str | None = None,
         trust: Iterable[str] = (), check_behaviour: bool = True) -> Any:
    """Verify, then deserialize under the restricted unpickler, validate tree structures, and (when the bundle has a
    sample) check that the model still predicts it the same. Raises the error of the most serious problem found."""
    model, _ = load_with_report(path, key=key, policy=policy, trust=trust, check_behaviour=check_behaviour)
    return model


def load_with_report(path: str | os.PathLike[str], *, key: VerifyKey | None = None,
                     policy: Policy | str | None = None, trust: Iterable[str] = (),
                     check_behaviour: bool = True) -> tuple[Any, Report]:
    """``load`` that also returns the report (the CLI prints it)."""
    pol = resolve_policy(policy)
    with BundleReader(path) as reader:
        report, allow = verify_open(reader, key=key, policy=pol, trust=trust, against=None)
        report.raise_for_problems()
        manifest = report.manifest
        assert manifest is not None and allow is not None
        payload = manifest.payload[0]
        with reader.open_member(payload) as stream:
            from bundler.pipelines.serializers import load as _deserialize

            model = _deserialize(stream, manifest.serializer, allow=allow)
        report.checked.append("deserialized")
        validate_structures(model)
        if check_behaviour and manifest.sample is not None:
            _behaviour(reader, manifest, model, report)
        elif manifest.sample is None:
            report.notes.append("no stored sample: behaviour not checked")
        else:
            report.notes.append("behaviour check switched off")
    return model, report


def _behaviour(reader: BundleReader, manifest: Manifest, model: Any, report: Report) -> None:
    from bundler.pipelines.behaviour import check_behaviour as _check

    def read_member(name: str) -> bytes:
        if manifest.file(name) is None:
            raise IntegrityError(f"sample member {name!r} is not listed in the manifest")
        return reader.read_small(name, 64 << 20)

    problems = _check(model, read_member, manifest.sample or {})
    report.checked.append("behaviour")
    if problems:
        raise BehaviourDrift(problems[0], problems=problems)
