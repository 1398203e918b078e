"""Shared helpers: the lookm binary under test and a runner that records exit code and output."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Fixtures"


def lookm_bin() -> str:
    return os.environ.get("LOOKM_BIN", str(ROOT / ".build" / "release" / "lookm"))


def run(*args, stdin=None, check=None, **kw):
    """Runs lookm; `check` = expected exit code (asserted when given)."""
    p = subprocess.run([lookm_bin(), *map(str, args)], input=stdin, capture_output=True, **kw)
    if check is not None:
        assert p.returncode == check, f"exit {p.returncode}, stderr: {p.stderr.decode(errors='replace')}"
    return p


@pytest.fixture(scope="session")
def lookm():
    path = lookm_bin()
    assert os.access(path, os.X_OK), f"{path} missing: run scripts/setup.sh"
    return path


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synth")


def synth(path, *flags):
    run("synth", "-o", path, *flags, check=0)
    return path
