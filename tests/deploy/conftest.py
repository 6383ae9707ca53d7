"""Every test in tests/deploy is a deployment test: marked ``deploy``, so that the fast loop
(`make check`, ``-m "not deploy"``) leaves them to `make test`."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items, not only this directory's.
    for item in items:
        if Path(item.path).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.deploy)
