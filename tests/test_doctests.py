"""The worked examples in the library's docstrings are true."""

import doctest
import importlib
import pkgutil

import pytest

import rag

MODULES = sorted(
    m.name.removeprefix("rag.")
    for m in pkgutil.walk_packages(rag.__path__, "rag.")
    if not m.ispkg and m.name.rsplit(".", 1)[-1] not in ("ui", "__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"rag.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
