"""The worked examples in the library's docstrings are true."""

import doctest
import importlib
import pkgutil

import pytest

import rag

MODULES = sorted(m.name for m in pkgutil.iter_modules(rag.__path__) if m.name not in ("ui", "__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"rag.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
