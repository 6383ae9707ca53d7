"""Vault benchmark: seal, open and unseal multi-GB random files against a plain copy.

Run: ``.venv/bin/python -m pytest -m perf tests/perf/test_vault_bench.py -s``.

Inputs are random files on disk (the temp directory's file system); outputs go to tmpfs
(/dev/shm), as unsealing does in production, and are removed after each run. Every timing
is the median of interleaved repeats (the copy and the unseal alternate, so a neighbour's
load hits both alike). "Cold" evicts the inputs from the page cache first
(``posix_fadvise(DONTNEED)`` after ``fsync``); "warm" reads them once beforehand. Per-core
decrypt throughput is bytes per CPU-second of the process. Peak RSS is measured in a fresh
process that seals and unseals one file of 1 GiB, then of 4 GiB.

The table prints absolute figures; what is asserted is relative to baselines measured in
the same run, never an absolute speed (on a loaded machine every figure drops): the
pipeline's decryption per core against the bare primitive's (``AESGCM.decrypt_into`` on
one chunk, in a loop, one thread), and the peak memory's growth with the file's size.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.vault.keys import EnvKeyProvider
from appliance.vault.store import Vault
from appliance.vault.unseal import unseal, wipe

pytestmark = pytest.mark.perf

GIB = 1 << 30
DATASET_FILES = 3  # x 1 GiB: the multi-GB directory
REPEATS = 7
SHM = Path("/dev/shm")
KEK = {"BENCH_KEK": "42" * 32}
ROOT = Path(__file__).resolve().parents[2]
AES = "aes0"  # the first of the sealed copies, kept for the reads
# The vault's decryption per core (bytes per CPU-second, all its threads) at least this
# share of the bare AES-256-GCM primitive's, measured in the same run (measured on this
# 2-core machine: 4.5 against 6.7 GB/s, 0.67; the old absolute target was 4 GB/s).
MIN_SHARE_OF_PRIMITIVE = 0.5


def random_file(path: Path, size: int, seed: int) -> None:
    """Incompressible bytes fast: an AES-CTR keystream (os.urandom is ~10x slower)."""
    stream = Cipher(algorithms.AES(bytes([seed]) * 32), modes.CTR(bytes(16))).encryptor()
    block = bytes(16 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        left = size
        while left:
            n = min(left, len(block))
            os.write(fd, stream.update(block[:n]))
            left -= n
        os.fsync(fd)
    finally:
        os.close(fd)


def files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file()]


def copy_synced(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    for path in files(dst):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def evict(root: Path) -> None:
    for path in files(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(root: Path) -> None:
    buf = bytearray(16 << 20)
    for path in files(root):
        with path.open("rb", buffering=0) as handle:
            while handle.readinto(buf):
                pass


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not SHM.is_dir():
        pytest.skip("no /dev/shm")
    root = tmp_path_factory.mktemp("vault-bench")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def shm_out() -> Iterator[Path]:
    out = SHM / f"vault-bench-{os.getpid()}"
    yield out
    shutil.rmtree(out, ignore_errors=True)


RSS_CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from appliance.vault.keys import EnvKeyProvider
    from appliance.vault.store import Vault
    from appliance.vault.unseal import unseal, wipe

    src, vault_dir, out = (Path(a) for a in sys.argv[1:4])
    vault = Vault(vault_dir, EnvKeyProvider("BENCH_KEK"))

    def hwm():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    before = hwm()
    vault.import_dir(src, "rss")
    unseal(vault, "rss", out)
    wipe(out)
    print(json.dumps({"before": before, "peak": hwm()}))
    """
)


def peak_rss(bench_dir: Path, size: int, out: Path) -> dict[str, int]:
    src = bench_dir / f"rss-{size // GIB}g"
    src.mkdir()
    random_file(src / "weights.bin", size, seed=7)
    vault_dir = bench_dir / f"rss-vault-{size // GIB}g"
    child = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(src), str(vault_dir), str(out)],
        env={**os.environ, **KEK},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=True,
    )
    shutil.rmtree(src)
    shutil.rmtree(vault_dir)
    result: dict[str, int] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def gbps(size: int, seconds: float) -> float:
    return size / seconds / 1e9


