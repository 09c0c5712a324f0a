import os
import stat

import pytest

from flatnas_tf.persistence.storage import atomic_path, write_json, write_text


def test_a_write_replaces_the_file_whole_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"epochs": 1})
    write_json(path, {"epochs": 2})
    assert path.read_text() == '{\n  "epochs": 2\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "report.md"
    write_text(path, "finished work")
    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_text("half of")
        raise RuntimeError("disk full")
    assert path.read_text() == "finished work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_the_temporary_name_keeps_a_required_suffix(tmp_path):
    with atomic_path(tmp_path / "w.weights.h5", suffix=".weights.h5") as temporary:
        assert temporary.name.endswith(".weights.h5") and temporary.parent == tmp_path
        temporary.write_bytes(b"x")
    assert (tmp_path / "w.weights.h5").read_bytes() == b"x"


def test_a_file_written_with_a_mode_has_it_and_is_never_readable_by_others(tmp_path):
    path = tmp_path / "secret"
    with atomic_path(path, mode=0o600) as temporary:
        temporary.write_text("s3cret")
        assert stat.S_IMODE(temporary.stat().st_mode) == 0o600  # while being written
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "s3cret"
