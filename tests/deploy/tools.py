"""The command-line tools the deployment tests drive (nginx, promtool, docker-compose,
ansible-playbook): found, or the test fails with a clear message in CI (where
.ci/deploy-tools installs them) and is skipped elsewhere."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import pytest

# Where Debian puts nginx (often not on a non-root PATH), and the virtualenv's scripts.
EXTRA_DIRS = (Path(sys.executable).parent, Path("/usr/sbin"), Path("/usr/local/sbin"))
INSTALL_HINT = "run .ci/deploy-tools (apt-get install nginx prometheus docker-compose)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def find(program: str) -> str | None:
    """The path of ``program`` on PATH or in EXTRA_DIRS, else None."""
    found = shutil.which(program)
    if found is None:
        for folder in EXTRA_DIRS:
            candidate = folder / program
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return found


def missing(message: str) -> NoReturn:
    """A prerequisite is missing: the test fails in CI (where `make test` provides every
    one) and is skipped elsewhere."""
    if in_ci():
        pytest.fail(f"{message} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(message)


def require(program: str, hint: str = INSTALL_HINT) -> str:
    """The path of ``program``; fails the test in CI and skips it elsewhere when missing."""
    found = find(program)
    if found is None:
        missing(f"{program} is not installed: {hint}")
    return found
