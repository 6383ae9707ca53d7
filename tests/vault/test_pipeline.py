"""The chunk pipeline: order, constant buffers, errors from any stage stop it cleanly."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from appliance.vault import pipeline


def source(tmp_path: Path, size: int) -> int:
    path = tmp_path / "data"
    path.write_bytes(os.urandom(size))
    return os.open(path, os.O_RDONLY)


@pytest.mark.parametrize("threaded", [True, False])
def test_blocks_arrive_in_order_and_whole(tmp_path: Path, threaded: bool) -> None:
    data = os.urandom(10_000)
    (tmp_path / "d").write_bytes(data)
    fd = os.open(tmp_path / "d", os.O_RDONLY)
    lengths = [1000] * 10
    got: list[bytes] = []

    def upper(index: int, block: memoryview, out: memoryview) -> int:
        out[: len(block)] = block
        return len(block)

    pipeline.run(
        fd,
        lengths,
        upper,
        lambda i, _d, out: got.append(bytes(out)),
        in_size=1000,
        out_size=1000,
        threaded=threaded,
    )
    os.close(fd)
    assert b"".join(got) == data


def test_a_short_file_is_reported_with_its_block(tmp_path: Path) -> None:
    fd = source(tmp_path, 2500)
    with pytest.raises(pipeline.ShortRead) as short:
        pipeline.run(fd, [1000] * 3, lambda i, d, o: 0, lambda *a: None, in_size=1000, out_size=1)
    assert (short.value.index, short.value.got) == (2, 500)
    os.close(fd)


@pytest.mark.parametrize("stage", ["transform", "sink"])
def test_an_error_in_any_stage_stops_every_thread(tmp_path: Path, stage: str) -> None:
    fd = source(tmp_path, 100 * 100)
    seen: list[int] = []

    def transform(index: int, block: memoryview, out: memoryview) -> int:
        if stage == "transform" and index == 5:
            raise ValueError("bad chunk 5")
        return 0

    def sink(index: int, block: memoryview, out: memoryview) -> None:
        seen.append(index)
        if stage == "sink" and index == 5:
            raise OSError(28, "No space left on device")

    before = threading.active_count()
    with pytest.raises((ValueError, OSError)):
        pipeline.run(fd, [100] * 100, transform, sink, in_size=100, out_size=1)
    assert threading.active_count() == before
    assert max(seen, default=0) < 5 + pipeline.DEPTH + 1  # it stopped soon after
    os.close(fd)


@pytest.mark.parametrize(
    ("sizes", "cores", "workers"),
    [
        ([100], 8, 1),
        ([100, 1, 1, 1], 8, 1),  # one big file and small ones: stages overlap instead
        ([100, 90, 95], 2, 2),
        ([100, 90, 95, 99, 98, 97], 8, 4),
        ([100, 90], 1, 1),
    ],
)
def test_files_run_in_parallel_only_for_sharded_models(
    sizes: list[int], cores: int, workers: int
) -> None:
    assert pipeline.workers_for(sizes, cores) == workers


def test_the_first_failing_file_stops_the_others() -> None:
    done: list[int] = []

    def work(index: int, threaded: bool, advance: object) -> None:
        assert not threaded
        if index == 0:  # the largest goes first
            raise ValueError("file 0 chunk 3")
        for _ in range(1000):
            advance(1)  # type: ignore[operator]
            time.sleep(0.001)
        done.append(index)

    with pytest.raises(ValueError, match="file 0 chunk 3"):
        pipeline.for_each_file([100, 90, 80], work, workers=2)
    assert done == []
