"""The manifest model: canonical bytes, strict reading, limits."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bundler
from bundler.container.manifest import MAX_JSON_DEPTH, canonical_bytes, parse_manifest
from bundler.errors import IntegrityError


def test_canonical_form_is_sorted_and_compact(packed: Path) -> None:
    manifest = bundler.inspect(packed)
    raw = canonical_bytes(manifest)
    doc = json.loads(raw)
    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert parse_manifest(raw) == manifest
    assert canonical_bytes(parse_manifest(raw)) == raw


def test_manifest_records_the_contract_fields(packed: Path) -> None:
    m = bundler.inspect(packed)
    assert m.format_version == 1
    assert m.model_class == "sklearn.pipeline.Pipeline"
    assert m.serializer == "joblib"
    assert m.payload == ["model/model.joblib"]
    assert {f.path for f in m.files} >= {"model/model.joblib", "requirements.txt"}
    assert m.environment.packages["scikit-learn"] == __import__("sklearn").__version__
    assert m.requirements == [f"{n}=={v}" for n, v in m.environment.packages.items()]
    assert "sklearn.pipeline.Pipeline" in m.globals
    assert m.metadata == {"accuracy": 0.9}
    assert m.sample is not None


def _doc(packed: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(canonical_bytes(bundler.inspect(packed)))
    return doc


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(format_version=2), "format version 2"),
        (lambda d: d.update(format_version="1"), "format version '1'"),
        (lambda d: d.pop("files"), "files"),
        (lambda d: d.update(extra_key=1), "extra_key"),
        (lambda d: d["files"][0].update(sha256="XYZ"), "sha256"),
        (lambda d: d["files"][0].update(path="../evil"), "path"),
        (lambda d: d["files"][0].update(size=-1), "size"),
        (lambda d: d.update(serializer="marshal"), "serializer"),
    ],
)
def test_wrong_shapes_are_integrity_errors(packed: Path, mutate: Callable[[dict[str, Any]], object],
                                           expected: str) -> None:
    doc = _doc(packed)
    mutate(doc)
    with pytest.raises(IntegrityError) as info:
        parse_manifest(json.dumps(doc).encode())
    assert any(expected in line for line in info.value.problems), info.value.problems


def test_every_schema_problem_is_reported(packed: Path) -> None:
    doc = _doc(packed)
    doc["files"][0]["sha256"] = "nothex"
    doc["serializer"] = "marshal"
    doc.pop("created")
    with pytest.raises(IntegrityError) as info:
        parse_manifest(json.dumps(doc).encode())
    assert len(info.value.problems) >= 3


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1, 2]", b'{"format_version": 1', b"\xff\xfe", b'{"a": NaN}',
     b"[" * (MAX_JSON_DEPTH + 5) + b"]" * (MAX_JSON_DEPTH + 5), b"[" * 200_000],
)
def test_not_json_or_not_an_object(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        parse_manifest(raw)


def test_oversized_manifest_refused_before_parsing() -> None:
    with pytest.raises(IntegrityError, match="limit"):
        parse_manifest(b" " * (17 << 20))
