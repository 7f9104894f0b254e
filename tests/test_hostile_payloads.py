"""Every generated hostile payload (fixtures/hostile) is refused by the scan + audit AND by restricted_load, and
nothing ever runs: the marker files never appear."""

from __future__ import annotations

import copyreg
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bundler.errors import IntegrityError, UnsafeContent
from bundler.safety.allowlist import DEFAULT_ALLOWLIST
from bundler.safety.scan import scan_file
from bundler.safety.unpickler import restricted_load
from bundler.safety.validators import validate_model

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
EXPECTED = json.loads((HOSTILE / "expected.json").read_text())
LITERAL_MARKER = Path(EXPECTED["marker_literal"])


@pytest.fixture(autouse=True)
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "marker"
    monkeypatch.setenv("BUNDLER_MARKER", str(path))
    literal_before = LITERAL_MARKER.exists()
    yield path
    assert not path.exists(), "a hostile payload ran"
    assert LITERAL_MARKER.exists() == literal_before, "a hostile payload ran"


@pytest.fixture
def ext_registered() -> Iterator[None]:
    copyreg.add_extension("posix", "system", EXPECTED["ext_code"])
    yield
    copyreg.remove_extension("posix", "system", EXPECTED["ext_code"])


def fmt_of(name: str) -> str:
    return "joblib" if name.endswith(".joblib") else "pickle"


def test_fixture_set_is_complete() -> None:
    names = set(EXPECTED["payloads"])
    assert len(names) >= 30
    for name in names:
        assert (HOSTILE / name).is_file()


@pytest.mark.usefixtures("ext_registered")
@pytest.mark.parametrize("name", sorted(n for n, k in EXPECTED["payloads"].items() if k in ("unsafe", "ext")))
def test_unsafe_refused_everywhere(name: str) -> None:
    res = scan_file(HOSTILE / name)
    lines = DEFAULT_ALLOWLIST.audit(res)
    assert lines, f"{name}: audit passed {res}"
    assert DEFAULT_ALLOWLIST.offending(res)  # the loader alone: test_loader_alone_refuses_unsafe


def test_ext_without_registration_is_malformed() -> None:
    with pytest.raises(IntegrityError, match="extension code"):
        scan_file(HOSTILE / "ext_opcode.pkl")


@pytest.mark.parametrize("name", sorted(n for n, k in EXPECTED["payloads"].items() if k == "malformed"))
def test_malformed_refused_everywhere(name: str) -> None:
    with pytest.raises(IntegrityError, match="malformed"):
        scan_file(HOSTILE / name)
    with open(HOSTILE / name, "rb") as f, pytest.raises(IntegrityError):
        restricted_load(f, fmt=fmt_of(name), allow=DEFAULT_ALLOWLIST)


@pytest.mark.parametrize("name", sorted(n for n, k in EXPECTED["payloads"].items() if k == "tree"))
def test_crafted_trees_caught_by_treecheck(name: str) -> None:
    assert DEFAULT_ALLOWLIST.audit(scan_file(HOSTILE / name)) == []
    with open(HOSTILE / name, "rb") as f:
        model = restricted_load(f, fmt=fmt_of(name), allow=DEFAULT_ALLOWLIST)
    problems = [p.line for p in validate_model(model, handed=None, allow=DEFAULT_ALLOWLIST)]
    assert problems
    err = UnsafeContent(problems)
    assert err.exit_code == 5


@pytest.mark.usefixtures("ext_registered")
@pytest.mark.parametrize("name", sorted(n for n, k in EXPECTED["payloads"].items() if k in ("unsafe", "ext")))
def test_loader_alone_refuses_unsafe(name: str) -> None:
    """Defence in depth: even without the scan, restricted_load refuses every unsafe payload, as unsafe content,
    naming the same global the scan names (the two enforce one set of rules)."""
    named_by_scan = {f.subject for f in DEFAULT_ALLOWLIST.findings(scan_file(HOSTILE / name))
                     if f.subject and not f.subject.startswith("<")}  # "<persistent id>": no global to name
    with open(HOSTILE / name, "rb") as f, pytest.raises(UnsafeContent) as refused:
        restricted_load(f, fmt=fmt_of(name), allow=DEFAULT_ALLOWLIST)
    assert refused.value.exit_code == 5
    if named_by_scan:
        assert any(n in str(refused.value) for n in named_by_scan), (named_by_scan, str(refused.value))


def test_marker_would_be_created_by_the_command(marker: Path) -> None:
    """Sanity check of the harness: the payload command really creates the marker when run by a shell."""
    cmd = 'touch "${BUNDLER_MARKER:-/tmp/bundler-hostile-ran}"'
    assert os.system(cmd) == 0
    assert marker.exists()
    marker.unlink()
