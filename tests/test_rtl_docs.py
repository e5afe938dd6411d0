# amaranth: UnusedElaboratable=no
"""The Python examples of docs/rtl.md run as written (they assert their own results)."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "rtl.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_rtl_doc_has_examples():
    assert len(EXAMPLES) >= 2     # the units' transactions and the widths / check_fits


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_rtl_doc_examples_run(index):
    exec(compile(EXAMPLES[index], f"docs/rtl.md block {index}", "exec"), {})  # noqa: S102
