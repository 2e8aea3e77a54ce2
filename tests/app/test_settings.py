from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.settings import AppPaths, Settings, SettingsStore


def test_home_override_puts_every_folder_under_it(studio_home: Path) -> None:
    paths = AppPaths.default().ensure()
    for d in (paths.config_dir, paths.data_dir, paths.log_dir, paths.models_dir, paths.runs_dir):
        assert d.is_dir() and studio_home in d.parents


def test_roundtrip_and_forgiving_load(studio_home: Path) -> None:
    store = SettingsStore(AppPaths.default().ensure())
    store.settings.tile_size = 256
    store.settings.add_recent("/a.png")
    store.settings.add_recent("/b.png")
    store.settings.add_recent("/a.png")
    store.save()
    again = SettingsStore(store.paths).settings
    assert again.tile_size == 256 and again.recent_files == ["/a.png", "/b.png"]

    raw = json.loads(store.paths.settings_file.read_text())
    raw.update(tile_size="big", batch_recursive=1, unknown_future_key=True, quality=80)
    store.paths.settings_file.write_text(json.dumps(raw))
    loaded = SettingsStore(store.paths).settings
    assert loaded.tile_size == Settings().tile_size  # wrong type -> default
    assert loaded.batch_recursive is Settings().batch_recursive  # int is not a bool
    assert loaded.quality == 80

    store.paths.settings_file.write_text("{not json")
    assert SettingsStore(store.paths).settings == Settings()


def test_settings_survive_a_restart_of_the_main_window(ctx: object, qtbot: object, tmp_path: Path) -> None:
    from app.controllers.context import AppContext
    from app.services.models import ModelLibrary
    from app.window import MainWindow

    w = MainWindow(ctx)  # type: ignore[arg-type]
    qtbot.addWidget(w)  # type: ignore[attr-defined]
    w.show()
    w.upscale_view.set_mode("side")
    w.upscale_view.format_combo.setCurrentIndex(1)  # JPG
    w.upscale_view.quality_spin.setValue(77)
    w.batch_view.skip_existing.setChecked(False)  # the default skips: overwriting is the choice to keep
    w.batch.add_inputs([tmp_path])
    w.models_view.tile_auto.setChecked(False)
    w.models_view.tile_spin.setValue(384)
    w.tabs.setCurrentIndex(w.TAB_MODELS)
    w.close()

    store = type(ctx.store)(ctx.store.paths)  # type: ignore[attr-defined]  # a fresh load from disk
    w2 = MainWindow(AppContext(store, ModelLibrary(store)))
    qtbot.addWidget(w2)  # type: ignore[attr-defined]
    assert w2.upscale_view.mode() == "side"
    assert w2.upscale_view.save_format() == "jpg" and w2.upscale_view.quality_spin.value() == 77
    assert not w2.batch_view.skip_existing.isChecked()
    assert w2.batch.inputs == [tmp_path]
    assert w2.models_view.tile_size() == 384 and store.settings.tile_size == 384
    assert w2.tabs.currentIndex() == w2.TAB_MODELS
    assert w2.ctx.current_model() is not None and w2.ctx.current_model().name == "dipnet-studio-x4"
    w2.close()


@pytest.mark.parametrize("bad", ["[1, 2]", '"text"'])
def test_non_dict_settings_file_gives_defaults(studio_home: Path, bad: str) -> None:
    paths = AppPaths.default().ensure()
    paths.settings_file.write_text(bad)
    assert SettingsStore(paths).settings == Settings()
