"""The public API (``import cryoneuro``): lazy names, and every example in its docstrings run.

The examples in :mod:`cryoneuro.api` assert physics and arithmetic that hold independently of the
code (argon boils at -185.85 °C at 1 atm; EQ-5D-5L full health scores 1 by definition; nested
isotherms), so they fail if the functions they document break. ``plan`` and ``analyse`` run a
planner and a trial analysis end to end, so they are in the slow tier.
"""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest

import cryoneuro
from cryoneuro import api

SLOW = {"plan", "analyse"}


def _examples() -> list:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(api) if t.examples and t.name != api.__name__]
    params = []
    for t in sorted(tests, key=lambda t: t.name):
        short = t.name.rsplit(".", 1)[-1]
        marks = [pytest.mark.slow] if short in SLOW else []
        params.append(pytest.param(t, id=short, marks=marks))
    return params


@pytest.mark.parametrize("example", _examples())
def test_docstring_examples_run(example: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(example)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
    assert result.attempted > 0


def test_every_public_name_has_an_example() -> None:
    names = {p.id for p in _examples()}
    assert names == set(api.__all__)
    assert set(cryoneuro.__all__) == {"__version__", *api.__all__}


def test_names_resolve_to_the_api_functions() -> None:
    for name in api.__all__:
        assert getattr(cryoneuro, name) is getattr(api, name)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = cryoneuro.nonexistent


def test_import_is_lazy() -> None:
    # a fresh interpreter: importing the package must not pull in the numerical layers
    code = (
        "import sys, cryoneuro; "
        "print(sorted(m for m in ('numpy', 'numba', 'cryoneuro.thermal', 'cryoneuro.api') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", check=True
    )
    assert out.stdout.strip() == "[]"
