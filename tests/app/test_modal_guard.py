"""The app tests' guard against modal dialogs: an unanswered one fails the test instead of hanging it."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox
from studio_testutil import UnexpectedModalDialog

from app.views.comparison import confirm_install

WORSE = {"worse_than_reference": True, "reference": "built-in", "models": {}}


def test_app_code_reaching_a_modal_question_fails_with_its_title(_no_modal_dialogs: list[str]) -> None:
    with pytest.raises(UnexpectedModalDialog, match="Install a model that is worse"):
        confirm_install(None, "mine", WORSE)
    assert _no_modal_dialogs == [_no_modal_dialogs[0]] and "QMessageBox.question" in _no_modal_dialogs[0]
    _no_modal_dialogs.clear()  # seen on purpose: do not fail this test at teardown


def test_file_dialogs_and_exec_are_refused(qtbot: object, _no_modal_dialogs: list[str]) -> None:
    with pytest.raises(UnexpectedModalDialog, match="Open image"):
        QFileDialog.getOpenFileName(None, "Open image", "", "*.png")
    dialog = QDialog()
    with pytest.raises(UnexpectedModalDialog, match="QDialog.exec"):
        dialog.exec()
    assert len(_no_modal_dialogs) == 2
    _no_modal_dialogs.clear()


def test_a_test_that_answers_the_dialog_wins(monkeypatch: pytest.MonkeyPatch, _no_modal_dialogs: list[str]) -> None:
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.Yes)
    assert confirm_install(None, "mine", WORSE) is True
    assert _no_modal_dialogs == []


def test_a_dialog_opened_from_a_slot_is_recorded(qtbot: object, _no_modal_dialogs: list[str]) -> None:
    # Raised inside a Qt slot, the exception goes to pytest-qt's capture rather than to the test;
    # the guard's record is what fails the test then.
    with qtbot.capture_exceptions() as raised:  # type: ignore[attr-defined]
        QTimer.singleShot(0, lambda: confirm_install(None, "mine", WORSE))
        qtbot.waitUntil(lambda: bool(_no_modal_dialogs), timeout=2000)  # type: ignore[attr-defined]
    assert len(raised) == 1 and raised[0][0] is UnexpectedModalDialog
    _no_modal_dialogs.clear()
