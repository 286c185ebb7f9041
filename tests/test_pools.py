"""Worker pools: workers that stay light, exit with their parent, and hand over failures."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import time

import pytest

from recola_sta import pools

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The command-line entry modules: what runs when a spawned worker re-imports
# one of them as its `__mp_main__` (everything outside the main block).
ENTRY_MODULES = ("train", "preprocess", "evaluate", "predict", "synthetic", "tables")


@pytest.mark.parametrize("name", ENTRY_MODULES)
def test_entry_modules_import_nothing_outside_their_main_block(name):
    """A worker re-imports the parent's main module: for the CLIs that is the
    entry module, which must stay a docstring, `import os` and its main block
    (its implementation, and TensorFlow, are imported inside that block)."""
    tree = ast.parse((ROOT / "recola_sta" / f"{name}.py").read_text())
    body = [node for node in tree.body
            if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    assert [ast.unparse(node).splitlines()[0] for node in body] == [
        "import os", "if __name__ == '__main__':"]


# A main module that, like the entry modules, imports a heavy library only in
# its main block: the workers of its pool never import it.
_MAIN = """
import os, pathlib, sys
with open(pathlib.Path(sys.argv[1]) / "imports.txt", "a") as f:
    f.write(f"{__name__} {os.getpid()}\\n")

def heavy_loaded():
    return "tensorflow" in sys.modules, os.getpid()

if __name__ == "__main__":
    import tensorflow  # noqa: F401  (as train's main block does)
    from recola_sta import pools
    with pools.spawn_pool(2) as pool:
        results = [pool.submit(heavy_loaded).result() for _ in range(4)]
    assert not any(loaded for loaded, _ in results), results
    assert os.getpid() not in {pid for _, pid in results}
    print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["script", "module"])
def test_workers_of_a_thin_main_module_do_not_import_its_heavy_libraries(tmp_path, how):
    (tmp_path / "probe_main.py").write_text(_MAIN)
    command = ([sys.executable, str(tmp_path / "probe_main.py")] if how == "script"
               else [sys.executable, "-m", "probe_main"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command + [str(tmp_path)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["ok"]
    # The parent ran it as __main__; each worker re-imported it as __mp_main__.
    names = sorted(line.split()[0] for line in (tmp_path / "imports.txt").read_text().splitlines())
    assert names[0] == "__main__" and set(names[1:]) == {"__mp_main__"}, names


# A main module whose task, initializer and argument class are its own: the
# workers find them in their re-import of it.
_MAIN_TASKS = """
import dataclasses, os, pathlib, sys
from recola_sta import pools
with open(pathlib.Path(sys.argv[1]) / "imports.txt", "a") as f:
    f.write(f"{__name__} {os.getpid()}\\n")

@dataclasses.dataclass
class Job:
    value: int

def init():
    os.environ["PROBE_INITIALIZED"] = "yes"

def square(job):
    return job.value ** 2, os.environ.get("PROBE_INITIALIZED"), os.getpid()

if __name__ == "__main__":
    outcomes = dict(pools.run_each(square, [(Job(k),) for k in range(4)], 2, initializer=init))
    results = [outcomes[k].result() for k in range(4)]
    assert [r[:2] for r in results] == [(k * k, "yes") for k in range(4)], results
    assert os.getpid() not in {r[2] for r in results}
    print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["script", "module"])
def test_tasks_of_the_main_module_run_in_workers(tmp_path, how):
    (tmp_path / "probe_tasks.py").write_text(_MAIN_TASKS)
    command = ([sys.executable, str(tmp_path / "probe_tasks.py")] if how == "script"
               else [sys.executable, "-m", "probe_tasks"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    done = subprocess.run(command + [str(tmp_path)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok"]
    # The parent ran it as __main__; each worker loaded it once, as __mp_main__
    # (so its main block did not run there).
    names = sorted(line.split()[0] for line in (tmp_path / "imports.txt").read_text().splitlines())
    assert names[0] == "__main__" and set(names[1:]) == {"__mp_main__"}, names
    assert 1 <= len(names) - 1 <= 2


def test_main_module_is_restored_after_the_pool(tmp_path):
    main = sys.modules["__main__"]
    before = (getattr(main, "__spec__", None), getattr(main, "__file__", None))
    with pools.spawn_pool(1) as pool:
        assert pool.submit(os.getpid).result() != os.getpid()
    assert (getattr(main, "__spec__", None), getattr(main, "__file__", None)) == before


def test_bad_worker_count_is_refused():
    with pytest.raises(ValueError, match="max_workers"):
        with pools.spawn_pool(0):
            pass


# The parent starts two workers busy for two minutes, prints their pids, and
# waits to be killed.
_PARENT = """
import multiprocessing, sys, time
from recola_sta import pools
with pools.spawn_pool(2) as pool:
    futures = [pool.submit(time.sleep, 120) for _ in range(2)]
    while len(multiprocessing.active_children()) < 2:
        time.sleep(0.05)
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\\nState:\\tZ" not in status  # a zombie has exited


@pytest.mark.slow
@pytest.mark.skipif(not pathlib.Path("/proc/self/status").exists(), reason="needs /proc")
def test_workers_exit_when_the_parent_is_killed():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), "workers outlived their killed parent"
    finally:
        parent.kill()
        parent.stdout.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_run_each_runs_every_task_and_hands_over_failures(workers):
    # math.sqrt of -1 raises ValueError: in its own future, the others still run.
    import math

    tasks = [(4.0,), (-1.0,), (9.0,)]
    outcomes = dict(pools.run_each(math.sqrt, tasks, workers))
    assert sorted(outcomes) == [0, 1, 2]
    assert (outcomes[0].result(), outcomes[2].result()) == (2.0, 3.0)
    with pytest.raises(ValueError):
        outcomes[1].result()
    assert pools.runs_inline(workers, len(tasks)) == (workers == 1)
    assert pools.runs_inline(4, 1)
