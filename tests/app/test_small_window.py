"""What the screenshots at 1024x640 showed: the Train tab's Start button scrolled out of sight, the
model card cut off, and loss-legend labels drawn in the other theme's colour over the curves."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QScrollArea


def _show_small(window: object, tab: int) -> None:
    w = window
    w.resize(1024, 640)  # type: ignore[attr-defined]
    w.tabs.setCurrentIndex(tab)  # type: ignore[attr-defined]
    QApplication.processEvents()


def test_start_training_stays_in_sight_at_1024x640(window: object) -> None:
    _show_small(window, window.TAB_TRAIN)  # type: ignore[attr-defined]
    form = window.train_view.form  # type: ignore[attr-defined]
    for btn in (form.start_btn, form.resume_btn, form.cancel_btn):
        visible = btn.visibleRegion().boundingRect()
        assert visible.size() == btn.size(), f"{btn.text()} is cut off or scrolled away: {visible}"
    scroll = form.parentWidget().parentWidget()
    assert isinstance(scroll, QScrollArea)
    assert scroll.verticalScrollBar().maximum() > 0  # the form itself does scroll at this size...
    assert scroll.horizontalScrollBar().maximum() == 0  # ...but only one way


def test_model_card_scrolls_instead_of_being_cut_off(window: object) -> None:
    _show_small(window, window.TAB_MODELS)  # type: ignore[attr-defined]
    mv = window.models_view  # type: ignore[attr-defined]
    mv.banner.show_message("A banner takes room from the card.", "info")
    mv.select_id(window.ctx.library.default_entry().id)  # type: ignore[attr-defined]
    QApplication.processEvents()
    card = mv.details
    assert "File" in card.text()
    # The whole card is laid out (the scroll area shows the rest), not squeezed into the space left.
    assert card.height() >= card.heightForWidth(card.width())
    assert mv.details_scroll.verticalScrollBar().maximum() > 0


def test_loss_legend_labels_follow_the_theme(qtbot: object) -> None:
    from app.theme import make_palette
    from app.views.train_view import TrainMonitor

    m = TrainMonitor()
    qtbot.addWidget(m)  # type: ignore[attr-defined]
    legend = m.loss_plot.plotItem.legend
    assert not legend.isVisible()  # no empty box before the first curve
    m.setPalette(make_palette(True))
    m.add_losses(2, {"total": 0.5, "l1_hr": 0.4})  # the labels are made in the dark theme
    m.setPalette(make_palette(False))
    light_text = make_palette(False).text().color().name()
    assert legend.isVisible()
    for _sample, label in legend.items:
        assert light_text in label.item.toHtml(), f"{label.text} keeps the dark theme's colour"
    assert legend.opts["brush"].color().alpha() < 255  # the box lets the curves under it show
    m.clear_plots()
    assert not legend.isVisible()


def test_models_table_fits_1024_without_horizontal_scrolling(window: object) -> None:
    _show_small(window, window.TAB_MODELS)  # type: ignore[attr-defined]
    mv = window.models_view  # type: ignore[attr-defined]
    QApplication.processEvents()
    table = mv.table
    assert table.horizontalScrollBar().maximum() == 0
    shown = [mv.COLUMNS[c] for c in range(table.columnCount()) if not table.isColumnHidden(c)]
    assert {"Name", "PSNR-Y", "Speed"} <= set(shown)  # the columns that tell models apart stay
    window.resize(1600, 1000)  # type: ignore[attr-defined]
    QApplication.processEvents()
    assert not any(table.isColumnHidden(c) for c in range(table.columnCount()))  # room again: all back
