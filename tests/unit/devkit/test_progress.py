"""Progress bars are for a person at a terminal: elsewhere they draw nothing."""

from __future__ import annotations

import pytest

from pipeline.devkit.progress import progress_bar, show_progress


def test_no_bar_without_a_terminal_or_when_not_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert not show_progress(False)
    with progress_bar("scoring history", 10) as report:  # stderr is captured here, not a terminal
        for done in range(11):
            report(done)
    assert capsys.readouterr() == ("", "")
