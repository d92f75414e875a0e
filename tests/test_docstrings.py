"""Every Example in a docstring of crfseg runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import crfseg


def _modules() -> list[str]:
    names = [crfseg.__name__] + [
        info.name for info in pkgutil.walk_packages(crfseg.__path__, prefix="crfseg.")]
    return sorted(n for n in names if not n.endswith("__main__"))


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for name in _modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples and test.name.startswith(module.__name__):
                tests.append(test)
    return sorted(tests, key=lambda t: t.name)


EXAMPLES = _examples()


def test_the_package_has_examples_to_run():
    assert len(EXAMPLES) > 50


@pytest.mark.parametrize("example", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    result = runner.run(example, out=out.append, clear_globs=True)
    assert result.failed == 0, "".join(out)
