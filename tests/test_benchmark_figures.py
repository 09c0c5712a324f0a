"""Every benchmark figure the README and the guide quote comes from a committed run.

Benchmarks write their JSON (figures, settings, machine, commit, date) with
`--out docs/benchmarks/<name>.json`. A paragraph of README.md or of a guide
page (`support.guide`; pages link `benchmarks/<name>.json`) that links such
a file quotes that one run: every number in its prose (code spans and link
targets aside) must be a number of that JSON, at the precision the paragraph
shows (a fraction may be shown in percent, seconds in milliseconds). A
paragraph that cites `benchmarks/<name>.py` next to figures must link the
run it quotes, unless the benchmark is in `PENDING`.
"""

import json
import math
import re

import pytest
from support.guide import ROOT, guide_pages

RUNS = ROOT / "docs" / "benchmarks"

#: Benchmarks whose README figures predate committed runs: each is run with --out and
#: linked, then leaves this list (issue 29). Nothing else may cite figures.
PENDING: set[str] = set()

RUN_LINK = re.compile(r"(?:docs/)?benchmarks/([a-z_]+)\.json")
SCRIPT = re.compile(r"benchmarks/([a-z_]+)\.py")
FIGURE = re.compile(r"^(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:e(-?\d+))?(x|%|s|ms)?$")
SCALES = (1, 100, 1000)  # as stored; a fraction in percent; seconds in milliseconds


def _paragraphs(text: str) -> list[str]:
    """The paragraphs of a Markdown text, fenced code blocks left out.

    A table belongs to the paragraph before it (which says what it holds).
    """
    blocks, lines, fenced = [], [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.strip():
            lines.append(line)
        elif lines:
            blocks.append("\n".join(lines))
            lines = []
    if lines:
        blocks.append("\n".join(lines))
    paragraphs: list[str] = []
    for block in blocks:
        if block.startswith("|") and paragraphs:
            paragraphs[-1] += "\n" + block
        else:
            paragraphs.append(block)
    return paragraphs


def _figures(paragraph: str) -> list[tuple[str, float, int, int]]:
    """(as written, value, decimals, exponent) of each number in a paragraph's prose.

    4.5e-8 is (4.5, 1, -8): a value shown in scientific notation is compared
    at the precision of its mantissa.
    """
    prose = re.sub(r"`[^`]*`", " ", paragraph)  # commands, options, names
    prose = re.sub(r"\]\([^)]*\)", "]", prose)  # link targets
    found = []
    for word in prose.split():
        word = word.strip("*()[],;:.!?\"'")
        match = FIGURE.match(word)
        if match:
            whole, decimals, exponent, _ = match.groups()
            value = float(whole.replace(",", "") + ("." + decimals if decimals else ""))
            found.append((word, value, len(decimals or ""), int(exponent or 0)))
    return found


def _numbers(data) -> list[float]:
    """Every number (not a boolean) anywhere in a JSON value."""
    if isinstance(data, bool):
        return []
    if isinstance(data, (int, float)):
        return [float(data)] if math.isfinite(data) else []
    if isinstance(data, dict):
        return [n for value in data.values() for n in _numbers(value)]
    if isinstance(data, list):
        return [n for value in data for n in _numbers(value)]
    return []


def unquoted_figures(paragraph: str, *runs: dict) -> list[str]:
    """The numbers of a paragraph that none of the runs it links holds."""
    numbers = _numbers(list(runs))
    return [
        word
        for word, value, decimals, exponent in _figures(paragraph)
        if not any(
            round(scale * n / 10.0**exponent, decimals) == value
            for n in numbers
            for scale in SCALES
        )
    ]


def _guide_paragraphs() -> list[str]:
    """Every paragraph of README.md and of the guide's pages."""
    return [paragraph for page in guide_pages() for paragraph in _paragraphs(page.read_text())]


def _linking_paragraphs() -> list[tuple[list[str], str]]:
    """(stems of the runs it links, paragraph) for each paragraph linking a run."""
    found = []
    for paragraph in _guide_paragraphs():
        stems = RUN_LINK.findall(paragraph)
        if stems:
            found.append((stems, paragraph))
    return found


def test_the_checker_finds_a_figure_the_run_does_not_hold():
    run = {"settings": {"images": 2000}, "plain_s": 0.0736, "ratio": 1.9712, "share": 0.314}
    quoted = "Over 2,000 images (`--repeats 3`): plain 73.6 ms, **ratio 1.97**, 31.4% of it."
    assert unquoted_figures(quoted, run) == []
    assert unquoted_figures("plain 73.7 ms, ratio 1.97", run) == ["73.7"]
    assert unquoted_figures("ratio 1.970", run) == ["1.970"]  # more precision than the run
    assert unquoted_figures("within 7.4e-2 and 7.36e-2", run) == []  # scientific notation
    assert unquoted_figures("within 7.3e-2", run) == ["7.3e-2"]
    assert unquoted_figures("a 32x32x3 batch on x86_64, ZDT1", run) == []  # not figures
    table = "Over 2,000 images:\n\n| run | s |\n|---|---|\n| plain | 73.6 |\n| SAM | 145.1 |"
    (paragraph,) = _paragraphs(table)
    assert unquoted_figures(paragraph, run) == ["145.1"]  # a table is its paragraph's


def _run(stem: str) -> dict:
    return json.loads((RUNS / f"{stem}.json").read_text())


def test_every_linked_run_exists_and_says_where_and_when_it_ran():
    cited = {stem for stems, _ in _linking_paragraphs() for stem in stems}
    assert cited, "neither README.md nor the guide links a committed benchmark run"
    for stem in cited:
        run = _run(stem)
        # <benchmark>.json, or <benchmark>_<variant>.json for a second setting.
        assert stem == run["benchmark"] or stem.startswith(run["benchmark"] + "_"), stem
        assert re.fullmatch(r"[0-9a-f]{40}", run["git"]["commit"]), stem
        assert run["git"]["dirty"] is False, f"{stem}: measured on uncommitted code"
        for key in ("date", "machine", "settings"):
            assert run[key], (stem, key)


@pytest.mark.parametrize("stems, paragraph", _linking_paragraphs(), ids=lambda v: str(v)[:40])
def test_every_figure_of_a_paragraph_is_in_the_runs_it_links(stems, paragraph):
    assert unquoted_figures(paragraph, *(_run(stem) for stem in stems)) == [], paragraph


def test_a_paragraph_quoting_a_benchmark_links_its_run():
    for paragraph in _guide_paragraphs():
        linked = {_run(stem)["benchmark"] for stem in RUN_LINK.findall(paragraph)}
        for name in set(SCRIPT.findall(paragraph)) - linked - PENDING:
            if _figures(paragraph):
                pytest.fail(f"the guide quotes benchmarks/{name}.py without its run: {paragraph}")


def test_pending_benchmarks_are_not_yet_linked():
    # A benchmark leaves PENDING when its run is committed and linked.
    linked = {_run(stem)["benchmark"] for stems, _ in _linking_paragraphs() for stem in stems}
    assert not PENDING & linked
    assert all((ROOT / "benchmarks" / f"{name}.py").exists() for name in PENDING)
