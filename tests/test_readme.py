"""The examples of README.md and of the guide (docs/, in the site's order), run as written.

The Python blocks continue one another (the README says so), from the README
through the guide's pages, so they run in order in one namespace, in an empty
working directory, and the test then checks what each one promises. The
command lines of the shell blocks are parsed by the real CLI, so that a
renamed command or option, or a value it no longer takes, fails here; the
example's files and directories are made empty.
"""

import ast
import math
import pathlib
import re
import shlex

import click
import pytest
from support.guide import guide_pages

from flatnas_tf.cli.main import main


def _blocks(*languages: str) -> list[tuple[str, str]]:
    """(where, code) of each fenced block in these languages ("" for a fence without one)."""
    blocks = []
    for page in guide_pages():
        language, lines = None, []
        for line in page.read_text().splitlines():
            if not line.startswith("```"):
                lines.append(line)
            elif language is None:  # an opening fence
                language, lines = line[3:].strip(), []
            else:
                if language in languages:
                    blocks.append((page.name, "\n".join(lines) + "\n"))
                language = None
    return blocks


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The namespace after every Python block of the README and the guide ran, in order."""
    workdir = tmp_path_factory.mktemp("readme")
    namespace: dict = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        for number, (page, block) in enumerate(_blocks("python"), start=1):
            exec(compile(block, f"{page}, Python block {number}", "exec"), namespace)
    return namespace, workdir


def test_the_sam_model_example_learns(session):
    namespace, _ = session
    model, data = namespace["model"], namespace["data"]
    validation = model.evaluate(data.batches("validation", 128), verbose=0, return_dict=True)
    assert validation["accuracy"] > 0.9  # 98-99 % after its epochs, as the README says


def test_the_flatness_example_measures_r(session):
    namespace, _ = session
    robustness, curve = namespace["robustness"], namespace["curve"]
    assert 0 <= robustness.R < 100 and math.isfinite(robustness.loss_gap)
    assert [point.sigma for point in curve] == [0.01, 0.05, 0.1]
    assert curve[0].R <= curve[-1].R  # more noise, more accuracy lost
    assert len(namespace["history"].history["robustness"]) == 1  # the last epoch


def test_the_subclassing_example_builds_a_sam_model(session):
    namespace, _ = session
    from flatnas_tf import SAMModel

    assert isinstance(namespace["resnet"], SAMModel)
    assert namespace["resnet"].output_shape == (None, 10)


def test_the_ood_example_averages_the_applicable_corruptions(session):
    namespace, _ = session
    ood = namespace["ood"]
    assert "saturate" in ood.skipped  # grey digits: not applicable
    assert 0 < ood.mean_corruption_accuracy < ood.clean_accuracy
    assert "| **mean** |" in ood.to_markdown()


def test_the_search_result_example_writes_the_report(session):
    namespace, workdir = session
    paths = namespace["paths"]  # relative to the working directory, as given
    assert paths["report.md"].parts == ("report", "report.md")
    assert "## Pareto front" in (workdir / paths["report.md"]).read_text()
    assert "surrogate.png" not in paths  # a plain search


def test_the_predictor_example_fits_the_searched_trials(session):
    namespace, _ = session
    from flatnas_tf.tuners.predictors import POOL

    selection = namespace["predictor"].selection
    assert selection.points == len(namespace["trained"]) == 4 and selection.folds == 2
    assert selection.winner in POOL and set(selection.members) == set(POOL)
    accuracies = [namespace["result"].figures(t)["val_accuracy"] for t in namespace["trained"]]
    guess = float(namespace["guess"][0])
    assert min(accuracies) - 0.2 < guess < max(accuracies) + 0.2  # near the figures it learnt


def test_the_search_example_finds_a_front_of_trained_models(session):
    namespace, workdir = session
    result = namespace["result"]
    assert [t.status for t in result.trials] == ["COMPLETED"] * 4
    assert all(result.figures(t)["val_accuracy"] > 0.5 for t in result.front())
    assert namespace["same"] is namespace["chosen"]
    assert (workdir / "models" / "best" / "manifest.json").is_file()
    assert namespace["best"].count_params() > 0


def test_the_regime_and_weight_sharing_examples_learn(session):
    namespace, _ = session
    figures = namespace["figures"]
    assert figures["val_accuracy"] > 0.5 and figures["chance_p_value"] < 1e-3
    assert figures["robustness"] >= 0
    assert namespace["ws_tuner"].pareto_front()


def _command_lines() -> list[list[str]]:
    """Every `flatnas-tf ...` line of the shell and output blocks, as arguments."""
    lines = []
    for _, block in _blocks("bash", ""):
        for line in block.splitlines():
            # A command begins a line (after a prompt), or follows "&&" or "...: ".
            found = re.search(r"(?:^(?:\$ )?|&& |: )flatnas-tf (.*)", line)
            if found:
                command = found.group(1).split("  #")[0]
                command = re.sub(r"\[[^]]*\]", "", command)  # optional parts of a synopsis
                lines.append(shlex.split(command))
    return lines


#: How a `click.Path(exists=True)` parameter reports a missing path (click.BadParameter).
_MISSING_PATH = re.compile(r"(File|Directory|Path) ('.*'|\".*\") does not exist\.")


def _missing_path(error: click.UsageError) -> pathlib.Path | None:
    """The path that `error` reports missing, or None for any other usage error.

    Only a `click.BadParameter` of a `click.Path(exists=True)` parameter
    whose message is Click's "... does not exist." for a path that indeed
    does not exist qualifies (not its subclasses: `MissingParameter` is one).
    """
    parameter = getattr(error, "param", None)
    if type(error) is not click.BadParameter or parameter is None:
        return None
    kind = parameter.type
    found = _MISSING_PATH.fullmatch(error.message)
    if not (isinstance(kind, click.Path) and kind.exists and found):
        return None
    path = pathlib.Path(ast.literal_eval(found.group(2)))
    if found.group(1) != kind.name.title() or path.exists():
        return None
    return path


def _check_command_line(arguments: list[str]) -> None:
    """Parses a command line with the real CLI; fails on any usage error but a missing path.

    A file or directory of the example that is not here (relative, as in the
    README) is created in the working directory and the line parsed again,
    so that the parameters after it are checked too.
    """
    line = f"flatnas-tf {shlex.join(arguments)}"
    command = main.commands.get(arguments[0])
    if command is None:
        pytest.fail(f"{line}: no such command")
    for _ in range(len(arguments)):
        try:
            command.make_context(arguments[0], arguments[1:])
            return
        except click.UsageError as error:
            path = _missing_path(error)
            if path is None or path.is_absolute():
                pytest.fail(f"{line}: {error.format_message()}")
            if error.param.type.file_okay:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            else:
                path.mkdir(parents=True)
    pytest.fail(f"{line}: still a missing path after creating {len(arguments) - 1}")


def test_every_command_line_names_real_commands_and_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the example's files and directories are made
    lines = _command_lines()
    assert len(lines) >= 5
    for arguments in lines:
        _check_command_line(arguments)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["no-such-command"], "no such command"),
        (["search", "--no-such-option"], "No such option.*--no-such-option"),
        (["search", "--mode", "accuracy"], "'accuracy' is not one of 'flatnas', 'pareto'"),
        # After a missing path, which is made, so that the options after it are checked.
        (
            ["train", "--search", "runs/x", "--out", "m", "--epochs", "ten"],
            "'ten' is not a valid integer",
        ),
        (["evaluate", "model.keras", "--max-examples", "0"], "0 is not in the range x>=1\\."),
        # click.MissingParameter is a click.BadParameter too.
        (["train", "--search", "runs/x"], "Missing option '--out'"),
    ],
    ids=["command", "option", "choice", "integer", "range", "required"],
)
def test_the_command_line_check_fails_on_other_usage_errors(
    arguments, message, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pytest.fail.Exception, match=message):
        _check_command_line(arguments)


def test_the_command_line_check_makes_the_missing_paths_and_passes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _check_command_line(["evaluate", "runs/x/models/trial_006", "--ood", "builtin"])
    train = ["train", "--search", "runs/y", "--trial", "6", "--epochs", "30", "--out", "m"]
    _check_command_line(train)
    assert (tmp_path / "runs" / "x" / "models" / "trial_006").is_file()  # a file or a directory
    assert (tmp_path / "runs" / "y").is_dir()  # a directory only
