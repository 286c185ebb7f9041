"""One real `python -m recola_sta.<command>` per CLI, on a command that fails
early, compared with the same command run in this process (`cli.call`, the
`call_cli` fixture, which the other tests of the CLIs' errors use): the same
exit code and the same message lines on stderr. Between them the cases cover
`cli.run`'s bad input (exit 2) and absl's flag-parsing error from a
--flagfile (exit 1)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from conftest import CLI_MODULES
from recola_sta import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _shell(command: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", f"recola_sta.{command}", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def _messages(command: str, stderr: str) -> list[str]:
    """The command's own lines on stderr (`cli.run`'s "<command>: ...",
    absl's flag-parsing error), not TensorFlow's start-up chatter."""
    ours = (f"{command}: ", "FATAL Flags parsing error", "Pass --helpshort", "  ")
    return [line for line in stderr.splitlines() if line.startswith(ours)]


def _case(command: str, tmp_path: pathlib.Path) -> tuple[list[str], int, str]:
    """The arguments of a failing `command`, its exit code and a text its
    message holds."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    if command == "train":
        return [f"--corpus_dir={tmp_path}", "--batch_size=0"], cli.EXIT_BAD_INPUT, "--batch_size"
    if command == "preprocess":
        flagfile = tmp_path / "bad.cfg"
        flagfile.write_text(f"--corpus_dir={tmp_path}\n--corpus_kind=imagenet\n")
        return [f"--flagfile={flagfile}"], cli.EXIT_BUG, "FATAL Flags parsing error"
    if command == "evaluate":
        return [f"--run_dir={a_file}"], cli.EXIT_BAD_INPUT, str(a_file)
    if command == "predict":
        return ([f"--model={tmp_path / 'no_model'}", f"--video={tmp_path / 'nope.mp4'}",
                 f"--out={tmp_path / 'out'}"], cli.EXIT_BAD_INPUT, "no_model")
    if command == "export":
        return [f"--run_dir={tmp_path / 'nothing'}"], cli.EXIT_BAD_INPUT, "nothing"
    if command == "synthetic":
        return [f"--out={a_file}", "--num_train=1", "--num_dev=0", "--num_test=0"], \
            cli.EXIT_BAD_INPUT, str(a_file)
    return [f"--results_dir={tmp_path}", "--seeds=a"], cli.EXIT_BAD_INPUT, "--seeds=a"


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(CLI_MODULES))
def test_the_shell_and_cli_call_print_the_same(command, tmp_path, call_cli):
    entry = (ROOT / "recola_sta" / f"{command}.py").read_text()
    package, _, module = CLI_MODULES[command].rpartition(".")
    assert f"from {package} import {module}\n" in entry  # the entry module hands over to it
    args, code, named = _case(command, tmp_path)
    shell = _shell(command, *args)
    assert shell.returncode == code, shell.stderr[-2000:]
    assert named in shell.stderr and "Traceback" not in shell.stderr, shell.stderr[-2000:]
    here = call_cli(command, *args)
    assert here.returncode == code, here.stderr[-2000:]
    assert named in here.stderr
    assert _messages(command, here.stderr) == _messages(command, shell.stderr) != [], (
        shell.stderr, here.stderr)
    assert not (tmp_path / "out").exists()
