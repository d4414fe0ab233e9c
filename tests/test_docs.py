"""The specification's worked examples are executed: the numbers in the doc are the code's."""
import doctest
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("name", ["arithmetic.md"])
def test_doc_examples(name):
    res = doctest.testfile(str(DOCS / name), module_relative=False,
                           optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert res.attempted > 10 and res.failed == 0
