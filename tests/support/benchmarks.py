"""Running a benchmark script's `main` as its command line would, in a test."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable


def run_benchmark(main: Callable[[list[str]], dict], out: pathlib.Path, *argv: str) -> dict:
    """`main([*argv, "--out", out])`, checked to have written exactly what it returned.

    Returns:
        The benchmark's JSON object, as read back from `out`.
    """
    result = main([*argv, "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(result)), "--out must hold the printed object"
    assert written["benchmark"] == out.stem and written["git"]["commit"]
    return written
