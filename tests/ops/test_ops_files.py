"""The deployment files are checked offline (CI has no Docker engine): ``ops/validate.py``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

OPS = Path(__file__).resolve().parents[2] / "ops"


def _validate(ops: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(OPS / "validate.py"), "--ops-dir", str(ops)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_shipped_files_pass() -> None:
    done = _validate(OPS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ops files: ok"


@pytest.mark.parametrize(
    ("file", "old", "new", "complaint"),
    [
        ("compose.yml", "  dispatch-b:\n    <<: *dispatch\n", "", "fewer than two dispatch"),
        ("compose.yml", "?target_session_attrs=read-write", "", "lacks target_session_attrs"),
        ("haproxy.cfg", "option httpchk GET /readyz", "option httpchk GET /", "/readyz"),
        ("haproxy.cfg", "    server b dispatch-b:8080 check\n", "", "for dispatch-b"),
        ("Dockerfile", "USER 10001:10001", "USER root", "runs as root"),
        ("Dockerfile", "FROM python:3.11-slim-bookworm AS build", "", "multi-stage"),
        ("prometheus-rules.yml", "dispatch_position_follow_age_seconds", "dispatch_lag", "unknown"),
        ("compose.yml", "services:", "services: [", "compose.yml:"),
    ],
)
def test_a_broken_file_is_named(
    tmp_path: Path, file: str, old: str, new: str, complaint: str
) -> None:
    ops = tmp_path / "ops"
    shutil.copytree(OPS, ops)
    text = (ops / file).read_text()
    assert old in text
    (ops / file).write_text(text.replace(old, new))
    done = _validate(ops)
    assert done.returncode == 1
    assert complaint in done.stderr
