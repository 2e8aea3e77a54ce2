"""The slim edition (no torch): the window builds, the Train tab explains the full edition.

Detection is faked by monkeypatching, and once for real in a subprocess where ``import torch``
fails (``sys.modules['torch'] = None``), without uninstalling anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_edition_detection_sees_a_blocked_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import edition

    assert edition.training_available() == (not edition.missing_training_packages())
    monkeypatch.setitem(sys.modules, "torch", None)  # what an install without torch looks like to find_spec
    assert "torch" in edition.missing_training_packages() and not edition.training_available()


def test_train_tab_explains_the_full_edition(studio_home: Path, qapp: object, qtbot: object,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from app import edition
    from app.controllers.context import AppContext
    from app.services.models import ModelLibrary
    from app.settings import AppPaths, SettingsStore
    from app.views.train_unavailable_view import TrainUnavailableView
    from app.window import MainWindow
    from app.workers import shutdown

    monkeypatch.setattr(edition, "missing_training_packages", lambda: ["torch"])
    store = SettingsStore(AppPaths.default().ensure())
    w = MainWindow(AppContext(store, ModelLibrary(store)))
    qtbot.addWidget(w)  # type: ignore[attr-defined]
    w.show()
    assert w.train is None
    tab = w.tabs.widget(w.TAB_TRAIN)
    assert isinstance(tab, TrainUnavailableView) and w.tabs.tabText(w.TAB_TRAIN) == "Train"
    text = tab.text()
    for needed in ("full edition", "Training your own", "Adapting a model to your kind of images",
                   "Exporting models", "Where to get it", "pip install torch",
                   "Not found in this install: torch"):
        assert needed in text, needed
    # Upscaling and the model manager are there; measuring quality (training code) is not.
    assert w.ctx.current_model() is not None
    w.tabs.setCurrentIndex(w.TAB_MODELS)
    w.models_view.select_id(w.ctx.current_model().id)
    assert w.models_view.bench_btn.isEnabled() and not w.models_view.quality_btn.isEnabled()
    assert "full edition" in w.models_view.quality_btn.toolTip()
    w.close()  # the close sequence must not need a training controller
    assert shutdown(10_000)


def test_full_edition_has_the_training_form(window: object) -> None:
    from app.views.train_view import TrainView

    assert isinstance(window.tabs.widget(window.TAB_TRAIN), TrainView)  # type: ignore[attr-defined]
    assert window.train is not None  # type: ignore[attr-defined]


_NO_TORCH_SCRIPT = r"""
import json, sys
sys.modules["torch"] = None  # import torch now fails, as in an install without it
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app.controllers.context import AppContext
from app.services.models import ModelLibrary
from app.settings import AppPaths, SettingsStore
from app.window import MainWindow
store = SettingsStore(AppPaths.default().ensure())
w = MainWindow(AppContext(store, ModelLibrary(store)))
w.show()
app.processEvents()
tab = w.tabs.widget(w.TAB_TRAIN)
print(json.dumps({
    "train_tab": type(tab).__name__,
    "text": tab.text() if hasattr(tab, "text") else "",
    "model": w.ctx.current_model().name if w.ctx.current_model() else None,
    "model_error": w.ctx.current_model().error if w.ctx.current_model() else None,
    "pyqtgraph": "pyqtgraph" in sys.modules,
    "training_code": sorted(m for m in sys.modules
                            if m.startswith(("dipnet_core.train.", "app.controllers.train"))),
}))
w.close()
"""


def test_window_builds_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "DIPNET_STUDIO_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["train_tab"] == "TrainUnavailableView"
    assert "full edition" in result["text"] and "torch" in result["text"]
    assert result["model"] and not result["model_error"], result  # the built-in model is listed and usable
    assert not result["pyqtgraph"], "the slim window imported pyqtgraph (the Train tab's plots)"
    assert result["training_code"] == [], result["training_code"]


def test_without_torch_the_onnx_twin_runs(monkeypatch: pytest.MonkeyPatch, builtin_weights_path: Path,
                                          tmp_path: Path) -> None:
    from app.edition import model_file_for_inference

    twin = builtin_weights_path.with_suffix(".onnx")
    assert twin.is_file(), "the built-in model ships with its .onnx twin"
    assert model_file_for_inference(builtin_weights_path) == builtin_weights_path  # torch here: as given
    monkeypatch.setitem(sys.modules, "torch", None)
    assert model_file_for_inference(builtin_weights_path) == twin
    assert model_file_for_inference(twin) == twin
    alone = tmp_path / "no-twin.safetensors"
    alone.write_bytes(builtin_weights_path.read_bytes())
    assert model_file_for_inference(alone) == alone  # nothing to swap in: the loader says what is missing


def test_a_trained_models_comparison_shows_without_torch(builtin_weights_path: Path, tmp_path: Path) -> None:
    """The Models tab reads a trained model's recorded comparison from its header, not through the
    training code (which needs torch)."""
    import dataclasses

    from dipnet_core.models import load_model, save_model

    loaded = load_model(builtin_weights_path)
    recorded = {"datasets": {"validation": {"psnr_y": {"new": 30.5, "start": 30.1, "bicubic": 28.0}}}}
    descriptor = dataclasses.replace(loaded.descriptor, training={**loaded.descriptor.training, "comparison": recorded})
    trained = save_model(tmp_path / "trained.safetensors", loaded.module, descriptor)
    script = ("import json, sys\nsys.modules['torch'] = None\nfrom app.services.models import stored_comparison\n"
              f"print(json.dumps([stored_comparison({str(trained)!r}), stored_comparison({str(builtin_weights_path)!r})]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [recorded, None]
