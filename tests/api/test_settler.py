"""The settler that writes audit events off the request path."""

from __future__ import annotations

import threading

from appliance.api.accounting import Settler


def test_work_runs_in_the_background_and_close_flushes_it() -> None:
    settler = Settler(workers=2, max_pending=10)
    release = threading.Event()
    done: list[int] = []

    def slow(i: int) -> None:
        release.wait(5)
        done.append(i)

    for i in range(4):
        settler.submit(lambda i=i: slow(i))
    assert done == []  # submit did not wait
    release.set()
    settler.close()
    assert sorted(done) == [0, 1, 2, 3]


def test_backpressure_runs_work_inline_when_too_much_is_pending() -> None:
    settler = Settler(workers=1, max_pending=1)
    release = threading.Event()
    ran_inline = []
    settler.submit(lambda: release.wait(5))  # occupies the only slot
    settler.submit(lambda: ran_inline.append(threading.current_thread().name))
    assert ran_inline == [threading.current_thread().name]
    release.set()
    settler.close()


def test_after_close_work_still_runs() -> None:
    settler = Settler(workers=1)
    settler.close()
    ran: list[bool] = []
    settler.submit(lambda: ran.append(True))
    assert ran == [True]