def primitive_decrypt_cpu(chunk_size: int, total: int) -> float:
    """CPU seconds the bare primitive takes to decrypt ``total`` bytes: chunks of the
    vault's size, sealed beforehand in memory, decrypted in turn into a reused buffer on
    one thread. The baseline for the vault's own figure: the same cipher, none of the
    reading, pipelining or bookkeeping. The chunks span 256 MiB, more than any cache
    holds, as a model's files do (one chunk decrypted again and again from the cache runs
    about twice as fast as anything the vault ever reads)."""
    aead = AESGCM(bytes(range(32)))
    aad, plain = b"baseline", bytes(chunk_size)
    count = max(1, (256 << 20) // chunk_size)
    sealed = [
        (i.to_bytes(12, "big"), aead.encrypt(i.to_bytes(12, "big"), plain, aad))
        for i in range(count)
    ]
    out = bytearray(chunk_size)
    rounds = max(count, total // chunk_size)

    def run() -> None:
        for i in range(rounds):
            nonce, data = sealed[i % count]
            aead.decrypt_into(nonce, data, aad, out)

    cpu = statistics.median(timed(run)[1] for _ in range(3))
    return cpu * total / (rounds * chunk_size)


def test_vault_throughput_unseal_versus_copy_and_memory(bench_dir: Path, shm_out: Path) -> None:
    src = bench_dir / "model"
    src.mkdir()
    for i in range(DATASET_FILES):
        random_file(src / f"model-{i + 1:05d}-of-{DATASET_FILES:05d}.safetensors", GIB, seed=i)
    (src / "config.json").write_text('{"model_type": "llama"}\n', encoding="utf-8")
    size = sum(p.stat().st_size for p in files(src))
    os.environ.update(KEK)
    vault = Vault(bench_dir / "vault", EnvKeyProvider("BENCH_KEK"))
    rows: list[tuple[str, str]] = []

    # Encrypt (import: read, AES-256-GCM, write + fsync, SHA-256 on the sink thread),
    # against a plain copy to the same disk, synced alike.
    copies, seals = [], []
    for attempt in range(3):
        warm(src)
        copies.append(timed(lambda: copy_synced(src, bench_dir / "plain-copy"))[0])
        shutil.rmtree(bench_dir / "plain-copy")
        warm(src)
        seals.append(timed(lambda: vault.import_dir(src, f"aes{attempt}"))[0])  # noqa: B023
    for attempt in (1, 2):
        shutil.rmtree(bench_dir / "vault" / f"aes{attempt}")
    copy_s, seal_s = statistics.median(copies), statistics.median(seals)
    rows.append(("plain copy to the vault's disk (+ fsync), GB/s", f"{gbps(size, copy_s):.2f}"))
    rows.append(("AES-256-GCM seal to disk (import + SHA-256), GB/s", f"{gbps(size, seal_s):.2f}"))
    first = next(p for p in files(src) if p.stat().st_size == GIB)
    one = bench_dir / "one"
    one.mkdir()
    os.link(first, one / "weights.bin")
    warm(one)
    for cipher in ("aes-256-gcm", "sm4-gcm"):
        in_memory = Vault(shm_out / "vault", EnvKeyProvider("BENCH_KEK"))
        seal_wall, _ = timed(lambda: in_memory.import_dir(one, "one", cipher))  # noqa: B023
        opened_one = in_memory.open("one")
        open_wall, _ = timed(
            lambda: in_memory.read_file(opened_one, 0, lambda _o: None, hash_check=False)  # noqa: B023
        )
        shutil.rmtree(shm_out)
        rows.append(
            (f"{cipher} seal to tmpfs (import + SHA-256), GB/s", f"{gbps(GIB, seal_wall):.2f}")
        )
        rows.append(
            (f"{cipher} open (decrypt, tags checked), 1 GiB, GB/s", f"{gbps(GIB, open_wall):.2f}")
        )

    # Decrypt in the vault's own pipeline, nothing written: wall and per core.
    opened = vault.open(AES)
    warm(bench_dir / "vault" / AES)

    def decrypt_all(threaded: bool = True) -> None:
        for index in range(len(opened.manifest.files)):
            vault.read_file(opened, index, lambda _out: None, hash_check=False, threaded=threaded)

    runs = [timed(decrypt_all) for _ in range(3)]
    dec_wall = statistics.median(r[0] for r in runs)
    dec_cpu = statistics.median(r[1] for r in runs)
    inline_cpu = statistics.median(timed(lambda: decrypt_all(False))[1] for _ in range(3))
    primitive_cpu = primitive_decrypt_cpu(vault.chunk_size, size)
    share = primitive_cpu / dec_cpu
    rows.append(("AES-256-GCM open (decrypt, tags checked), GB/s", f"{gbps(size, dec_wall):.2f}"))
    rows.append(("  same, per core (bytes / CPU-second), GB/s", f"{gbps(size, dec_cpu):.2f}"))
    rows.append(("  same, one thread, per core, GB/s", f"{gbps(size, inline_cpu):.2f}"))
    rows.append(
        (
            "  bare AESGCM.decrypt_into, one chunk, per core, GB/s",
            f"{gbps(size, primitive_cpu):.2f}",
        )
    )
    rows.append(("  vault per core / bare primitive per core", f"{share:.2f}"))
    verify_wall, _ = timed(lambda: vault.verify(AES))
    rows.append(("AES-256-GCM verify (tags + SHA-256), GB/s", f"{gbps(size, verify_wall):.2f}"))

    # Unseal versus a plain copy of the same files to tmpfs, interleaved, warm then cold.
    ratios: dict[str, float] = {}
    for mode in ("warm", "cold"):
        prepare = evict if mode == "cold" else warm
        copies, unseals, copy_cpu, unseal_cpu = [], [], [], []
        for _ in range(REPEATS):
            prepare(src)
            wall, cpu = timed(lambda: shutil.copytree(src, shm_out))
            copies.append(wall)
            copy_cpu.append(cpu)
            shutil.rmtree(shm_out)
            prepare(bench_dir / "vault" / AES)
            wall, cpu = timed(lambda: unseal(vault, AES, shm_out))
            unseals.append(wall)
            unseal_cpu.append(cpu)
            wipe(shm_out)
        copy_s, unseal_s = statistics.median(copies), statistics.median(unseals)
        ratios[mode] = unseal_s / copy_s
        pairs = " ".join(f"{u / c:.2f}" for u, c in zip(unseals, copies, strict=True))
        rows.append((f"plain copy to tmpfs, {mode}, GB/s (median)", f"{gbps(size, copy_s):.2f}"))
        rows.append((f"unseal to tmpfs, {mode}, GB/s (median)", f"{gbps(size, unseal_s):.2f}"))
        rows.append((f"unseal / copy time, {mode}, median of {REPEATS}", f"{ratios[mode]:.2f}"))
        rows.append((f"  best unseal / best copy, {mode}", f"{min(unseals) / min(copies):.2f}"))
        rows.append((f"  each pair, {mode}", pairs))
        cpu_ratio = statistics.median(unseal_cpu) / statistics.median(copy_cpu)
        rows.append((f"  unseal / copy CPU-seconds (all threads), {mode}", f"{cpu_ratio:.2f}"))

    # Bit-exact on the large files.
    unseal(vault, AES, shm_out, hash_check=True)
    assert {p.name for p in files(shm_out)} - {".appliance-unsealed"} == {
        p.name for p in files(src)
    }
    wipe(shm_out)

    shutil.rmtree(bench_dir / "vault")

    # Peak memory: independent of the file's size.
    rss = {n: peak_rss(bench_dir, n * GIB, shm_out) for n in (1, 4)}
    for n, r in rss.items():
        rows.append(
            (
                f"peak RSS, seal + unseal of one {n} GiB file, MiB",
                f"{r['peak'] / 2**20:.0f} (at start {r['before'] / 2**20:.0f})",
            )
        )

    width = max(len(k) for k, _ in rows)
    title = f"vault benchmark ({size // 2**20} MiB of random files)"
    print(f"\n{title:<{width}} | value")
    print(f"{'-' * width}-|------")
    for key, value in rows:
        print(f"{key:<{width}} | {value}")

    growth = rss[4]["peak"] - rss[1]["peak"]
    assert growth < 32 * 2**20, f"peak RSS grew {growth / 2**20:.0f} MiB from 1 to 4 GiB"
    assert share >= MIN_SHARE_OF_PRIMITIVE, (
        f"the vault decrypts {gbps(size, dec_cpu):.2f} GB/s per core, {share:.2f} of the bare "
        f"primitive's {gbps(size, primitive_cpu):.2f} in this run, under {MIN_SHARE_OF_PRIMITIVE}"
    )
