"""The demo suite in examples/ runs as a new user would run it, with and without xdist."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("xdist", [[], ["-p", "xdist", "-n", "2"]], ids=["serial", "xdist"])
def test_examples_pass(pytester: pytest.Pytester, image: str, xdist: list[str]) -> None:
    result = pytester.runpytest_subprocess(str(EXAMPLES), *xdist)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        ["run *: created * networks and * containers; removed * networks and * containers"]
    )
