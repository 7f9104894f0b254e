"""The ``bundler`` command line: argument parsing, output and exit codes only; the work is in ``bundler.pipelines``.

Every user-facing failure is one line per problem on stderr and the exit code of DESIGN.md; a traceback appears only
with ``--debug``. With ``--json``, stdout carries exactly one JSON document, on success and on failure alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from bundler._version import __version__
from bundler.errors import EXIT_INTERNAL, EXIT_USAGE, BundleError, UnsafeContent, UsageError

PROG = "bundler"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2 (never a traceback)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _err(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    text = " ".join(str(message).split())
    _err(f"warning: {text}")


# -- shared options -------------------------------------------------------------------------------------------------
def _add_key_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--public-key", metavar="PEM", help="require a valid Ed25519 signature from this public key")
    g.add_argument("--hmac-key-file", metavar="F", help="require a valid HMAC-SHA256 signature with this secret")


def _add_policy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", choices=("default", "exact", "minor", "major", "none"),
                   help="how installed versions must match the bundle's pins (default: 'default', or "
                        "[tool.bundler.policy] in pyproject.toml)")
    p.add_argument("--allow", nargs=2, action="append", metavar=("NAME", "RULE"), default=[],
                   help="per-package rule: exact|minor|major|none or a specifier such as '>=1.5,<1.8'")
    p.add_argument("--trust", action="append", default=[], metavar="NAME",
                   help="accept this global (module.qualname) in the payload although the default allowlist does not")
    _add_profile_option(p)
    p.add_argument("--trust-code", action="store_true",
                   help="import the modules bundled with --code (this runs them; a verified signature also trusts "
                        "them)")


def _add_profile_option(p: argparse.ArgumentParser) -> None:
    from bundler.safety.profiles import PROFILES

    p.add_argument("--trust-profile", action="append", default=[], metavar="NAME", choices=sorted(PROFILES),
                   help="accept the globals a third-party model library pickles (its native model state is still "
                        f"validated): {', '.join(sorted(PROFILES))}")


def _verify_key(args: argparse.Namespace) -> Any:
    from bundler.integrity.signing import Ed25519PublicKey, HmacKey

    if getattr(args, "public_key", None):
        return Ed25519PublicKey.from_file(args.public_key)
    if getattr(args, "hmac_key_file", None):
        return HmacKey.from_file(args.hmac_key_file)
    return None


def _settings(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The policy and the trusted globals: ``[tool.bundler]`` from pyproject.toml, overridden by the flags."""
    from bundler.environment.policy import Policy
    from bundler.settings import load_config

    config = load_config()
    policy = Policy.of(args.policy or config.policy, {**config.overrides, **dict(args.allow)})
    return policy, [*config.trust, *args.trust]


def _profiles(args: argparse.Namespace) -> list[str]:
    """Trust profiles: ``[tool.bundler] trust-profiles`` plus ``--trust-profile`` flags."""
    from bundler.settings import load_config

    return [*load_config().trust_profiles, *getattr(args, "trust_profile", [])]


# -- verbs ----------------------------------------------------------------------------------------------------------
def _print_report(report: Any, args: argparse.Namespace, success: str) -> int:
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return int(report.exit_code)
    if not args.quiet:
        for note in report.notes:
            _err(f"note: {note}")
    if report.ok:
        if not args.quiet:
            print(success)
        return 0
    width = max(len(p.kind) for p in report.problems)
    for p in report.problems:
        _err(f"{p.kind.upper():<{width}}  {p.message}")
    _trust_hint([p.package for p in report.problems if p.kind == "unsafe" and p.package])
    if any(p.package == "<bundled code>" for p in report.problems):
        _err("hint: only if you trust the bundle's code: --trust-code (or sign bundles and load with the key)")
    _err(f"refused: {len(report.problems)} problem(s) found (exit {report.exit_code})")
    return int(report.exit_code)


def _trust_hint(names: Sequence[str]) -> None:
    """How a user who trusts the bundle's origin would accept refused globals (never for crafted state)."""
    from bundler.safety.profiles import PROFILES, cli_hint, profiles_for

    trustable = sorted({n for n in names if not n.startswith(("<", "model"))})
    suggested = profiles_for(trustable)
    if suggested:
        _err(f"hint: {cli_hint(suggested)}")
        covered = set().union(*(PROFILES[s].names for s in suggested))
        trustable = [n for n in trustable if n not in covered]
    if trustable:
        flags = " ".join(f"--trust {n}" for n in trustable)
        _err(f"hint: only if you trust where this came from: {flags} (or sign bundles and load with the key)")


