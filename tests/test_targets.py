"""Reading described target environments (requirements, pip freeze, pylock.toml) and writing pylock.toml."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bundler.environment.targets import load_target, parse_pylock, parse_requirements, read_target, write_pylock
from bundler.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SHA = "0" * 64


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_requirements_with_hashes_markers_extras_and_continuations(tmp_path: Path) -> None:
    path = write(tmp_path, "requirements.txt", f"""\
# pinned by pip-compile
--index-url https://example.invalid/simple
Scikit_Learn==1.5.2 \\
    --hash=sha256:{SHA}
numpy==2.0.2  # inline comment
pydantic[email]==2.7.0
tomli==2.0.1 ; python_version < "3.0"
joblib===1.4.2
""")
    target = load_target(path)
    assert target.packages == {"scikit-learn": "1.5.2", "numpy": "2.0.2", "pydantic": "2.7.0", "joblib": "1.4.2"}
    assert target.kind == "requirements"
    assert any("tomli" in note and "marker" in note for note in target.notes)


def test_pip_freeze_skips_editable_and_direct_references_with_notes(tmp_path: Path) -> None:
    path = write(tmp_path, "freeze.txt", """\
-e git+https://example.invalid/me/project.git@abc123#egg=project
numpy==1.26.4
localpkg @ file:///home/me/localpkg
threadpoolctl==3.5.0
""")
    target = load_target(path)
    assert target.packages == {"numpy": "1.26.4", "threadpoolctl": "3.5.0"}
    assert len(target.notes) == 2
    assert any("editable" in n for n in target.notes)
    assert any("localpkg" in n for n in target.notes)


def test_every_unpinned_line_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "requirements.txt", "numpy>=1.26\nscipy==1.13.1\nscikit-learn\npandas==2.*\n")
    with pytest.raises(UsageError) as info:
        read_target(path)
    problems = info.value.problems
    assert len(problems) == 3
    assert [p.split(":")[1] for p in problems] == ["1", "3", "4"]  # line numbers
    assert all("does not pin an exact version" in p for p in problems)


def test_conflicting_pins_and_garbage_are_errors() -> None:
    with pytest.raises(UsageError) as info:
        parse_requirements("numpy==1.26.4\nnumpy==2.0.0\nthis is not a requirement\n")
    assert len(info.value.problems) == 2


def test_includes_are_followed(tmp_path: Path) -> None:
    write(tmp_path, "base.txt", "numpy==2.1.0\n")
    path = write(tmp_path, "requirements.txt", "-r base.txt\nscipy==1.14.1\n")
    assert read_target(path) == {"numpy": "2.1.0", "scipy": "1.14.1"}


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        read_target(tmp_path / "nope.txt")


PYLOCK = f"""\
lock-version = "1.0"
requires-python = ">=3.11"
created-by = "uv"

[[packages]]
name = "scikit-learn"
version = "1.6.1"
index = "https://pypi.org/simple"
wheels = [{{ name = "scikit_learn-1.6.1-cp311-cp311-manylinux_2_17_x86_64.whl", url = "https://example.invalid/a.whl", hashes = {{ sha256 = "{SHA}" }} }}]

[[packages]]
name = "numpy"
version = "2.2.0"
marker = "sys_platform == 'nonexistent-os'"
wheels = [{{ name = "numpy-2.2.0-cp311-cp311-win_amd64.whl", url = "https://example.invalid/b.whl", hashes = {{ sha256 = "{SHA}" }} }}]

[[packages]]
name = "numpy"
version = "2.1.3"
wheels = [{{ name = "numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.whl", url = "https://example.invalid/c.whl", hashes = {{ sha256 = "{SHA}" }} }}]

[[packages]]
name = "myproject"
directory = {{ path = "." }}
"""  # noqa: E501


def test_pylock_with_markers_and_source_trees(tmp_path: Path) -> None:
    target = load_target(write(tmp_path, "pylock.toml", PYLOCK))
    assert target.packages == {"scikit-learn": "1.6.1", "numpy": "2.1.3"}
    assert target.kind == "pylock"
    assert target.requires_python == ">=3.11"
    assert len(target.notes) == 2  # the other-platform numpy, the versionless directory


@pytest.mark.parametrize("text", ['lock-version = "2.0"\ncreated-by = "x"\n[[packages]]\nname = "a"\n',
                                  'created-by = "x"\n', "not = [toml"])
def test_bad_pylock_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_pylock(text)


def fake_files(pins: dict[str, str]) -> dict[str, list[dict[str, object]]]:
    files: dict[str, list[dict[str, object]]] = {}
    for name, version in pins.items():
        dist = name.replace("-", "_")
        files[name] = [
            {"name": f"{dist}-{version}-cp311-cp311-manylinux_2_17_x86_64.whl", "url": f"https://x.invalid/{dist}.whl",
             "hashes": {"sha256": SHA}, "size": 123},
            {"name": f"{dist}-{version}-cp312-cp312-manylinux_2_17_x86_64.whl", "url": f"https://x.invalid/{dist}2",
             "hashes": {"sha256": SHA}},
            {"name": f"{dist}-{version}.tar.gz", "url": f"https://x.invalid/{dist}.tar.gz", "hashes": {"sha256": SHA}},
        ]
    return files


def test_write_pylock_round_trips_through_read_target(tmp_path: Path) -> None:
    pins = {"scikit-learn": "1.6.1", "numpy": "2.2.0", "threadpoolctl": "3.5.0"}
    requirements = [f"{n}=={v}" for n, v in pins.items()]
    text = write_pylock(requirements, {"python_version": "3.11.9"}, files=fake_files(pins))
    data = tomllib.loads(text)
    assert data["lock-version"] == "1.0"
    assert data["created-by"] == "bundler"
    assert data["requires-python"] == ">=3.11"
    assert [p["name"] for p in data["packages"]] == sorted(pins)
    for package in data["packages"]:
        assert package["index"] == "https://pypi.org/simple"
        assert [w["name"].split("-")[2] for w in package["wheels"]] == ["cp311"]  # the cp312 wheel is filtered out
        assert package["sdist"]["name"].endswith(".tar.gz")
    assert read_target(write(tmp_path, "pylock.toml", text)) == pins


def test_write_pylock_is_valid_for_packaging_validator() -> None:
    pylock = pytest.importorskip("packaging.pylock")
    pins = {"joblib": "1.4.2"}
    text = write_pylock(["joblib==1.4.2"], {"python_version": "3.11.9"}, files=fake_files(pins))
    pylock.Pylock.from_dict(tomllib.loads(text)).validate()


def test_write_pylock_refuses_unpinned_and_sourceless() -> None:
    with pytest.raises(UsageError):
        write_pylock(["numpy>=2"], {"python_version": "3.11.9"}, files={})
    with pytest.raises(UsageError, match="no installable files"):
        write_pylock(["numpy==2.0.0"], {"python_version": "3.11.9"}, files={"numpy": []})
