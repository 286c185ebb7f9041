"""The one-writer lock of a folder (`io_utils.exclusive_lock`) and its users:
a second holder is refused, whatever the timing, and a dead holder's lock
never blocks anyone; `evaluate` refuses a run folder that a trainer holds.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

# Only light modules here: the spawned contenders import this module
# (recola_sta.evaluate, which loads TensorFlow, is imported where it is used).
from recola_sta import io_utils

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRIALS = 80
PROCESSES = 8


def _contend(path: str, stale_pid: int, barrier, inside, peak, held, guard) -> None:
    """One contender (a spawned process): in every trial, waits for the
    others, tries the lock, and holds it a moment while counting holders."""
    for trial in range(TRIALS):
        # Every contender is here (the previous trial is over); in every
        # other trial one of them first leaves the file a killed holder of
        # the former lock (a JSON file created with O_EXCL) left behind.
        if barrier.wait() == 0 and trial % 2:
            pathlib.Path(path).write_text(json.dumps({"host": socket.gethostname(),
                                                      "pid": stale_pid}))
        barrier.wait()  # start together
        try:
            with io_utils.exclusive_lock(path, "the folder"):
                with guard:
                    inside.value += 1
                    held.value += 1
                    peak.value = max(peak.value, inside.value)
                time.sleep(0.03)
                with guard:
                    inside.value -= 1
        except io_utils.LockedError:
            pass


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.slow
def test_processes_that_start_together_never_hold_the_lock_twice(tmp_path):
    context = multiprocessing.get_context("spawn")  # no fork of a TensorFlow process
    barrier = context.Barrier(PROCESSES)
    inside, peak, held = (context.Value("i", 0) for _ in range(3))
    guard = context.Lock()
    path = tmp_path / ".lock"
    processes = [context.Process(target=_contend, args=(str(path), _dead_pid(), barrier, inside,
                                                        peak, held, guard))
                 for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    assert held.value >= TRIALS  # someone held it in every trial
    assert peak.value == 1  # and never two at once


def test_a_second_open_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / ".lock"
    with io_utils.exclusive_lock(path, "run folder X"):
        with pytest.raises(io_utils.LockedError) as info:
            with io_utils.exclusive_lock(path, "run folder X"):
                pass
    message = str(info.value)
    assert message.startswith(f"run folder X is in use by process {os.getpid()} on "
                              f"{socket.gethostname()} (lock file {path})")
    assert "remove" not in message  # removing the file would not free it, only split it
    with io_utils.exclusive_lock(path, "run folder X"):  # free again after the block
        pass


def test_a_lock_file_nobody_holds_is_taken_whatever_it_names(tmp_path):
    """A lock file left by a killed holder names a pid that another live
    process may have been given since: it must not block."""
    path = tmp_path / ".lock"
    for text in (json.dumps({"host": socket.gethostname(), "pid": os.getpid()}), "", "{}"):
        path.write_text(text)
        with io_utils.exclusive_lock(path, "the folder"):
            assert json.loads(path.read_text())["pid"] == os.getpid()


@pytest.mark.slow
def test_a_killed_holders_lock_is_taken_by_the_next_process(tmp_path):
    path = tmp_path / ".lock"
    script = ("import sys, time\n"
              "from recola_sta import io_utils\n"
              "with io_utils.exclusive_lock(sys.argv[1], 'the folder'):\n"
              "    print('held', flush=True)\n"
              "    time.sleep(300)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(io_utils.LockedError, match=rf"in use by process {holder.pid} "):
            with io_utils.exclusive_lock(path, "the folder"):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    with io_utils.exclusive_lock(path, "the folder"):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def _run_folder(tmp_path: pathlib.Path) -> pathlib.Path:
    """A run folder as train leaves it after an epoch (best.keras is not
    read: evaluation stops at the lock)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({
        "variant": "3d_cnn_sta", "corpus_dir": str(tmp_path / "corpus"), "target": "valence",
        "cache_dir": str(tmp_path / "cache"), "frames": 4, "batch_size": 2,
        "convention": "avec"}))
    (run / "best.keras").write_bytes(b"an epoch's model")
    return run


def test_evaluate_refuses_a_run_folder_that_a_trainer_holds(tmp_path):
    from recola_sta.evaluation import evaluate

    run = _run_folder(tmp_path)
    with io_utils.exclusive_lock(run / ".lock", f"run folder {run}"):  # as train holds it
        with pytest.raises(io_utils.LockedError,
                           match=rf"^run folder {run} is in use by process {os.getpid()} "):
            evaluate.evaluate_run(run, progress=False)
    assert sorted(p.name for p in run.iterdir()) == [".lock", "best.keras", "config.json"]


def test_evaluate_cli_exits_2_with_one_line_while_a_trainer_holds_the_run(tmp_path, call_cli):
    run = _run_folder(tmp_path)
    with io_utils.exclusive_lock(run / ".lock", f"run folder {run}"):  # as train holds it
        done = call_cli("evaluate", f"--run_dir={run}")
    lines = [line for line in done.stderr.splitlines()
             if line.strip() and not line.startswith(("WARNING: All log messages", "I0000",
                                                      "W0000", "E0000"))]
    assert done.returncode == 2, done.stderr[-2000:]
    assert lines == [f"evaluate: run folder {run} is in use by process {os.getpid()} on "
                     f"{socket.gethostname()} (lock file {run / '.lock'}); wait for it to "
                     "finish. The lock is released when that process ends, however it ends."]
    assert not (run / "evaluation.json").exists()
