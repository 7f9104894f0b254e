"""The scan refuses every malformed operation the restricted unpickler refuses, wherever the scan's symbolic values
know the target's type (issue 8: "the restricted unpickler enforces exactly the scan's rules"). Before, ``verify``
(scan only) said OK, exit 0, for an APPEND onto an int that ``load`` refused as malformed, exit 3.

Each row is a real bundle whose payload was swapped for the sample; ``verify`` and ``load`` run through the CLI in a
child process (tests/parity_child.py), which must not die by a signal, and must give the same exit code, the
expected one, with the expected words in the refusal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import bundler

from .helpers import read_members, rewrite

ROOT = Path(__file__).resolve().parents[1]
P4 = b"\x80\x04"
LIST = b"\x8c\x08builtins\x8c\x04list\x93"  # the global builtins.list (allowed to be called without arguments)

#: name -> (payload, exit code of verify and load, words of the refusal)
ROWS: dict[str, tuple[bytes, int, str]] = {
    "append_int": (P4 + b"K\x01Na.", 3, "APPEND to a int object"),
    "appends_int": (P4 + b"K\x01(Ne.", 3, "APPEND to a int object"),
    "append_tuple": (P4 + b")Na.", 3, "APPEND to a tuple object"),
    "append_dict": (P4 + b"}Na.", 3, "APPEND to a dict object"),
    "append_str": (P4 + b"\x8c\x01aNa.", 3, "APPEND to a str object"),
    "append_set": (P4 + b"\x8fNa.", 3, "APPEND to a set object"),
    "append_none": (P4 + b"NNa.", 3, "APPEND to a NoneType object"),
    "setitem_tuple": (P4 + b")K\x01K\x02s.", 3, "SETITEM on a tuple object"),
    "setitems_int": (P4 + b"K\x01(K\x01K\x02u.", 3, "SETITEM on a int object"),
    "setitem_list": (P4 + b"]K\x01K\x02s.", 3, "SETITEM on a list object"),
    "additems_list": (P4 + b"](K\x01\x90.", 3, "ADDITEMS on a list object"),
    "additems_frozenset": (P4 + b"(\x91(K\x01\x90.", 3, "ADDITEMS on a frozenset object"),
    "additems_dict": (P4 + b"}(K\x01\x90.", 3, "ADDITEMS on a dict object"),
    "reduce_int_args": (P4 + LIST + b"K\x01R.", 3, "call arguments are not a tuple"),
    "reduce_list_args": (P4 + LIST + b"]R.", 3, "call arguments are not a tuple"),
    "reduce_none_args": (P4 + LIST + b"NR.", 3, "call arguments are not a tuple"),
    "reduce_dict_args": (P4 + LIST + b"}R.", 3, "call arguments are not a tuple"),
    "newobj_int_args": (P4 + LIST + b"K\x01\x81.", 3, "call arguments are not a tuple"),
    "newobj_ex_str_args": (P4 + LIST + b"\x8c\x01a}\x92.", 3, "call arguments are not a tuple"),
    "newobj_ex_kwargs": (P4 + LIST + b")}\x8c\x01aK\x01s\x92.", 5, "with keyword arguments"),
    "newobj_ex_int_kwargs": (P4 + LIST + b")K\x01\x92.", 5, "with keyword arguments"),
    "build_int": (P4 + b"K\x01}\x8c\x01aK\x01sb.", 3, "BUILD of a int object"),
    "build_int_str": (P4 + b"K\x01\x8c\x01ab.", 3, "instance state is not a dict"),
    "build_list": (P4 + b"]}\x8c\x01aK\x01sb.", 3, "BUILD of a list object"),
    "build_none_int": (P4 + b"NK\x01b.", 3, "instance state is not a dict"),
    "build_tuple_slot_dict": (P4 + b")N}\x8c\x01aK\x01s\x86b.", 5, "declares no slots"),
    "build_tuple_slot_int": (P4 + b")NK\x01\x86b.", 3, "slot state is not a dict"),
    "setitems_list_key": (P4 + b"}(]Nu.", 3, "unhashable"),
    "dict_tuple_key_with_list": (P4 + b"(K\x01]\x86Nd.", 3, "unhashable"),
    "frozenset_of_set": (P4 + b"(\x8f\x91.", 3, "unhashable"),
    "additems_dict_item": (P4 + b"\x8f(}\x90.", 3, "unhashable"),
    "setitem_bytearray_key": (P4 + b"}\x96" + bytes(8) + b"Ns.", 3, "unhashable"),
    # well-formed neighbours: the new checks must not refuse them
    "empty_build_on_int": (P4 + b"K\x01Nb.", 0, ""),
    "list_appends": (P4 + b"](K\x01K\x02e.", 0, ""),
    "dict_of_tuple_keys": (P4 + b"}(K\x01K\x02\x86Nu.", 0, ""),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("parity")
    X = np.random.RandomState(0).rand(20, 3)
    clean = folder / "clean.mlbundle"
    bundler.pack(LogisticRegression().fit(X, (X[:, 0] > 0.5).astype(int)), clean, serializer="pickle")
    payload = next(n for n in read_members(clean) if n.startswith("model/"))
    jobs = {}
    for name, (data, _, _) in ROWS.items():
        def swap(members: dict[str, bytes], data: bytes = data) -> None:
            members[payload] = data

        jobs[name] = str(rewrite(clean, folder / f"{name}.mlbundle", members=swap))
    spec = folder / "jobs.json"
    spec.write_text(json.dumps(jobs))
    proc = subprocess.run([sys.executable, "-m", "tests.parity_child", str(spec)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=False)
    results: dict[str, dict[str, Any]] = {}
    current = None
    for line in proc.stdout.splitlines():
        record = json.loads(line)
        if "start" in record:
            current = record["start"]
        else:
            results[record["name"]] = record
    assert proc.returncode == 0, f"the child died ({proc.returncode}) on {current}: {proc.stderr[-2000:]}"
    return results


@pytest.mark.parametrize("name", sorted(ROWS))
def test_verify_and_load_agree(name: str, outcomes: dict[str, dict[str, Any]]) -> None:
    _, code, words = ROWS[name]
    got = outcomes[name]
    assert got["verify"]["exit"] == got["load"]["exit"] == code, got
    for verb in ("verify", "load"):
        err = got[verb]["stderr"]
        assert "Traceback" not in err
        assert words in err, (verb, err)


def test_the_real_cli_refuses_in_one_line(tmp_path: Path) -> None:
    """One row through ``python -m bundler`` itself: exit 3 and a one-line refusal, no traceback."""
    X = np.random.RandomState(0).rand(20, 3)
    clean = tmp_path / "clean.mlbundle"
    bundler.pack(LogisticRegression().fit(X, (X[:, 0] > 0.5).astype(int)), clean, serializer="pickle")
    payload = next(n for n in read_members(clean) if n.startswith("model/"))

    def swap(members: dict[str, bytes]) -> None:
        members[payload] = ROWS["append_int"][0]

    bad = rewrite(clean, tmp_path / "bad.mlbundle", members=swap)
    proc = subprocess.run([sys.executable, "-m", "bundler", "--quiet", "verify", str(bad)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "APPEND to a int object" in proc.stderr
    assert "Traceback" not in proc.stderr
