"""benchmarks/common.py's run record and `--out` writing, without running a benchmark."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys

import common
import numpy as np
import pytest

BENCHMARKS = pathlib.Path(common.__file__).resolve().parent
#: Modules in benchmarks/ that are not benchmarks printing one JSON object.
#: Helpers, and the study scripts, which write records and reports under docs/results.
NOT_REPORTING = {
    "common",
    "rank_stats",
    "reproduce",
    "flatness_ood_study",
    "flatness_ood_search",
    "flatness_ood_paper",
    "study_analysis",
}
HEX_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=3)
    parser.add_argument("--names", nargs="*", default=["a"])
    common.add_out_argument(parser, "demo")
    return parser.parse_args(list(argv))


def test_out_file_holds_exactly_the_printed_json(tmp_path, capsys):
    path = tmp_path / "docs" / "benchmarks" / "demo.json"  # parents created
    args = _args("--size", "7", "--out", str(path))
    payload = common.report("demo", {"seconds": 1.25, "per_run": [1, 2]}, args)
    printed = capsys.readouterr().out
    assert path.read_text() == printed
    assert json.loads(printed) == payload
    assert payload["seconds"] == 1.25 and payload["per_run"] == [1, 2]
    assert payload["settings"] == {"size": 7, "names": ["a"]}  # --out is not a setting
    assert sorted(os.listdir(path.parent)) == ["demo.json"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_without_out_nothing_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    payload = common.report("demo", {"x": 1}, _args())
    assert json.loads(capsys.readouterr().out) == payload
    assert list(tmp_path.iterdir()) == []


def test_the_record_comes_first_with_its_keys(capsys):
    payload = common.report("demo", {"x": 1}, {"size": 2})
    capsys.readouterr()
    assert list(payload) == [*common.RECORD_KEYS, "x"]
    assert payload["benchmark"] == "demo"
    date = datetime.datetime.fromisoformat(payload["date"])
    assert date.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - date).total_seconds() < 60
    assert payload["git"] == common.GIT_AT_START  # the code that ran: read at start
    assert set(payload["git"]) == {"commit", "dirty"}
    machine = payload["machine"]
    for key in ("machine", "processor", "cpu_model", "cpu_count", "usable_cpus", "python"):
        assert key in machine
    assert machine["cpu_count"] == os.cpu_count()
    assert machine["python"] == ".".join(map(str, sys.version_info[:3]))
    # This process imported TensorFlow and Keras (conftest): their versions are recorded.
    import keras
    import tensorflow as tf

    assert machine["versions"]["tensorflow"] == tf.__version__
    assert machine["versions"]["keras"] == keras.__version__
    assert machine["device"] in ("CPU", "GPU")
    assert payload["settings"] == {"size": 2}


def test_figures_may_not_shadow_the_record():
    with pytest.raises(ValueError, match="settings"):
        common.report("demo", {"settings": {}}, None)


def test_commit_of_this_checkout():
    state = common.git_state()
    if state["commit"] == "unknown":  # e.g. an exported tree without .git
        assert state["dirty"] is None
    else:
        assert HEX_COMMIT.fullmatch(state["commit"])
        assert isinstance(state["dirty"], bool)


def test_commit_unknown_outside_git(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert common.git_state(tmp_path) == {"commit": "unknown", "dirty": None}


def test_commit_unknown_without_git(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(common.subprocess, "run", no_git)
    assert common.git_state() == {"commit": "unknown", "dirty": None}


def test_dirty_counts_tracked_files_but_benchmark_outputs(tmp_path):
    def git(*argv):
        subprocess.run(["git", "-C", str(tmp_path), *argv], check=True, capture_output=True)

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    run = tmp_path / "docs" / "benchmarks" / "demo.json"
    run.parent.mkdir(parents=True)
    for path in (tmp_path / "tracked.txt", run):
        path.write_text("one\n")
    git("add", "tracked.txt", "docs")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first")
    (tmp_path / "untracked.txt").write_text("new\n")
    run.write_text("a rerun\n")  # a benchmark's output is not code
    state = common.git_state(tmp_path)
    assert HEX_COMMIT.fullmatch(state["commit"]) and state["dirty"] is False
    (tmp_path / "tracked.txt").write_text("two\n")
    assert common.git_state(tmp_path)["dirty"] is True


def test_write_atomic_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    common.write_atomic(path, "old\n")
    common.write_atomic(path, "new\n")
    assert path.read_text() == "new\n"

    def refuse(*args):
        raise OSError("disk full")

    monkeypatch.setattr(common.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        common.write_atomic(path, "newer\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_append_json_line_keeps_earlier_lines_byte_for_byte_and_never_tears(tmp_path, monkeypatch):
    path = tmp_path / "records" / "runs.jsonl"
    common.append_json_line(path, {"b": 1, "a": 2})
    path.write_text(path.read_text() + '{"kept": "as written",   "spaces": 1}')  # no newline
    common.append_json_line(path, {"b": 3, "a": 4}, sort_keys=True)
    assert path.read_text() == (
        '{"b": 1, "a": 2}\n{"kept": "as written",   "spaces": 1}\n{"a": 4, "b": 3}\n'
    )
    before = path.read_text()

    def crash(*args):
        raise OSError("killed")

    monkeypatch.setattr(common.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        common.append_json_line(path, {"lost": True})
    assert path.read_text() == before  # the old lines, whole; no torn line to trip a resume


def test_settings_are_json_safe():
    settings = common.settings_of(
        {"path": pathlib.Path("a/b"), "stages": {"study", "report"}, "n": np.int64(3), "out": "x"}
    )
    assert settings == {"path": "a/b", "stages": ["report", "study"], "n": 3}
    json.dumps(settings)


def test_common_imports_no_tensorflow():
    code = (
        f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import common; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "script",
    sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem not in NOT_REPORTING),
)
def test_every_benchmark_reports_through_common(script):
    text = (BENCHMARKS / f"{script}.py").read_text()
    assert "add_out_argument(parser" in text
    assert re.search(r"\breport\(\s*\"", text)
    assert "print_json" not in text and "json.dumps(result" not in text
    docstring = text.split('"""')[1]
    assert f"--out docs/benchmarks/{script}.json" in docstring


