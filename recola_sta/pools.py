"""Worker process pools, and one serial-or-pool loop.

Corpus generation and face preprocessing run their recordings in a pool of
"spawn" processes (a forked child of a process that already runs TensorFlow
threads can deadlock). A spawned child first re-imports the parent's
`__main__` module, so that functions defined there can be unpickled. The
command-line entry points (`python -m recola_sta.train`, `preprocess`,
`synthetic`) are thin modules that import nothing heavy outside their
`if __name__ == "__main__"` block, and the tasks live in TensorFlow-free
modules (`recola_sta.cache.job`, `recola_sta.data.synthetic`): a worker
imports only OpenCV, dlib and NumPy code, never TensorFlow, by structure
(`tests/test_pools.py` checks the entry modules stay thin).

Each worker also exits when its parent dies: after a `kill -9` of the parent
the workers would otherwise live on (holding ~150 MB each and the resource
tracker) until their current task ends, and then wait forever for the next.

Ctrl-C reaches every process of the terminal's process group, the workers
too. A worker starts with SIGINT blocked (a KeyboardInterrupt while it
imports or waits for a task would print its own traceback) and takes it
only while it runs a task of `run_each`: the task stops there, also at its
start where the signal came earlier (its writers remove their temporary
files), and its future holds the KeyboardInterrupt, while the parent's own
KeyboardInterrupt cancels the queued tasks. The parent prints the one line.

`kept_pool` is one `spawn_pool` kept from call to call (predict's face
alignment, and the figures drawn meanwhile, reuse its warm workers).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.spawn
import os
import signal
import threading
from typing import Any, Callable, Iterator, Sequence

from recola_sta import cli


def _exit_with_parent() -> None:
    """In a worker: exits the process as soon as its parent process ends."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)  # no cleanup: the parent that would use any result is gone

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


_SIGINT = {signal.SIGINT}


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that starts with SIGINT blocked (`cli.interrupts_held`)."""

    def start(self) -> None:
        with cli.interrupts_held():
            super().start()


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


def _interruptible(fn: Callable[..., Any], *args: Any) -> Any:
    """In a worker: runs `fn(*args)` with SIGINT unblocked, so Ctrl-C (also
    one that arrived while the worker started or waited) raises
    KeyboardInterrupt in the task, into its future."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGINT)
    try:
        return fn(*args)
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)


def _start_worker(initializer: Callable[[], None] | None) -> None:
    """In a worker, first thing: exit with the parent, then run the initializer."""
    _exit_with_parent()
    if initializer is not None:
        initializer()


@contextlib.contextmanager
def spawn_pool(
    max_workers: int, initializer: Callable[[], None] | None = None
) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A "spawn" ProcessPoolExecutor; submit module-level functions only.

    On exit, queued tasks that have not started are cancelled (an interrupted
    run drops them instead of finishing them) and running ones are awaited.
    Workers exit by themselves if the parent is killed, and block SIGINT
    (`run_each` lets its tasks take it).

    Args:
        max_workers: processes in the pool, >= 1.
        initializer: called once in each worker before its first task.
    """
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}.")
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=max_workers, mp_context=_WorkerContext(), initializer=_start_worker,
        initargs=(initializer,))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def runs_inline(workers: int, tasks: int) -> bool:
    """Whether `run_each` runs `tasks` tasks in this process (one worker, or
    a single task: a pool would only add its start-up)."""
    return workers == 1 or tasks <= 1


def run_each(fn: Callable[..., Any], tasks: Sequence[tuple], workers: int, *,
             initializer: Callable[[], None] | None = None
             ) -> Iterator[tuple[int, concurrent.futures.Future]]:
    """Runs `fn(*task)` for every task; yields `(index, future)` as each ends.

    In this process, in order, where `runs_inline(workers, len(tasks))`;
    otherwise in a `spawn_pool` of `min(workers, len(tasks))` workers, in
    completion order. Either way a task's exception is in its future
    (`future.result()` raises it), so one failing task does not stop the
    others; KeyboardInterrupt and SystemExit propagate. Closing the
    generator early cancels the tasks not yet started.

    Args:
        fn: a module-level function (workers import it by name).
        tasks: the positional arguments of each call.
        workers: processes to use, >= 1.
        initializer: run once in each worker process (not inline).
    """
    if runs_inline(workers, len(tasks)):
        for index, task in enumerate(tasks):
            future: concurrent.futures.Future = concurrent.futures.Future()
            try:
                future.set_result(fn(*task))
            except Exception as e:  # handed to the caller through the future
                future.set_exception(e)
            yield index, future
        return
    with spawn_pool(min(workers, len(tasks)), initializer) as pool:
        # Submitting starts the workers: a Ctrl-C meanwhile takes effect
        # once the pool is whole, so its shutdown waits for every worker
        # (one still starting would otherwise find the pool's queues gone).
        with cli.interrupts_held():
            futures = {pool.submit(_interruptible, fn, *task): index
                       for index, task in enumerate(tasks)}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future


# The pool of `kept_pool`: (workers, its exit stack, the pool).
_KEPT: tuple[int, contextlib.ExitStack, concurrent.futures.ProcessPoolExecutor] | None = None


def kept_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A `spawn_pool` of `workers` processes kept for later calls: started
    on first use, closed at exit or when another size is asked."""
    global _KEPT
    if _KEPT is None or _KEPT[0] != workers:
        close_kept_pool()
        stack = contextlib.ExitStack()
        _KEPT = (workers, stack, stack.enter_context(spawn_pool(workers)))
    return _KEPT[2]


def running_kept_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor | None:
    """The kept pool where it runs with `workers` processes, else None (it
    is not started for this)."""
    return _KEPT[2] if _KEPT is not None and _KEPT[0] == workers else None


@atexit.register
def close_kept_pool() -> None:
    """Stops the kept pool, if any (a broken one too)."""
    global _KEPT
    if _KEPT is not None:
        stack, _KEPT = _KEPT[1], None
        stack.close()
