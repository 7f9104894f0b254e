"""Property tests of the core: canonical manifests, single-byte tampering, deterministic packing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bundler
from bundler.container.manifest import Environment, FileEntry, Manifest, canonical_bytes, parse_manifest
from tests.helpers import read_members, write_members

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                       st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
_json = st.recursive(_json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=20)
_names = st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True)
_versions = st.from_regex(r"[0-9]{1,2}\.[0-9]{1,2}(\.[0-9]{1,2})?", fullmatch=True)
_hex = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)


@st.composite
def manifests(draw: Any) -> Manifest:
    packages = draw(st.dictionaries(_names, _versions, max_size=6))
    files = [FileEntry(path=p, sha256=draw(_hex), size=draw(st.integers(0, 2**40)))
             for p in sorted(draw(st.sets(st.sampled_from(["model/model.joblib", "requirements.txt", "sample/x.npy",
                                                            "sample/predict.npy", "pylock.toml"]))))]
    return Manifest(
        format_version=1, bundler_version=draw(_versions), created=draw(st.text(max_size=25)),
        model_class=draw(st.text(min_size=1, max_size=40)),
        serializer=draw(st.sampled_from(["joblib", "pickle", "skops"])),
        payload=["model/model.joblib"], files=files,
        environment=Environment(python_version=draw(_versions), implementation="CPython", platform="linux",
                                machine=draw(st.sampled_from(["x86_64", "aarch64"])), packages=packages),
        requirements=[f"{n}=={v}" for n, v in packages.items()], frameworks=draw(st.lists(_names, max_size=3)),
        globals=draw(st.lists(st.text(max_size=30), max_size=5)),
        sample=draw(st.none() | st.dictionaries(st.text(max_size=8), _json, max_size=3)),
        metadata=draw(st.dictionaries(st.text(max_size=10), _json, max_size=5)),
    )


@given(manifests())
@settings(max_examples=150, deadline=None)
def test_manifest_roundtrips_byte_identically(manifest: Manifest) -> None:
    raw = canonical_bytes(manifest)
    again = parse_manifest(raw)
    assert canonical_bytes(again) == raw
    assert json.loads(raw) == json.loads(canonical_bytes(again))


@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_flipping_any_byte_of_any_member_fails_with_exit_3(packed: Path, tmp_path: Path, data: Any) -> None:
    members = read_members(packed)
    name = data.draw(st.sampled_from(sorted(members)))
    content = bytearray(members[name])
    index = data.draw(st.integers(0, len(content) - 1))
    bit = data.draw(st.integers(0, 7))
    content[index] ^= 1 << bit
    members[name] = bytes(content)
    path = tmp_path / f"flip-{name.replace('/', '_')}-{index}-{bit}.mlbundle"
    write_members(path, members)
    report = bundler.verify(path)
    assert report.exit_code == 3, (name, index, bit, report.problems)


def test_packing_twice_differs_only_in_time(model: Any, data: Any, tmp_path: Path) -> None:
    first = bundler.pack(model, tmp_path / "a.mlbundle", sample=data[0][:5])
    second = bundler.pack(model, tmp_path / "b.mlbundle", sample=data[0][:5])
    a, b = first.model_dump(mode="json"), second.model_dump(mode="json")
    differing = {k for k in a if a[k] != b[k]}
    assert differing <= {"created"}
    a.pop("created"), b.pop("created")
    assert a == b
