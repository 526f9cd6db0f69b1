"""Hashing many quick-pay codes in worker processes that never outlive the import.

argon2 is CPU-bound, so a big import hashes its codes in processes, one per core (at most
8). They are started with `spawn`: a clean interpreter, not a fork of a threaded web or test
process, and a direct child of the import, not of a shared fork server that would keep
running after it. Each worker takes one small chunk at a time through a pipe of its own and
ends when the import dies, however it dies (a SIGKILL included):

- on Linux the kernel kills it at once (`prctl(PR_SET_PDEATHSIG, SIGKILL)`);
- anywhere, its next read of the pipe finds the import's end closed and it exits, and a
  watchdog thread exits when its parent process changes (the import is gone).
"""

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait

from ...security import hash_code

# Codes per message: small, so a worker notices a dead import within a fraction of a second.
CHUNK = 64
PR_SET_PDEATHSIG = 1
WATCHDOG_SECONDS = 0.5


def worker_count() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def hash_in_processes(codes: list[str], meanwhile: Callable) -> tuple[list, object]:
    """argon2id hashes of `codes`, in order, from worker processes, and what `meanwhile()`
    (run here meanwhile) returned. Without worker processes (a host that forbids them),
    the codes are hashed here."""
    with Pool() as pool:
        return pool.hash(codes, meanwhile)


class Pool:
    """Hashing processes started on first use and kept until the import ends (`close`, or
    leaving the `with` block), so a streamed import hashes chunk after chunk without
    starting processes for each."""

    def __init__(self):
        self.workers: list[tuple[multiprocessing.Process, object]] | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        _stop(self.workers or [])
        self.workers = []

    def _start(self) -> list:
        context = multiprocessing.get_context("spawn")
        workers: list[tuple[multiprocessing.Process, object]] = []
        try:
            for _ in range(worker_count()):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_work, args=(theirs, os.getpid()), name="import-hash", daemon=True
                )
                process.start()
                theirs.close()
                workers.append((process, ours))
        except OSError:
            _stop(workers)
            return []
        return workers

    def hash(self, codes: list[str], meanwhile: Callable = lambda: None) -> tuple[list, object]:
        if self.workers is None:
            self.workers = self._start()
        if not self.workers:
            return [hash_code(code) for code in codes], meanwhile()
        chunks = [codes[i : i + CHUNK] for i in range(0, len(codes), CHUNK)]
        results: list = [None] * len(chunks)
        failure: list[BaseException] = []
        feeder = threading.Thread(
            target=_feed,
            args=([conn for _, conn in self.workers], chunks, results, failure),
            daemon=True,
        )
        feeder.start()
        other = meanwhile()
        feeder.join()
        if failure:  # a worker died (killed by hand, out of memory): hash the rest here
            self.close()
            results = [
                r if r is not None else [hash_code(c) for c in chunk]
                for r, chunk in zip(results, chunks, strict=True)
            ]
        return [h for chunk in results for h in chunk], other


def _feed(conns: list, chunks: list[list[str]], results: list, failure: list) -> None:
    """Give each worker one chunk at a time and file its answer, until every chunk is back."""
    todo = iter(range(len(chunks)))
    busy: dict = {}

    def give(conn) -> None:
        index = next(todo, None)
        if index is not None:
            busy[conn] = index
            conn.send(chunks[index])

    try:
        for conn in conns:
            give(conn)
        while busy:
            for conn in wait(list(busy)):
                results[busy.pop(conn)] = conn.recv()
                give(conn)
    except (EOFError, OSError) as error:
        failure.append(error)


def _stop(workers: list) -> None:
    """Tell each worker to stop (`None`), close the pipes, and make sure they are gone."""
    for _, conn in workers:
        try:
            conn.send(None)
        except OSError:
            pass
        conn.close()
    for process, _ in workers:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


def _work(conn, parent: int) -> None:
    """A worker: hash chunks until told to stop or until the import is gone."""
    _die_with_parent(parent)
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):  # the import closed its end, or died
            return
        if chunk is None:
            return
        try:
            conn.send([hash_code(code) for code in chunk])
        except OSError:
            return


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCHDOG_SECONDS)
    os._exit(1)
