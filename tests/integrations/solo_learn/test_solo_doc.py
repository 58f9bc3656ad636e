"""The examples of docs/integrations.md's solo-learn section run as written; no solo-learn needed."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "integrations.md"


def section(title: str) -> str:
    """A level-2 section of the page, up to the next level-2 heading, with code fences blanked out
    (a closing fence right after an example would otherwise be read as part of its output)."""
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return re.sub(r"^```.*$", "", text[start : end if end != -1 else len(text)], flags=re.MULTILINE)


def test_solo_learn_examples_run_as_written():
    parser = doctest.DocTestParser()
    test = parser.get_doctest(section("solo-learn"), {}, "docs/integrations.md#solo-learn", str(DOC), 0)
    assert len(test.examples) >= 5, "the solo-learn section lost its examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0, f"{runner.failures} example(s) of {DOC} failed, see the output above"