def cmd_verify(args: argparse.Namespace) -> int:
    from bundler.pipelines.verify import verify

    against = None
    if args.against:
        from bundler.environment.targets import read_target

        against = read_target(args.against)
    policy, trust = _settings(args)
    report = verify(args.bundle, key=_verify_key(args), policy=policy, trust=trust, against=against,
                    trust_profiles=_profiles(args), trust_code=args.trust_code)
    m = report.manifest
    what = f"{m.model_class} ({m.serializer}, bundled {m.created})" if m else ""
    where = f" against {args.against}" if args.against else ""
    return _print_report(report, args, f"OK  {args.bundle}: {what} verified{where}; nothing was deserialized")


def cmd_load(args: argparse.Namespace) -> int:
    from bundler.pipelines.load import load_with_report

    policy, trust = _settings(args)
    model, report = load_with_report(args.bundle, key=_verify_key(args), policy=policy, trust=trust,
                                     check_behaviour=not args.no_behaviour_check, trust_profiles=_profiles(args),
                                     trust_code=args.trust_code)
    m = report.manifest
    behaviour = "behaviour check passed" if "behaviour" in report.checked else "behaviour not checked"
    return _print_report(report, args, f"OK  {args.bundle}: loaded {type(model).__module__}."
                                       f"{type(model).__qualname__} ({m.serializer if m else '?'}); {behaviour}")


