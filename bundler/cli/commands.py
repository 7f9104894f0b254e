"""The verbs of the command line: turn flags into library calls and results into output. No checks of their own:
everything a verb decides comes from ``bundler.pipelines`` and the one ``Settings`` object built here."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bundler.display import printable
from bundler.errors import Hint, UsageError
from bundler.findings import Kind

__all__ = [
    "cmd_demo",
    "cmd_env",
    "cmd_inspect",
    "cmd_keygen",
    "cmd_load",
    "cmd_pack",
    "cmd_requirements",
    "cmd_verify",
    "err",
    "hint_lines",
    "settings_from",
]

if TYPE_CHECKING:
    from bundler.environment.tested import CompatRecord
    from bundler.pipelines.report import Report
    from bundler.settings import Settings


def err(line: str) -> None:
    print(f"bundler: {printable(line)}", file=sys.stderr)


def hint_lines(hints: Sequence[Hint]) -> None:
    for hint in hints:
        err(f"hint: {hint.render('cli')}")


def settings_from(args: argparse.Namespace) -> Settings:
    """``[tool.bundler]`` (the nearest pyproject.toml, ``--config FILE``, or nothing with ``--no-config``) with the
    flags on top: ``--policy`` replaces the file's whole policy table, ``--allow`` one package's rule, ``--trust``
    and ``--trust-profile`` add names. This is the only place the command line reads configuration."""
    from bundler.settings import Settings

    if getattr(args, "no_config", False):
        base = Settings()
    elif getattr(args, "config", None):
        base = Settings.from_pyproject(args.config)
    else:
        base = Settings.discover()
    return base.merged(policy=getattr(args, "policy", None), allow=dict(getattr(args, "allow", []) or []),
                       trust=getattr(args, "trust", []) or [],
                       trust_profiles=getattr(args, "trust_profile", []) or [])


def _verify_key(args: argparse.Namespace) -> Any:
    from bundler.integrity.signing import Ed25519PublicKey, HmacKey

    if getattr(args, "public_key", None):
        return Ed25519PublicKey.from_file(args.public_key)
    if getattr(args, "hmac_key_file", None):
        return HmacKey.from_file(args.hmac_key_file)
    return None


def _print_report(report: Report, args: argparse.Namespace, success: str) -> int:
    if getattr(args, "json", False):
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return int(report.exit_code)
    if not args.quiet:
        for note in report.notes:
            err(f"note: {note}")
    if report.ok:
        if not args.quiet and success:
            print(printable(success))
        return 0
    width = max(len(p.kind.value) for p in report.problems)
    for p in report.problems:
        err(f"{p.kind.value.upper():<{width}}  {p.message}")
    hint_lines(report.hints())
    err(f"refused: {len(report.problems)} problem(s) found (exit {report.exit_code})")
    return int(report.exit_code)


def cmd_verify(args: argparse.Namespace) -> int:
    from bundler.pipelines.verify import verify

    report = verify(args.bundle, key=_verify_key(args), settings=settings_from(args), against=args.against,
                    trust_code=args.trust_code, trust_record=args.trust_record)
    m = report.manifest
    what = f"{m.model_class} ({m.serializer}, bundled {m.created})" if m else ""
    where = f" against {args.against}" if args.against else ""
    return _print_report(report, args, f"OK  {args.bundle}: {what} verified{where}; nothing was deserialized")


def cmd_requirements(args: argparse.Namespace) -> int:
    """Verify exactly as ``verify`` does; on success print the verified pins (the manifest's ``requirements``,
    which the verification checked against ``requirements.txt`` and the signature) and nothing else on stdout."""
    from bundler.pipelines.verify import verify

    report = verify(args.bundle, key=_verify_key(args), settings=settings_from(args), against=args.against,
                    trust_code=args.trust_code, trust_record=args.trust_record)
    code = _print_report(report, args, "")
    if code != 0:
        if report.problems and all(p.kind is Kind.ENVIRONMENT for p in report.problems):
            hint_lines([Hint("to print the pins of a bundle for an environment that does not have them yet, check "
                             "them against that environment or report differences without refusing",
                             api="verify(path, against=FILE) or verify(path, policy='none')",
                             cli="--against FILE or --policy none")])
        return code
    assert report.manifest is not None  # noqa: S101 - type narrowing of what the previous step established
    lines = report.manifest.requirements
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from bundler.pipelines.load import load_with_report

    model, report = load_with_report(args.bundle, key=_verify_key(args), settings=settings_from(args),
                                     check_behaviour=not args.no_behaviour_check, trust_code=args.trust_code,
                                     trust_record=args.trust_record)
    m = report.manifest
    behaviour = "behaviour check passed" if "behaviour" in report.checked else "behaviour not checked"
    return _print_report(report, args, f"OK  {args.bundle}: loaded {type(model).__module__}."
                                       f"{type(model).__qualname__} ({m.serializer if m else '?'}); {behaviour}")


def cmd_inspect(args: argparse.Namespace) -> int:
    from bundler.pipelines.verify import inspect, read_record

    manifest = inspect(args.bundle)
    record = read_record(args.bundle)
    note = "NOT VERIFIED: this is what the bundle claims; run 'bundler verify' to check it"
    if args.json:
        print(json.dumps({"verified": False, "note": note, "manifest": manifest.model_dump(mode="json"),
                          "tested": None if record is None else record.model_dump(mode="json")},
                         indent=2, sort_keys=True))
        return 0
    err(f"note: {note}")
    env = manifest.environment
    sample = manifest.sample
    rows = [
        ("model", manifest.model_class),
        ("serializer", manifest.serializer),
        ("created", manifest.created),
        ("bundler", manifest.bundler_version),
        ("python", f"{env.implementation} {env.python_version} on {env.platform}/{env.machine}"),
        ("requirements", ", ".join(manifest.requirements) or "-"),
        ("frameworks", ", ".join(manifest.frameworks) or "-"),
        ("globals", str(len(manifest.globals))),
        ("sample", _describe_sample(sample) if sample else "no"),
    ]
    rows += [(f"file {f.path}", f"{f.size} bytes sha256:{f.sha256[:16]}...") for f in manifest.files]
    rows += [(f"meta {k}", json.dumps(v)) for k, v in sorted(manifest.metadata.items())]
    width = max(len(r[0]) for r in rows)
    for key, value in rows:
        print(printable(f"{key:<{width}}  {value}"))
    if record is not None:
        _print_record(record, manifest.environment.packages)
    return 0


def _print_record(record: CompatRecord, pinned: dict[str, str]) -> None:
    """The tested-compatibility record as a small table: one row per tested environment."""
    from bundler.environment.tested import TESTED_NAME

    print(f"\ntested environments ({TESTED_NAME}, {len(record.environments)}; NOT VERIFIED):")
    table = [("environment", "outcome", "default policy", "behaviour check", "python", "bundler", "tested at")]
    for e in record.environments:
        b = e.behaviour
        checked = f"{len(b.methods)} methods x {b.rows if b.rows is not None else '?'} rows"
        lines = b.differs + b.raises + ([b.error] if b.error else [])
        table.append((e.label(pinned), e.outcome, e.default_policy,
                      checked + (f": {lines[0]}" if lines else ": same"), e.python, e.bundler_version, e.tested_at))
    shown = [[printable(cell) for cell in row] for row in table]  # every cell but the header's is the bundle's
    widths = [max(len(row[i]) for row in shown) for i in range(len(shown[0]))]
    for row in shown:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _describe_sample(sample: dict[str, Any]) -> str:
    given_input, given_methods = sample.get("input"), sample.get("methods")
    spec: dict[str, Any] = given_input if isinstance(given_input, dict) else {}
    methods: dict[str, Any] = given_methods if isinstance(given_methods, dict) else {}
    return (f"{sample.get('rows', '?')} rows, {spec.get('kind', '?')} (layout {sample.get('format', '?')}); "
            f"checks {', '.join(sorted(methods)) or '-'}")


def _parse_meta(items: Sequence[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    bad = [i for i in items if "=" not in i or not i.split("=", 1)[0]]
    if bad:
        raise UsageError(f"--meta takes KEY=VALUE, got {bad[0]!r}", problems=[f"--meta takes KEY=VALUE, got {b!r}"
                                                                             for b in bad])
    for item in items:
        key, value = item.split("=", 1)
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    return meta


def _signer(args: argparse.Namespace) -> Any:
    from bundler.integrity.signing import Ed25519Signer, HmacKey

    if args.sign_key:
        return Ed25519Signer.from_file(args.sign_key)
    if args.hmac_key_file:
        return HmacKey.from_file(args.hmac_key_file)
    return None


def _requirement_pins(args: argparse.Namespace) -> list[str]:
    """``--requirement`` pins and the pins of every ``-r FILE``; a ``--requirement`` that names a file gets told
    about ``-r`` (pip's ``--requirement`` takes a file, ours takes one pin)."""
    from pathlib import Path

    from bundler.environment.requirements import parse_pins, read_requirements_file

    for value in args.requirement:
        if "==" not in value and Path(value).is_file():
            raise UsageError(f"--requirement takes one pin name==version; {value!r} is a file",
                             hints=[Hint("to read a requirements file", cli=f"-r {value}",
                                         api="bundler.environment.requirements.read_requirements_file(path)")])
    parse_pins(args.requirement)  # report malformed pins before reading files
    pins = list(args.requirement)
    for path in args.requirements_file:
        pins += read_requirements_file(path)
    return pins


def cmd_pack(args: argparse.Namespace) -> int:
    from bundler.pipelines.pack import pack_file

    if args.output == "-":
        raise UsageError("-o -: a bundle is written atomically to a file, never to standard output; give a file name")
    settings = settings_from(args)
    signer = _signer(args)
    pins = _requirement_pins(args)
    sample = None
    if args.sample:
        from bundler.cli.sample_files import read_sample

        sample = read_sample(args.sample)
    manifest = pack_file(args.model_file, args.output, serializer=args.serializer, sample=sample, signer=signer,
                         metadata=_parse_meta(args.meta), requirements=pins,
                         force_requirements=args.force_requirement, settings=settings, lock=args.lock,
                         code=args.code)
    scheme = "unsigned: checksummed only" if signer is None else f"signed {signer.scheme}, key id {signer.key_id}"
    if args.json:
        print(json.dumps({"ok": True, "path": args.output, "signature": scheme,
                          "manifest": manifest.model_dump(mode="json")}, indent=2, sort_keys=True))
    elif not args.quiet:
        print(f"wrote {args.output}: {manifest.model_class} ({manifest.serializer}), "
              f"{len(manifest.requirements)} pinned requirements, {scheme}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from bundler.integrity.signing import Ed25519Signer, generate_keypair

    private, public = generate_keypair(args.output)
    key_id = Ed25519Signer.from_file(private).key_id
    if not args.quiet:
        print(f"wrote {private} (private, mode 0600: keep it secret) and {public} (public); key id {key_id}")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from bundler.environment.capture import capture_interpreter, installed_distributions

    info: dict[str, Any] = {**capture_interpreter(), "packages": installed_distributions()}
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    for key in ("python_version", "implementation", "platform", "machine"):
        print(f"{key:<15} {info[key]}")
    for name, version in info["packages"].items():
        print(f"{name}=={version}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bundler.cli.demo import run_demo

    return run_demo(args.dir, quiet=args.quiet)
