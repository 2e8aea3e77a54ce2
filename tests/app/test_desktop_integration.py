"""--install-desktop / --uninstall-desktop in a temporary XDG data home."""

from __future__ import annotations

import configparser
from pathlib import Path

from app.desktop_integration import (
    MIME_TYPES,
    DesktopFiles,
    desktop_entry,
    install_desktop,
    uninstall_desktop,
)


def test_install_writes_launcher_and_icons_then_uninstall_removes_them(tmp_path: Path) -> None:
    files = DesktopFiles(tmp_path / "share")
    unrelated = tmp_path / "share" / "applications" / "other.desktop"
    unrelated.parent.mkdir(parents=True)
    unrelated.write_text("[Desktop Entry]\nName=Other\n")

    written = install_desktop(files, command=["/opt/dipnet studio/dipnet-studio"])
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(files.desktop_file)
    d = entry["Desktop Entry"]
    assert d["Exec"] == "'/opt/dipnet studio/dipnet-studio' %F"  # quoted: the path has a space
    assert d["Icon"] == "dipnet-studio"
    assert set(d["MimeType"].strip(";").split(";")) == set(MIME_TYPES)
    png = files.icon_file(256).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert files.icon_file(None).read_text().lstrip().startswith("<")

    removed = uninstall_desktop(files)
    assert sorted(removed) == sorted(written)
    assert not any(p.exists() for p in written)
    assert unrelated.exists()  # only our own files go
    assert uninstall_desktop(files) == []


def test_for_user_honours_xdg_data_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert DesktopFiles.for_user().desktop_file == tmp_path / "xdg" / "applications" / "dipnet-studio.desktop"


def test_entry_lists_every_mime_type_once() -> None:
    text = desktop_entry(["dipnet-studio"])
    line = next(l for l in text.splitlines() if l.startswith("MimeType="))
    types = line.split("=", 1)[1].strip(";").split(";")
    assert len(types) == len(set(types)) == len(MIME_TYPES)
