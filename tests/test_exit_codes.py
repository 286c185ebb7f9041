"""Every CLI follows one exit-code convention (recola_sta.cli): bad input,
whichever command meets it, is one line on stderr and exit 2, never a
traceback and never exit 1 (which is left to bugs and absl's own flag-parsing
errors). The commands run in this process (`call_cli`); tests/test_cli_smoke.py
checks that the shell prints the same."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from recola_sta import cli


def _csv_corpus(root):
    """One 1 s recording of noise with valid labels: it loads, and fails
    only where a test makes it fail."""
    (root / "train").mkdir(parents=True)
    writer = cv2.VideoWriter(str(root / "train" / "a.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                             8.0, (64, 64))
    for frame in np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8):
        writer.write(frame)
    writer.release()
    (root / "train" / "a.csv").write_text("time,valence\n0.0,0.1\n0.5,0.2\n")
    return root


def _csv_corpus_with_bad_labels(root):
    (root / "train").mkdir(parents=True)
    (root / "train" / "a.mp4").write_bytes(b"not read: the labels fail first")
    (root / "train" / "a.csv").write_text("time,valence\n0.0,0.1\nabc,0.2\n")
    return root


@pytest.mark.parametrize("case", ["train_run_dir_file", "train_bad_labels", "preprocess_cache_file",
                                  "evaluate_run_dir_file", "synthetic_out_file"])
def test_bad_input_exits_2_with_one_line(tmp_path, case, call_cli):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if case == "train_run_dir_file":
        proc = call_cli("train", f"--corpus_dir={corpus}", "--corpus_kind=csv",
                        f"--run_dir={a_file}", f"--cache_dir={tmp_path / 'cache'}")
        named = "--run_dir"
    elif case == "train_bad_labels":
        _csv_corpus_with_bad_labels(tmp_path / "bad")
        proc = call_cli("train", f"--corpus_dir={tmp_path / 'bad'}", "--corpus_kind=csv",
                        f"--run_dir={tmp_path / 'run'}", f"--cache_dir={tmp_path / 'cache'}")
        named = str(tmp_path / "bad" / "train" / "a.csv")
    elif case == "preprocess_cache_file":
        proc = call_cli("preprocess", f"--corpus_dir={_csv_corpus(tmp_path / 'ok')}",
                        "--corpus_kind=csv", f"--cache_dir={a_file}")
        named = "--cache_dir"
    elif case == "evaluate_run_dir_file":
        proc = call_cli("evaluate", f"--run_dir={a_file}")
        named = str(a_file)
    else:
        proc = call_cli("synthetic", f"--out={a_file}", "--num_train=1", "--num_dev=0",
                        "--num_test=0")
        named = str(a_file)
    assert proc.returncode == cli.EXIT_BAD_INPUT, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert named in proc.stderr, proc.stderr[-2000:]
