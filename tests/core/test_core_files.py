"""Atomic writes (core.files): the target is either the old file or the whole new one, never half a file."""

import json

import numpy as np
import pytest

from core.files import atomic_path, atomic_write_bytes, atomic_write_json


def test_bytes_and_json_land_whole_and_leave_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "volume.bin"
    atomic_write_bytes(target, b"abc")
    assert target.read_bytes() == b"abc"
    atomic_write_json(tmp_path / "state.json", {"epochs": 3}, indent=1)
    assert json.loads((tmp_path / "state.json").read_text()) == {"epochs": 3}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["state.json", "volume.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    target = tmp_path / "state.json"
    target.write_text('{"old": true}')
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"new": ')
        raise RuntimeError("the writer died half-way")
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_nan_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"auc": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_a_suffix_keeps_writers_that_choose_the_format_by_extension_happy(tmp_path):
    target = tmp_path / "heldout.npz"
    with atomic_path(target, suffix=".npz") as tmp:
        assert tmp.name.endswith(".npz") and tmp.parent == tmp_path
        np.savez(tmp, p=np.arange(3))
    assert np.load(target)["p"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["heldout.npz"]
