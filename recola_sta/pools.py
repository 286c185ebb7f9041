"""Worker process pools that start in under a second, and one serial-or-pool loop.

Corpus generation and face preprocessing run their recordings in a pool of
"spawn" processes (a forked child of a process that already runs TensorFlow
threads can deadlock). A spawned child first re-imports the parent's
`__main__` module so that functions defined there can be unpickled; under
`python -m recola_sta.train` that module imports TensorFlow and Keras, which
costs every worker 6-20 s of start-up and ~600 MB of memory before it does any
work, although the workers run only OpenCV, dlib and NumPy code from
`recola_sta.synthetic` and `recola_sta.preprocess`.

`spawn_pool` hides the parent's main module from the children while it starts
them, so each child imports only what its tasks need. Tasks are module-level
functions. Where they (or their arguments' classes) belong to the main module
itself, as under `python -m recola_sta.preprocess`, where the parent pickles
them as `__main__._track_recording` and `__main__._Job`, each worker loads the
parent's main module the first time it needs one of its names, as spawn would
have at its start (run as `__mp_main__`, so its `if __name__ == "__main__"`
block does not run): a worker pays for the main module only when its tasks
come from there.

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
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import multiprocessing
import multiprocessing.connection
import multiprocessing.spawn
import os
import pickle
import signal
import sys
import threading
import types
from typing import Any, Callable, Iterator, Sequence

_MISSING = object()


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Makes `multiprocessing.spawn` see a `__main__` with nothing to re-import.

    Spawn's preparation data names the main module by `__main__.__spec__`
    (run with -m) or `__main__.__file__` (a script); without either the
    child keeps its own bootstrap `__main__`.
    """
    main = sys.modules["__main__"]
    saved = {name: getattr(main, name, _MISSING) for name in ("__spec__", "__file__")}
    main.__spec__ = None
    if saved["__file__"] is not _MISSING:
        del main.__file__
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is not _MISSING:
                setattr(main, name, value)


def _exit_with_parent() -> None:
    """In a worker: exits the process as soon as its parent process ends."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)  # no cleanup: the parent that would use any result is gone

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _main_preparation() -> dict[str, str]:
    """What spawn would tell a child about the parent's main module: its name
    (run with -m) or its path (a script); empty where it has neither (-c, an
    interactive session)."""
    data = multiprocessing.spawn.get_preparation_data("main")
    return {key: data[key] for key in ("init_main_from_name", "init_main_from_path")
            if key in data}


class _LazyMain(types.ModuleType):
    """A worker's `__main__` until a pickle names one of its attributes.

    The first such lookup loads the parent's main module the way spawn does
    at a child's start (`multiprocessing.spawn.prepare`, which runs it as
    `__mp_main__` and installs it as `__main__`), then answers from it.
    Dunder lookups (`__file__`, `__path__`, ...) that tools make on every
    module load nothing.
    """

    def __init__(self, preparation: dict[str, str]):
        super().__init__("__main__")
        self.__dict__["_preparation"] = preparation

    def __getattr__(self, name: str) -> Any:
        preparation = self.__dict__.get("_preparation")
        if name.startswith("__") or not preparation:
            raise AttributeError(f"module '__main__' has no attribute {name!r}")
        self.__dict__["_preparation"] = None  # load once, whatever happens
        multiprocessing.spawn.prepare(preparation)
        main = sys.modules["__main__"]
        if main is self:  # e.g. a package's __main__, which spawn never re-runs
            raise AttributeError(f"module '__main__' has no attribute {name!r}")
        return getattr(main, name)


_SIGINT = {signal.SIGINT}


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C held back for the block: a process started meanwhile inherits
    SIGINT blocked (through exec too), and here a Ctrl-C that arrives
    meanwhile raises its KeyboardInterrupt when the block ends, not halfway
    through starting a process (which would leave it without its
    preparation data, printing a traceback)."""
    caught: list[tuple] = []
    handler = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
            if caught and callable(handler):
                handler(*caught[0])


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that starts with SIGINT blocked (`_interrupts_held`)."""

    def start(self) -> None:
        with _interrupts_held():
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


def _start_worker(preparation: dict[str, str], initializer: bytes) -> None:
    """In a worker, first thing: exit with the parent, make the parent's main
    module loadable on demand, then run the pickled initializer (unpickled
    only now, so that one from the main module resolves too)."""
    _exit_with_parent()
    sys.modules["__main__"] = _LazyMain(preparation)
    initializer_fn = pickle.loads(initializer)
    if initializer_fn is not None:
        initializer_fn()


@contextlib.contextmanager
def spawn_pool(
    max_workers: int, initializer: Callable[[], None] | None = None
) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A "spawn" ProcessPoolExecutor whose workers skip the parent's `__main__`.

    The main module stays hidden while the pool is open (the executor starts
    its processes as tasks are submitted); submit module-level functions
    only. Those of the main module (and classes of it in their arguments)
    make a worker load it when it first meets one.
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
    # Both read while the main module is visible: spawn's name of it, and the
    # initializer pickled now (by name), to be resolved in the worker.
    start = functools.partial(_start_worker, _main_preparation(), pickle.dumps(initializer))
    with _main_module_hidden():
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=max_workers,
            mp_context=_WorkerContext(),
            initializer=start,
        )
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
        fn: a module-level function (workers import it by name; one of the
            main module makes them load it, see `spawn_pool`).
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
        with _interrupts_held():
            futures = {pool.submit(_interruptible, fn, *task): index
                       for index, task in enumerate(tasks)}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future
