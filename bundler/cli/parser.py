"""The command line's verbs and flags (argparse). Parsing only: the verbs are in ``bundler.cli.commands``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from bundler._version import __version__
from bundler.errors import UsageError

__all__ = ["PROG", "SAMPLE_FORMATS", "VERBS", "Parser", "build_parser"]

PROG = "bundler"
#: Verbs registered without importing the (heavier) cross-version module; anything else may be ``matrix``.
VERBS = frozenset({"pack", "verify", "load", "requirements", "inspect", "keygen", "env", "demo"})
SAMPLE_FORMATS = ".csv (with a header), .tsv, .parquet, .npy, .npz (sparse), .txt (one text per line)"


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2 (never a traceback)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _add_key_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--public-key", metavar="PEM", help="require a valid Ed25519 signature from this public key")
    g.add_argument("--hmac-key-file", metavar="F", help="require a valid HMAC-SHA256 signature with this secret")


def _add_config_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--config", metavar="PYPROJECT",
                   help="read [tool.bundler] from this pyproject.toml (default: the nearest one at or above the "
                        "working directory)")
    g.add_argument("--no-config", action="store_true", help="ignore [tool.bundler] in pyproject.toml")


def _add_trust_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust", action="append", default=[], metavar="NAME",
                   help="accept this global (module.qualname) in the payload although the default allowlist does not "
                        "(adds to [tool.bundler] trust)")


def _add_profile_option(p: argparse.ArgumentParser) -> None:
    from bundler.safety.profiles import PROFILES

    p.add_argument("--trust-profile", action="append", default=[], metavar="NAME", choices=sorted(PROFILES),
                   help="accept the globals a third-party model library pickles (its native model state is still "
                        f"validated; adds to [tool.bundler] trust-profiles): {', '.join(sorted(PROFILES))}")


def _add_policy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", choices=("default", "exact", "minor", "major", "none", "tested"),
                   help="how installed versions must match the bundle's pins; replaces the whole "
                        "[tool.bundler.policy] table (default: that table, else 'default'); 'tested' also accepts "
                        "an environment the bundle's signed record (bundler matrix --record) shows identical")
    p.add_argument("--trust-record", action="store_true",
                   help="let --policy tested use the tested-compatibility record of a bundle not signed by your key "
                        "(otherwise such a record is only shown)")
    p.add_argument("--allow", nargs=2, action="append", metavar=("NAME", "RULE"), default=[],
                   help="per-package rule: exact|minor|major|none or a specifier such as '>=1.5,<1.8' (replaces "
                        "the file's rule for NAME)")
    _add_trust_option(p)
    _add_profile_option(p)
    p.add_argument("--trust-code", action="store_true",
                   help="import the modules bundled with --code (this runs them; a verified signature also trusts "
                        "them)")


def _add_checking_verb(sub: Any, common: Parser, name: str, help_text: str, *, json_flag: bool = True) -> Parser:
    """``verify``, ``load`` and ``requirements`` share the bundle argument and the key, policy and config options."""
    p: Parser = sub.add_parser(name, help=help_text, parents=[common])
    p.add_argument("bundle")
    _add_key_options(p)
    _add_policy_options(p)
    _add_config_options(p)
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON report on stdout")
    return p


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser. ``argv`` lets the (heavier) ``matrix`` verb be registered only when it can be needed, so that
    ``bundler verify`` starts fast."""
    from bundler.cli import commands

    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="also show tracebacks (exit codes do not change)")
    common.add_argument("--quiet", "-q", action="store_true",
                        help="print only errors and bundler's own warnings (no notes, progress or library warnings)")
    parser = Parser(prog=PROG, description="Pack a trained model into a verifiable bundle; verify it before loading.",
                    parents=[common])
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("pack", help="bundle an existing .joblib/.pkl/.skops model file", parents=[common])
    p.add_argument("model_file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mlbundle",
                   help="the bundle to write (atomically; not '-': a bundle is a file, never standard output)")
    p.add_argument("--serializer", choices=("joblib", "pickle", "skops"),
                   help="the payload's format (default: detected from the file's content)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sign-key", metavar="PEM", help="sign with this Ed25519 private key (see 'bundler keygen')")
    g.add_argument("--hmac-key-file", metavar="F", help="sign with HMAC-SHA256 using the secret in this file")
    p.add_argument("--sample", metavar="FILE", help=f"input sample for the behaviour check: {SAMPLE_FORMATS}")
    p.add_argument("--requirement", action="append", default=[], metavar="NAME==VERSION",
                   help="add a pin; it must be the installed version")
    p.add_argument("-r", "--requirements-file", action="append", default=[], metavar="FILE",
                   help="add the pins of a requirements file, read as pip reads it (exact pins only)")
    p.add_argument("--force-requirement", action="append", default=[], metavar="NAME==VERSION",
                   help="pin exactly this, even if it is not what is installed here")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="user metadata (VALUE may be JSON)")
    _add_trust_option(p)
    _add_profile_option(p)
    p.add_argument("--code", action="append", default=[], metavar="MODULE.py|PKGDIR",
                   help="bundle this module or package of your own (imported at load only when trusted)")
    _add_config_options(p)
    p.add_argument("--lock", action="store_true", help="also write pylock.toml (PEP 751) into the bundle")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=commands.cmd_pack)

    p = _add_checking_verb(sub, common, "verify", "check signature, hashes, environment and content; never "
                                                  "deserializes")
    p.add_argument("--against", metavar="FILE",
                   help="check the pins against this requirements.txt / pip freeze output / pylock.toml instead of "
                        "the running environment")
    p.set_defaults(func=commands.cmd_verify)

    p = _add_checking_verb(sub, common, "load", "verify, deserialize restrictedly, and re-check the stored sample")
    p.add_argument("--no-behaviour-check", action="store_true", help="do not re-predict the stored sample")
    p.set_defaults(func=commands.cmd_load)

    p = _add_checking_verb(sub, common, "requirements", "verify the bundle, then print its requirements.txt "
                                                        "(for building a deploy image)", json_flag=False)
    p.add_argument("--against", metavar="FILE",
                   help="check the pins against this requirements.txt / pip freeze output / pylock.toml instead of "
                        "the running environment")
    p.set_defaults(func=commands.cmd_requirements)

    p = sub.add_parser("inspect", help="show the manifest (NOT verified)", parents=[common])
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=commands.cmd_inspect)

    p = sub.add_parser("keygen", help="write an Ed25519 key pair PREFIX.pem / PREFIX.pub.pem", parents=[common])
    p.add_argument("-o", "--output", required=True, metavar="PREFIX")
    p.set_defaults(func=commands.cmd_keygen)

    p = sub.add_parser("env", help="the running environment as a manifest would record it", parents=[common])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=commands.cmd_env)

    p = sub.add_parser("demo", help="train, bundle, verify, load, and show refusals; no network", parents=[common])
    p.add_argument("--dir", default=None, help="keep the demo's files here (default: a temporary folder)")
    p.set_defaults(func=commands.cmd_demo)

    first_verb = next((a for a in (argv or []) if not a.startswith("-")), None)
    if argv is None or first_verb not in VERBS:
        from bundler.crossversion.cli import add_parser

        add_parser(sub)
    return parser
