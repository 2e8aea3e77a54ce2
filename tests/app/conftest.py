"""Fixtures for the GUI tests: a throwaway user folder, app services with the built-in model, tiny images.

The built-in model ships in ``resources/models``, so these tests run on a bare clone (no ``../shared``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from studio_testutil import UnexpectedModalDialog, write_png

import app  # noqa: F401  # the app package itself, before the tests import its modules


@pytest.fixture
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every app folder (settings, models, logs, runs) at a temp dir via DIPNET_STUDIO_HOME."""
    home = tmp_path / "studio-home"
    monkeypatch.setenv("DIPNET_STUDIO_HOME", str(home))
    return home


@pytest.fixture
def tiny_image(tmp_path: Path) -> Path:
    return write_png(tmp_path / "inputs" / "tiny.png", 40, 32)


@pytest.fixture(scope="session")
def builtin_weights_path() -> Path:
    """The shipped model file, for tests that import "another" model into the library."""
    from dipnet_core.resources import builtin_model_path

    path = builtin_model_path()
    assert path is not None, "the built-in model is missing from resources/models"
    return path


@pytest.fixture
def ctx(studio_home: Path, qapp: object) -> Iterator[object]:
    """App services as on a fresh install: the built-in model is the default."""
    from app.controllers.context import AppContext
    from app.services.models import ModelLibrary
    from app.settings import AppPaths, SettingsStore

    store = SettingsStore(AppPaths.default().ensure())
    library = ModelLibrary(store)
    assert library.default_entry() is not None and library.default_entry().builtin
    yield AppContext(store, library)


@pytest.fixture
def window(ctx: object, qtbot: object) -> Iterator[object]:
    from app.window import MainWindow
    from app.workers import shutdown

    w = MainWindow(ctx)  # type: ignore[arg-type]
    qtbot.addWidget(w)  # type: ignore[attr-defined]
    w.resize(1000, 700)
    w.show()
    yield w
    w.train.shutdown(5000)
    assert shutdown(10_000)


_APP_TESTS = Path(__file__).resolve().parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    # pytest drops the test's fixture values (the window...) only after every teardown: collect
    # their cycles here, on the main thread, before a later test's worker thread could.
    if Path(item.path).resolve().is_relative_to(_APP_TESTS):
        import gc

        gc.collect()


_MODAL_ENTRY_POINTS = {
    "QMessageBox": ("question", "information", "warning", "critical", "about", "aboutQt"),
    "QFileDialog": ("getOpenFileName", "getOpenFileNames", "getSaveFileName", "getExistingDirectory"),
    "QInputDialog": ("getText", "getInt", "getDouble", "getItem", "getMultiLineText"),
}


@pytest.fixture(autouse=True)
def _no_modal_dialogs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail, instead of hanging, when code under test opens a modal dialog the test did not answer.

    A modal dialog runs its own event loop and waits for a click that never comes offscreen, so
    the suite used to hang there. Tests that expect a dialog answer it by patching the same
    entry point with ``monkeypatch`` (their patch, made later, wins). The raise reaches the test
    directly or, from a slot, through pytest-qt's exception capture; the list catches any call
    whose exception was swallowed on the way.
    """
    from PySide6 import QtWidgets

    opened: list[str] = []

    def refuse(name: str):
        def entry(*args: object, **kwargs: object) -> object:
            texts = [a for a in args if isinstance(a, str)]
            opened.append(f"{name}{tuple(texts)!r}")
            raise UnexpectedModalDialog(f"unexpected modal dialog {name} {texts!r}: answer it in the test")

        return staticmethod(entry)

    for cls_name, methods in _MODAL_ENTRY_POINTS.items():
        cls = getattr(QtWidgets, cls_name)
        for method in methods:
            monkeypatch.setattr(cls, method, refuse(f"{cls_name}.{method}"))

    def refuse_exec(self: QtWidgets.QDialog, *args: object) -> int:
        opened.append(f"{type(self).__name__}.exec")
        raise UnexpectedModalDialog(f"unexpected modal {type(self).__name__}.exec(): answer it in the test")

    monkeypatch.setattr(QtWidgets.QDialog, "exec", refuse_exec)
    yield opened
    assert not opened, f"modal dialog(s) opened during the test: {opened}"


@pytest.fixture(autouse=True)
def _gui_thread_gc(qapp: object) -> Iterator[object]:
    """As in the app: cycles are collected on the GUI thread only, never inside a worker.

    Set up before (so torn down after) the test's widgets; its teardown collects once more here,
    so no Qt garbage is left for a later test's worker thread to collect.
    """
    from app.gc_policy import GuiThreadGarbageCollector

    collector = GuiThreadGarbageCollector().install()
    yield collector
    from app.workers import shutdown

    stopped = shutdown(10_000)
    collector.uninstall()
    collector.deleteLater()
    assert stopped, "a background task did not stop"
