"""The xcb system-library check shared by ``scripts/setup.sh`` and ``dipnet-studio``, on faked ``ldd`` output."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app import xcb_check

# What ldd printed for the PySide6 6.11 plugin on a bare Debian 12 (trimmed; the three
# libraries the issue reports missing, plus one name that is not in the table).
LDD_ON_BARE_DEBIAN = """\
\tlinux-vdso.so.1 (0x00007ffd8a5f2000)
\tlibQt6XcbQpa.so.6 => /venv/lib/python3.11/site-packages/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f...)
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007f...)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-cursor.so.0 => not found
\tlibfoo-bar2.so.5 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f...)
"""
LDD_ALL_FOUND = "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f...)\n\tlibc.so.6 => /lib/libc.so.6\n"

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin exists on Linux only")


def test_missing_libraries_are_parsed_in_order_once() -> None:
    assert xcb_check.missing_libraries(LDD_ON_BARE_DEBIAN) == [
        "libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libfoo-bar2.so.5"]
    assert xcb_check.missing_libraries(LDD_ALL_FOUND) == []


@pytest.mark.parametrize("soname,package", [
    ("libxcb-cursor.so.0", "libxcb-cursor0"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libfoo-bar2.so.5", "libfoo-bar2-5"),  # Debian's rule: a dash before the number after a digit
    ("libzap.so.3", "libzap3"),
])
def test_debian_package_names(soname: str, package: str) -> None:
    assert xcb_check.package_for(soname) == package


@linux_only
def test_check_prints_the_exact_apt_line(tmp_path: Path) -> None:
    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"")
    seen: list[Path] = []

    def fake_ldd(path: Path) -> str:
        seen.append(path)
        return LDD_ON_BARE_DEBIAN

    hint = xcb_check.check_xcb(run_ldd=fake_ldd, plugin=plugin)
    assert seen == [plugin]
    assert hint is not None
    assert "sudo apt-get install libfoo-bar2-5 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1\n" in hint
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4, libxcb-keysyms.so.1" in hint
    assert xcb_check.check_xcb(run_ldd=lambda _p: LDD_ALL_FOUND, plugin=plugin) is None


@linux_only
def test_real_plugin_is_found_and_real_ldd_runs() -> None:
    plugin = xcb_check.xcb_plugin_path()
    assert plugin is not None and plugin.name == "libqxcb.so" and "PySide6" in plugin.parts
    assert "libxcb" in xcb_check._run_ldd(plugin)  # the plugin really links the xcb libraries


@pytest.mark.parametrize("env,expected", [
    ({}, True), ({"QT_QPA_PLATFORM": "xcb"}, True), ({"QT_QPA_PLATFORM": "offscreen"}, False),
    ({"WAYLAND_DISPLAY": "wayland-0"}, False), ({"WAYLAND_DISPLAY": "w", "QT_QPA_PLATFORM": "xcb"}, True),
])
@linux_only
def test_xcb_will_be_used(env: dict[str, str], expected: bool) -> None:
    assert xcb_check.xcb_will_be_used(env) is expected


@linux_only
def test_dipnet_studio_prints_the_hint_instead_of_crashing(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import app.__main__ as entry

    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"")
    monkeypatch.setattr(xcb_check, "xcb_plugin_path", lambda: plugin)
    monkeypatch.setattr(xcb_check, "_run_ldd", lambda _p: LDD_ON_BARE_DEBIAN)
    monkeypatch.setattr(xcb_check, "xcb_will_be_used", lambda: True)
    monkeypatch.setattr(entry, "build_app", lambda *_a: pytest.fail("the app must not start"))
    assert entry.main([]) == 1
    err = capsys.readouterr().err
    assert "sudo apt-get install libfoo-bar2-5 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in err


def test_import_error_of_a_system_library_gives_the_install_hint() -> None:
    from app.xcb_check import hint_for_import_error

    hint = hint_for_import_error(ImportError("libGL.so.1: cannot open shared object file: No such file or directory"))
    assert hint is not None and "libGL.so.1" in hint and "sudo apt-get install libgl1" in hint
    broken = hint_for_import_error(ImportError("/lib/x86_64-linux-gnu/libEGL.so.1: file too short"))
    assert broken is not None and "libegl1" in broken
    assert hint_for_import_error(ImportError("No module named 'PySide6'")) is None
