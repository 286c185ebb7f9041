"""Tests for tools/bench.py on minimal runs (16 px crops, batch 2, one repeat)."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench", ROOT / "tools" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _check_machine(machine: dict) -> None:
    cpu = machine["cpu"]
    assert isinstance(cpu["model"], str) and cpu["model"]
    assert isinstance(cpu["avx2"], bool) and isinstance(cpu["avx512f"], bool)
    assert cpu["cpu_count"] >= cpu["usable_cores"] >= 1
    assert machine["load_average_1min"] >= 0
    assert machine["versions"]["python"].count(".") == 2
    assert "numpy" in machine["versions"] and "keras" in machine["versions"]


def test_cpu_info_reads_model_and_vector_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 avx avx2 avx512f\n\n"
        "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 avx avx2 avx512f\n"
    )
    info = bench.cpu_info(str(path))
    assert info["model"] == "Test CPU 9000"
    assert info["avx2"] is True and info["avx512f"] is True
    path.write_text("model name\t: Old CPU\nflags\t\t: fpu sse2 avx\n")
    info = bench.cpu_info(str(path))
    assert info["model"] == "Old CPU"
    assert info["avx2"] is False and info["avx512f"] is False


@pytest.mark.slow
def test_train_run_writes_the_json_record(tmp_path):
    out = tmp_path / "results" / "bench.json"
    assert bench.main(["--only=train", "--sizes=16", "--batch=2", "--repeats=1",
                       "--variants=2d_cnn", f"--out={out}"]) == 0
    record = json.loads(out.read_text())
    assert set(record) == {"machine", "backend", "config", "results"}
    _check_machine(record["machine"])
    assert record["config"]["only"] == ["train"]
    assert list(record["results"]) == ["train"]
    (row,) = record["results"]["train"]
    assert (row["variant"], row["size"], row["batch"], row["frames"]) == ("2d_cnn", 16, 2, 16)
    assert row["backend"] == record["backend"]
    assert row["precision"] == "float32" and row["jit_compile"] is False
    assert len(row["steps_s"]) == 1 and row["step_s"] == row["steps_s"][0] > 0
    assert row["clips_per_s"] == pytest.approx(2 / row["step_s"])
    assert row["params"] > 1000
    # Written atomically: no temporary file is left beside it.
    assert [p.name for p in out.parent.iterdir()] == ["bench.json"]


@pytest.mark.slow
def test_mixed_precision_and_jit_are_recorded_and_the_policy_restored():
    import keras

    before = keras.mixed_precision.global_policy().name
    row = bench.bench_train("2d_cnn", size=16, batch=2, repeats=1, mixed_precision=True,
                            jit_compile=True)
    assert row["precision"] == "mixed_bfloat16" and row["jit_compile"] is True
    assert row["clips_per_s"] > 0
    assert keras.mixed_precision.global_policy().name == before


def test_pipeline_run_measures_both_augmentation_settings(tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--only=pipeline", "--sizes=16", "--batch=2", "--repeats=1",
                "--recordings=1", f"--out={out}"])
    record = json.loads(out.read_text())
    _check_machine(record["machine"])
    (row,) = record["results"]["pipeline"]
    # One recording of 240 samples: 15 non-overlapping 16-frame clips.
    assert row["clips_per_epoch"] == 15
    for key in ("first_epoch_clips_per_s", "augment_clips_per_s", "no_augment_clips_per_s",
                "eval_clips_per_s"):
        assert row[key] > 0


def test_face_video_has_a_face_in_every_sampled_frame(tmp_path):
    from recola_sta import faces

    video = bench.make_face_video(tmp_path / "face.mp4", seconds=2.0)
    info = faces.probe_video(video)
    assert (info.width, info.height, info.fps, info.frame_count) == (640, 480, 25.0, 50)
    row = bench.bench_preprocess(video, size=32, samples=4, repeats=1)
    assert row["found"] == row["frames"] == 4
    assert row["frames_per_s_per_core"] == pytest.approx(1000 / row["ms_per_frame"])


@pytest.mark.parametrize("argv", [["--only=bogus"], ["--sizes=0"], ["--variants=vgg"],
                                  ["--repeats=0"], ["--video_seconds=1"]])
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)


@pytest.mark.parametrize("name", bench.PREDICT_SUBCOMMANDS)
def test_predict_subcommands_reach_their_parsers_in_bench_predict(name, capsys):
    """`python tools/bench.py NAME --help` is tools/bench_predict.py's NAME."""
    with pytest.raises(SystemExit) as stop:
        bench.main([name, "--help"])
    assert stop.value.code == 0
    assert f"usage: bench.py {name}" in capsys.readouterr().out
    assert callable(getattr(sys.modules["bench_predict"], f"{name}_main"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_train_part_under_jax_does_not_import_tensorflow():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('bench', {str(ROOT / 'tools' / 'bench.py')!r})\n"
        "bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)\n"
        "row = bench.bench_train('2d_cnn', size=16, batch=2, repeats=1)\n"
        "assert row['backend'] == 'jax', row\n"
        "bench.machine_record()\n"
        "print('tensorflow' in sys.modules)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.slow
def test_the_bench_module_and_machine_record_import_no_tensorflow():
    """The JAX test's premise, checked with any backend: only the parts import it."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('bench', {str(ROOT / 'tools' / 'bench.py')!r})\n"
        "bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)\n"
        "bench.machine_record(); bench.parse_args(['--only=train'])\n"
        "print('tensorflow' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"