def cmd_inspect(args: argparse.Namespace) -> int:
    from bundler.pipelines.verify import inspect

    manifest = inspect(args.bundle)
    note = "NOT VERIFIED: this is what the bundle claims; run 'bundler verify' to check it"
    if args.json:
        print(json.dumps({"verified": False, "note": note, "manifest": manifest.model_dump(mode="json")},
                         indent=2, sort_keys=True))
        return 0
    _err(f"note: {note}")
    env = manifest.environment
    rows = [
        ("model", manifest.model_class),
        ("serializer", manifest.serializer),
        ("created", manifest.created),
        ("bundler", manifest.bundler_version),
        ("python", f"{env.implementation} {env.python_version} on {env.platform}/{env.machine}"),
        ("requirements", ", ".join(manifest.requirements) or "-"),
        ("frameworks", ", ".join(manifest.frameworks) or "-"),
        ("globals", str(len(manifest.globals))),
        ("sample", "yes" if manifest.sample else "no"),
    ]
    rows += [(f"file {f.path}", f"{f.size} bytes sha256:{f.sha256[:16]}...") for f in manifest.files]
    rows += [(f"meta {k}", json.dumps(v)) for k, v in sorted(manifest.metadata.items())]
    width = max(len(r[0]) for r in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


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


def _read_sample(path: str) -> Any:
    from bundler.container.archive import check_input_file

    p = check_input_file(path)
    import numpy as np

    try:
        if p.suffix == ".npy":
            return np.load(p, allow_pickle=False)
        if p.suffix == ".csv":
            return np.loadtxt(p, delimiter=",", ndmin=2)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{p}: cannot read sample ({exc})") from None
    raise UsageError(f"{p}: a sample must be a .npy (no pickle) or a numeric .csv file")


def _signer(args: argparse.Namespace) -> Any:
    from bundler.integrity.signing import Ed25519Signer, HmacKey

    if args.sign_key:
        return Ed25519Signer.from_file(args.sign_key)
    if args.hmac_key_file:
        return HmacKey.from_file(args.hmac_key_file)
    return None


def cmd_pack(args: argparse.Namespace) -> int:
    from bundler.pipelines.pack import pack_file

    signer = _signer(args)
    sample = _read_sample(args.sample) if args.sample else None
    manifest = pack_file(args.model_file, args.output, serializer=args.serializer, sample=sample, signer=signer,
                         metadata=_parse_meta(args.meta), requirements=args.requirement, trust=args.trust,
                         lock=args.lock, code=args.code, trust_profiles=_profiles(args))
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


# -- parser ---------------------------------------------------------------------------------------------------------
def _add_checking_verb(sub: Any, common: _Parser, name: str,
                       func: Callable[[argparse.Namespace], int], help_text: str) -> _Parser:
    """``verify`` and ``load`` share the bundle argument, the key and policy options and ``--json``."""
    p: _Parser = sub.add_parser(name, help=help_text, parents=[common])
    p.add_argument("bundle")
    _add_key_options(p)
    _add_policy_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON report on stdout")
    p.set_defaults(func=func)
    return p


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser. ``argv`` lets the (heavier) ``matrix`` verb be registered only when it can be needed, so that
    ``bundler verify`` starts fast."""
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    common.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    parser = _Parser(prog=PROG, description="Pack a trained model into a verifiable bundle; verify it before loading.",
                     parents=[common])
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("pack", help="bundle an existing .joblib/.pkl/.skops model file", parents=[common])
    p.add_argument("model_file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mlbundle")
    p.add_argument("--serializer", choices=("joblib", "pickle", "skops"),
                   help="the payload's format (default: detected from the file's content)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sign-key", metavar="PEM", help="sign with this Ed25519 private key (see 'bundler keygen')")
    g.add_argument("--hmac-key-file", metavar="F", help="sign with HMAC-SHA256 using the secret in this file")
    p.add_argument("--sample", metavar="FILE", help="input sample (.npy or numeric .csv) for the behaviour check")
    p.add_argument("--requirement", action="append", default=[], metavar="REQ", help="add or override a pin name==ver")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="user metadata (VALUE may be JSON)")
    p.add_argument("--trust", action="append", default=[], metavar="NAME", help="accept this global in the file")
    _add_profile_option(p)
    p.add_argument("--code", action="append", default=[], metavar="MODULE.py|PKGDIR",
                   help="bundle this module or package of your own (imported at load only when trusted)")
    p.add_argument("--lock", action="store_true", help="also write pylock.toml (PEP 751) into the bundle")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=cmd_pack)

    p = _add_checking_verb(sub, common, "verify", cmd_verify,
                           "check signature, hashes, environment and content; never deserializes")
    p.add_argument("--against", metavar="FILE",
                   help="check the pins against this requirements.txt / pip freeze output / pylock.toml instead of "
                        "the running environment")

    p = _add_checking_verb(sub, common, "load", cmd_load,
                           "verify, deserialize restrictedly, and re-check the stored sample")
    p.add_argument("--no-behaviour-check", action="store_true", help="do not re-predict the stored sample")

    p = sub.add_parser("inspect", help="show the manifest (NOT verified)", parents=[common])
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("keygen", help="write an Ed25519 key pair PREFIX.pem / PREFIX.pub.pem", parents=[common])
    p.add_argument("-o", "--output", required=True, metavar="PREFIX")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("env", help="the running environment as a manifest would record it", parents=[common])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("demo", help="train, bundle, verify, load, and show refusals; no network", parents=[common])
    p.add_argument("--dir", default=None, help="keep the demo's files here (default: a temporary folder)")
    p.set_defaults(func=cmd_demo)

    verbs = {"pack", "verify", "load", "inspect", "keygen", "env", "demo"}
    first_verb = next((a for a in (argv or []) if not a.startswith("-")), None)
    if argv is None or first_verb not in verbs:
        from bundler.crossversion.cli import add_parser

        add_parser(sub)
    return parser


def _wants_json(argv: Sequence[str]) -> bool:
    return "--json" in argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    warnings.showwarning = _show_warning
    try:
        args = build_parser(args_list).parse_args(args_list)
        func: Callable[[argparse.Namespace], int] = args.func
        from bundler.pipelines import progress

        quiet_output = args.quiet or getattr(args, "json", False)
        progress.enable(sys.stderr if sys.stderr.isatty() and not quiet_output else None)
        try:
            return func(args)
        finally:
            progress.enable(None)
    except BundleError as exc:
        if debug:
            raise
        if _wants_json(args_list):
            print(json.dumps({"ok": False, "exit_code": exc.exit_code, "error": type(exc).__name__,
                              "problems": exc.problems}, indent=2, sort_keys=True))
        for line in exc.problems:
            _err(f"error: {line}")
        if isinstance(exc, UnsafeContent):
            _trust_hint(exc.offending)
            if "<bundled code>" in exc.offending:
                _err("hint: only if you trust the bundle's code: --trust-code (or sign bundles and load with the "
                     "key)")
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted; nothing was left half-written")
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL
    except SystemExit as exc:  # argparse --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    except Exception as exc:
        if debug:
            raise
        if _wants_json(args_list):
            print(json.dumps({"ok": False, "exit_code": EXIT_INTERNAL, "error": type(exc).__name__,
                              "problems": [f"internal error: {exc}"]}, indent=2, sort_keys=True))
        _err(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_INTERNAL

