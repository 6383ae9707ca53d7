"""Every fixed wait in the tests, scaled for a loaded machine.

``APPLIANCE_TEST_TIME_FACTOR`` (a number, at least 1; default 1) multiplies every deadline
a test waits under (polling loops, subprocess and HTTP timeouts, pytest-timeout's limits),
so that a machine busy with other work makes the tests slower, not red. The base values
are at least three times what the slowest green run needed; the factor only adds to them.

Waits that are part of what a test checks (a cache's lifetime, a lease, an upper bound
on how long the code may take) are not scaled: only how long a test is willing to wait.
"""

from __future__ import annotations

import os
import time

ENV = "APPLIANCE_TEST_TIME_FACTOR"


def time_factor() -> float:
    """The factor from the environment: 1 when unset or empty."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return 1.0
    try:
        factor = float(raw)
    except ValueError:
        raise ValueError(f"{ENV}={raw!r}: expected a number, such as 2 or 2.5") from None
    if not factor >= 1:  # also refuses nan
        raise ValueError(f"{ENV}={raw!r}: must be at least 1 (it only lengthens deadlines)")
    return factor


def scaled(seconds: float) -> float:
    """``seconds`` times the factor: for ``timeout=`` arguments and waits."""
    return seconds * time_factor()


def deadline(seconds: float) -> float:
    """The ``time.monotonic()`` instant ``scaled(seconds)`` from now."""
    return time.monotonic() + scaled(seconds)
