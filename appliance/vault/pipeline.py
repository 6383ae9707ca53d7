"""A three-stage chunk pipeline with constant memory: read | transform | sink.

A reader thread fills a small ring of reused input buffers from a file descriptor; the
calling thread transforms each block (encrypt or decrypt, which hold the GIL) into a
reused output buffer; a sink thread writes and/or hashes it (system calls and SHA-256
release the GIL), in order. On two cores the I/O and hashing overlap with the cipher.
Memory is ``depth`` input and output buffers whatever the file's size.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from appliance.vault.fsutil import read_full

Transform = Callable[[int, memoryview, memoryview], int]  # (index, data, out) -> out length
Sink = Callable[[int, memoryview, memoryview], None]  # (index, data, out[:length])
DEPTH = 3


class ShortRead(Exception):
    """Block ``index`` came back with ``got`` bytes: the file ends early."""

    def __init__(self, index: int, got: int) -> None:
        super().__init__(f"block {index}: {got} bytes")
        self.index, self.got = index, got


_STOP: Any = object()


def run(
    fd: int,
    lengths: Sequence[int],
    transform: Transform,
    sink: Sink,
    *,
    in_size: int,
    out_size: int,
    progress: Callable[[int], None] | None = None,
    depth: int = DEPTH,
    threaded: bool = True,
) -> None:
    """Read blocks of ``lengths`` from ``fd`` (from its current offset), in order."""
    if not threaded:
        _run_inline(fd, lengths, transform, sink, in_size, out_size, progress)
        return
    in_free: queue.SimpleQueue[Any] = queue.SimpleQueue()
    out_free: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for _ in range(depth):
        in_free.put(bytearray(in_size))
        out_free.put(bytearray(out_size))
    ready: queue.SimpleQueue[Any] = queue.SimpleQueue()
    done: queue.SimpleQueue[Any] = queue.SimpleQueue()
    errors: list[BaseException] = []
    aborted = threading.Event()

    def reader() -> None:
        try:
            for n in lengths:
                buf = in_free.get()
                if buf is _STOP or aborted.is_set():
                    return
                got = read_full(fd, memoryview(buf)[:n])
                ready.put((buf, got))
                if got < n:
                    return
        except BaseException as exc:
            ready.put(exc)

    def sinker() -> None:
        while True:
            item = done.get()
            if item is _STOP:
                return
            index, inbuf, got, outbuf, length = item
            if not errors and not aborted.is_set():
                try:
                    sink(index, memoryview(inbuf)[:got], memoryview(outbuf)[:length])
                except BaseException as exc:
                    errors.append(exc)
            in_free.put(inbuf)
            out_free.put(outbuf)

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=sinker)]
    for thread in threads:
        thread.start()
    try:
        for index, n in enumerate(lengths):
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            inbuf, got = item
            if got < n:
                in_free.put(inbuf)
                raise ShortRead(index, got)
            if errors:
                raise errors[0]
            outbuf = out_free.get()
            length = transform(index, memoryview(inbuf)[:got], memoryview(outbuf))
            done.put((index, inbuf, got, outbuf, length))
            if progress is not None:
                progress(got)
    except BaseException:
        aborted.set()
        raise
    finally:
        in_free.put(_STOP)
        done.put(_STOP)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


def _run_inline(
    fd: int,
    lengths: Sequence[int],
    transform: Transform,
    sink: Sink,
    in_size: int,
    out_size: int,
    progress: Callable[[int], None] | None,
) -> None:
    inbuf, outbuf = bytearray(in_size), bytearray(out_size)
    for index, n in enumerate(lengths):
        data = memoryview(inbuf)[:n]
        got = read_full(fd, data)
        if got < n:
            raise ShortRead(index, got)
        length = transform(index, data, memoryview(outbuf))
        sink(index, data, memoryview(outbuf)[:length])
        if progress is not None:
            progress(got)


class Cancelled(Exception):
    """Another file's work failed: this one stops at its next chunk."""


def workers_for(sizes: Sequence[int], cores: int | None = None) -> int:
    """How many files to process at once: several only for a sharded model (files of
    similar size), at most one per core and four in all; else one file at a time, each
    through the threaded pipeline."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    largest = sorted(sizes, reverse=True)
    if len(largest) < 2 or largest[1] < max(largest[0] // 4, 1):
        return 1
    shards = sum(1 for size in largest if size >= largest[0] // 4)
    return max(1, min(4, cores, shards))


def for_each_file(
    sizes: Sequence[int],
    work: Callable[[int, bool, Callable[[int], None]], None],
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> None:
    """Call ``work(index, threaded, progress)`` for every file, largest first, on
    ``workers`` threads (each file then runs its chunks inline: the cipher holds the GIL
    only a sixth of the time, so whole files overlap better than stages do). The first
    failure stops the others at their next chunk and is raised."""
    workers = workers_for(sizes) if workers is None else workers
    if workers <= 1:
        for index in range(len(sizes)):
            work(index, True, progress or (lambda _n: None))
        return
    order = iter(sorted(range(len(sizes)), key=lambda i: -sizes[i]))
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def advance(n: int) -> None:
        if stop.is_set():
            raise Cancelled()
        if progress is not None:
            with lock:
                progress(n)

    def worker() -> None:
        while not stop.is_set():
            with lock:
                index = next(order, None)
            if index is None:
                return
            try:
                work(index, False, advance)
            except BaseException as exc:
                if not isinstance(exc, Cancelled):
                    errors.append(exc)
                stop.set()
                return

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        stop.set()
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]
