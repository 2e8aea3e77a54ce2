"""Run the `dipnet` CLI in-process for a test: (exit code, stdout, stderr), never a traceback."""

from __future__ import annotations

import pytest

from dipnet_core.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err
