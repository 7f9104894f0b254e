"""Property tests of the stored sample layout: whatever text, object array or DataFrame is stored comes back equal
and of the same type; whatever bytes replace a member, reading fails with a UsageError, never anything worse."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd

from bundler.errors import UsageError
from bundler.pipelines.sample.inputs import decode_input, encode_input

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def roundtrip(sample: Any) -> Any:
    members, spec, version = encode_input(sample)
    for data in members.values():
        np.load(io.BytesIO(data), allow_pickle=False)
    return decode_input(members.__getitem__, json.loads(json.dumps(spec)), version)


@FAST
@given(st.lists(st.text(), min_size=1, max_size=30))
def test_any_list_of_text_comes_back_exactly(texts: list[str]) -> None:
    back = roundtrip(texts)
    assert type(back) is list
    assert back == texts


_scalar = st.one_of(st.text(max_size=10), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none(),
                    st.floats(allow_nan=True, allow_infinity=True))


@FAST
@given(st.lists(st.lists(_scalar, min_size=3, max_size=3), min_size=1, max_size=20))
def test_any_object_array_comes_back_element_by_element(rows: list[list[Any]]) -> None:
    array = np.empty((len(rows), 3), dtype=object)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            array[i, j] = value
    back = roundtrip(array)
    assert back.dtype == object
    assert back.shape == array.shape
    for old, new in zip(array.ravel().tolist(), back.ravel().tolist(), strict=True):
        assert type(old) is type(new)
        assert old == new or (isinstance(old, float) and np.isnan(old) and np.isnan(new))


_frames = hpd.data_frames(
    columns=[hpd.column("i", dtype=np.int64), hpd.column("f", dtype=np.float64),
             hpd.column("b", dtype=bool), hpd.column("s", elements=st.one_of(st.none(), st.text(max_size=8))),
             hpd.column("c", elements=st.sampled_from(["x", "y", None]))],
    index=hpd.range_indexes(min_size=1, max_size=25))


@FAST
@given(_frames)
def test_any_dataframe_comes_back_with_its_dtypes(frame: pd.DataFrame) -> None:
    frame = frame.assign(c=frame["c"].astype("category"), s=frame["s"].astype(object))
    pd.testing.assert_frame_equal(roundtrip(frame), frame)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["codes", "utf8", "offsets"]))
def test_any_bytes_in_place_of_a_member_fail_cleanly(data: bytes, part: str) -> None:
    members, spec, version = encode_input(["some", "text", ""])
    members[f"sample/input.{part}.npy"] = data
    with pytest.raises(UsageError):  # not a .npy of the recorded dtype and shape: refused, never anything worse
        decode_input(members.__getitem__, spec, version)
