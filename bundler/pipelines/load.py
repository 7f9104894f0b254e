"""``load``: verify, then deserialize the verified bytes, validate every native-backed object, re-check the sample.

Nothing is deserialized before every check of ``verify`` passed. The payload was read from the file once, into
private memory, hashed and scanned there (``verify_open(keep_payload=True)``); the restricted unpickler reads those
same bytes. Then the state validators walk the whole model (``bundler.safety.validators``), and only a model they
accept is returned, or handed to the behaviour check that calls its methods.

**Why nothing unverified is ever deserialized.** ``verify_open(keep_payload=True)`` hands back a payload only after
``_read_payload_once`` compared every digest of it (the whole SHA-256, or every chunk digest) with the signed
manifest, and after the static scan saw every opcode of those bytes; otherwise ``report.raise_for_problems()``
raises first. The unpickler reads that private buffer and nothing else, so a byte changed anywhere (the last
chunk included: ``tests/test_read_once.py``) is an ``IntegrityError`` before the first object is constructed.

**Why construction does not overlap hashing** (issue 11 asked whether it should): the payload is hashed on other
cores *while it is read and scanned*, and the scan, which must have seen every opcode before anything is built,
takes longer than the hashing on the models that have much to construct (a forest: the digests are ready before
the scan ends), while the models whose hashing dominates (one large array) have almost nothing to construct. So
building objects from already-verified chunks while later ones are hashed would save nothing measurable on these
payloads, and would let allowed constructors run on the first chunks of a bundle whose last chunk is altered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from bundler.container.archive import BundleReader
from bundler.container.manifest import Manifest
from bundler.environment.capture import InstalledVersions
from bundler.environment.policy import Policy
from bundler.errors import BehaviourDrift, EnvironmentMismatch, IntegrityError, UnsafeContent
from bundler.integrity.signing import VerifyKey
from bundler.pipelines.report import Report
from bundler.pipelines.verify import verify_open
from bundler.safety.loading import validate_loaded
from bundler.settings import Settings, resolve

__all__ = ["load", "load_with_report"]


def load(path: str | os.PathLike[str], *, key: VerifyKey | None = None, policy: Policy | str | None = None,
         trust: Iterable[str] = (), check_behaviour: bool = True, settings: Settings | None = None,
         trust_profiles: Iterable[str] = (), trust_code: bool = False, trust_record: bool = False) -> Any:
    """Verify, then deserialize under the restricted unpickler, validate the state of every native-backed object,
    and (when the bundle has a sample) check that the model still predicts it the same. Raises the error of the
    most serious problem found. ``settings`` (see ``bundler.Settings``) is applied with ``policy``/``trust`` on top,
    as in ``verify``.

    ``trust_profiles`` accepts the globals of third-party libraries (``["xgboost"]``; see
    ``bundler.safety.profiles``); ``trust_code=True`` imports the modules bundled with ``pack(..., code=...)``
    (which runs them; a signature verified against ``key`` trusts them too). ``policy="tested"`` accepts an
    environment the bundle's tested-compatibility record shows identical, when the record is trusted (signed by
    ``key``'s owner, or ``trust_record=True``); the behaviour check runs all the same, whatever the record claims."""
    model, _ = load_with_report(path, key=key, policy=policy, trust=trust, check_behaviour=check_behaviour,
                                settings=settings, trust_profiles=trust_profiles, trust_code=trust_code,
                                trust_record=trust_record)
    return model


def load_with_report(path: str | os.PathLike[str], *, key: VerifyKey | None = None,
                     policy: Policy | str | None = None, trust: Iterable[str] = (),
                     check_behaviour: bool = True, settings: Settings | None = None,
                     trust_profiles: Iterable[str] = (), trust_code: bool = False,
                     trust_record: bool = False) -> tuple[Any, Report]:
    """``load`` that also returns the report (the CLI prints it)."""
    from bundler.pipelines.code import CODE_PREFIX, install_code
    from bundler.pipelines.serializers import load_verified
    from bundler.safety.unpickler import RebuildError

    eff = resolve(settings, policy=policy, trust=trust, trust_profiles=trust_profiles)
    with BundleReader(path) as reader:
        verified = verify_open(reader, key=key, policy=eff.to_policy(), trust=eff.trust, against=None,
                               keep_payload=True, trust_profiles=eff.trust_profiles, trust_code=trust_code,
                               trust_record=trust_record)
        report = verified.report
        report.raise_for_problems()
        manifest, allow, payload = report.manifest, verified.allow, verified.payload
        # narrowing only: raise_for_problems() returned, so verification produced all three
        assert manifest is not None  # noqa: S101
        assert allow is not None  # noqa: S101
        assert payload is not None  # noqa: S101
        code = {name: data for name, data in verified.members.items() if name.startswith(CODE_PREFIX)}
        if code:  # verify_open established that the caller trusts it; these are the verified bytes
            install_code(str(reader.path), code)
        try:
            loaded = load_verified(payload.data, manifest.serializer, payload.scan, allow=allow)
        except RebuildError as exc:
            raise _rebuild_problem(exc, manifest) from None
        del payload  # the model holds what it needs; the rest of the buffer can go
        report.checked.append("deserialized")
        validate_loaded(loaded, allow)
        report.checked.append("state")
        model = loaded.obj
        if check_behaviour and manifest.sample is not None:
            _behaviour(verified.members, manifest, model, report)
        elif manifest.sample is None:
            report.notes.append("no stored sample: behaviour not checked")
        else:
            report.notes.append("behaviour check switched off")
    return model, report


def _rebuild_problem(exc: EnvironmentMismatch, manifest: Manifest) -> Exception:
    """Library code refused to rebuild an object from verified bytes. Under other versions of the frameworks than
    the bundle was made with, that is this environment's problem (exit 4); under the very same versions, the bytes
    are not what that library writes: crafted content (exit 5)."""
    installed = InstalledVersions()
    packages = manifest.environment.packages
    frameworks = {"scikit-learn", "numpy", "scipy", "joblib", *manifest.frameworks}
    pinned = [name for name in frameworks if name in packages]
    if pinned and all(installed.get(name) == packages[name] for name in pinned):
        line = exc.problems[0].replace("payload cannot be rebuilt in this environment",
                                       "payload cannot be rebuilt although this environment has the versions it was "
                                       "made with (crafted state)")
        return UnsafeContent(line, offending=["<crafted state>"])
    return exc


def _behaviour(members: dict[str, bytes], manifest: Manifest, model: Any, report: Report) -> None:
    from bundler.pipelines.behaviour import check_behaviour as _check

    def read_member(name: str) -> bytes:
        if manifest.file(name) is None or name not in members:
            raise IntegrityError(f"sample member {name!r} is not listed in the manifest")
        return members[name]

    problems = _check(model, read_member, manifest.sample or {})
    report.checked.append("behaviour")
    if problems:
        raise BehaviourDrift(problems[0], problems=problems)