@pytest.mark.parametrize(
    "script",
    sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem not in NOT_REPORTING),
)
def test_every_benchmark_is_run_end_to_end_by_a_test(script):
    """A script no test runs breaks silently (a refactor, a refused setting)."""
    tests = pathlib.Path(__file__).parent
    runs = [t.name for t in tests.glob("test_*.py") if f"{script}.main" in t.read_text()]
    assert runs, f"no test calls {script}.main (tiny settings, e.g. support.benchmarks)"


def test_corruption_throughput_check_rules():
    import corruption_throughput as ct

    from flatnas_tf.robustness.corruptions import CORRUPTIONS

    assert set(ct.EXACT) <= set(CORRUPTIONS)
    assert sorted([*ct.EXACT, *ct.STATISTICAL]) == sorted(CORRUPTIONS)
    rng = np.random.default_rng(0)
    clean = rng.integers(50, 200, (40, 8, 8, 3)).astype(np.uint8)
    one_off, two_off = clean.copy(), clean.copy()
    one_off[0, 0, 0, 0] += 1
    two_off[0, 0, 0, 0] += 2
    assert ct.compare("contrast", clean, clean, one_off)[1]  # +-1 on 1 value of 7,680
    assert not ct.compare("contrast", clean, clean, two_off)[1]
    assert not ct.compare("contrast", clean, clean, clean + 1)[1]  # every value off
    assert not ct.compare("jpeg_compression", clean, clean, clean + 1)[1]  # mean 1 > 0.05
    figures, ok = ct.compare("jpeg_compression", clean, clean, two_off)
    assert ok and figures["max_abs_diff"] == 2

    def noisy(scale, seed):
        noise = np.random.default_rng(seed).normal(0, scale, clean.shape)
        return np.clip(clean + noise, 0, 255).astype(np.uint8)

    figures, ok = ct.compare("gaussian_noise", clean, noisy(10, 1), noisy(10, 2))
    assert ok and abs(figures["difference"]) < 0.5
    assert not ct.compare("gaussian_noise", clean, noisy(10, 1), noisy(13, 2))[1]


def test_a_path_inside_the_repository_is_shown_relative_to_it(tmp_path):
    assert common.shown_path(common.ROOT / "docs" / "x.jsonl") == "docs/x.jsonl"
    assert common.shown_path(tmp_path / "y.jsonl") == str((tmp_path / "y.jsonl").resolve())


def test_the_default_depths_are_the_default_spaces():
    import inspect

    from flatnas_tf import FlatNASHyperModel

    default = inspect.signature(FlatNASHyperModel).parameters["depths"].default
    assert tuple(default) == common.DEFAULT_DEPTHS
    assert common.number_list(int)("1, 2,") == [1, 2]


def test_a_chunk_starts_no_unit_it_expects_to_end_after_its_budget():
    now = [0.0]
    chunk = common.Chunk(50, clock=lambda: now[0])  # 3,000 s
    started = []
    for unit in range(10):
        if not chunk.room_for_another():
            break
        with chunk.unit():
            now[0] += 900  # 15-minute units
        started.append(unit)
    # Three units end at 2,700 s; a fourth would end at 3,600 s, past the budget (the
    # time used alone, 2,700 s, would have let it start and overrun by 10 minutes).
    assert started == [0, 1, 2] and now[0] == 2700
    assert chunk.durations == [900, 900, 900]
    empty = common.Chunk(0, clock=lambda: 0.0)
    assert empty.room_for_another()  # no unit yet: nothing says it would overrun


def test_a_unit_that_fails_does_not_count_as_one_finished():
    now = [0.0]
    chunk = common.Chunk(10, clock=lambda: now[0])
    with pytest.raises(RuntimeError), chunk.unit():
        now[0] += 100
        raise RuntimeError("training diverged")
    assert chunk.durations == []


def test_units_of_another_kind_share_the_budget_but_not_the_mean():
    now = [0.0]
    chunk = common.Chunk(50, clock=lambda: now[0])  # 3,000 s
    chunk.add(100)  # short units timed elsewhere (e.g. by a callback)
    now[0] = 2000
    assert chunk.room_for_another()  # another 100 s unit fits
    longer = chunk.for_other_units()
    assert longer.room_for_another()  # no unit of this kind yet
    with longer.unit():
        now[0] += 900
    assert not longer.room_for_another()  # 2,900 + 900 s is past the budget
    assert chunk.room_for_another() and chunk.durations == [100]  # 2,900 + 100 s is not
