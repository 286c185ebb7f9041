"""Tests of recola_sta.tables and of the run layout tools/reproduce.sh feeds it."""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

from recola_sta import settings
from recola_sta.evaluation import tables
from recola_sta.model import networks
from recola_sta.training import run_folder, train

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _result(ccc: float) -> dict:
    return {
        "convention": "avec",
        "dev_post": {"rmse": 0.1, "cc": ccc + 0.01, "ccc": ccc},
        "dev_raw": {"rmse": 0.2, "cc": ccc - 0.1, "ccc": ccc - 0.05},
    }


def _row(markdown: str, table: str, label: str) -> str:
    section = markdown.split(f"## {table}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith(f"| {label}")]
    assert len(rows) == 1, (label, rows)
    return rows[0]


def test_cnn_rnn_rows_are_filled_from_runs_and_footnoted(tmp_path):
    for name, ccc in (("recola_cnn_rnn_1s", 0.41), ("recola_cnn_rnn_4s", 0.52),
                      ("avec2017_cnn_rnn_4s", 0.63)):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "results.json").write_text(json.dumps(_result(ccc)))
    path = tables.write_tables(tmp_path, {"recola": "recola", "avec2017": "avec2017"})
    text = path.read_text(encoding="utf-8")
    mark = tables.CITED_METHOD_MARK
    assert _row(text, "Table 2", f"CNN + RNN (~1 s) [1] {mark}") == (
        f"| CNN + RNN (~1 s) [1] {mark} | 0.111 | 0.501 | 0.474 | 0.100 | 0.420 | 0.410 | (0.360) |"
    )
    assert "| 0.108 | 0.544 | 0.506 | 0.100 | 0.530 | 0.520 | (0.470) |" in _row(
        text, "Table 2", "CNN + RNN (~4 s)")
    assert "| 0.104 | 0.616 | 0.588 | 0.100 | 0.640 | 0.630 | (0.580) |" in _row(
        text, "Table 3", "CNN + RNN (~4 s)")
    # A row whose run is missing shows "not run".
    assert "not run" in _row(text, "Table 2", "CNN [1]")
    # The footnote follows Tables 2 and 3 (which have the rows), not Table 1.
    assert text.count(tables.CITED_METHOD_NOTE) == 2
    table1 = text.split("## Table 1", 1)[1].split("\n## ", 1)[0]
    assert mark not in table1
    # Rows that only cite stay cited.
    assert "cited | cited | cited | cited" in _row(text, "Table 2", "LGBP-TOP + LSTM [29]")


def test_cnn_rnn_rows_not_run_without_their_runs():
    text = tables.render_tables({}, {"recola": "synthetic"})
    row = _row(text, "Table 2", "CNN + RNN (~1 s) [1]")
    assert row.endswith("| not run | not run | not run | not run |")
    assert tables.CITED_METHOD_MARK in row


def test_every_table_run_is_a_model_variant():
    runs = {row[4] for _, _, rows in tables.TABLES for row in rows if row[4] is not None}
    assert runs <= set(networks.VARIANTS)
    assert {"cnn_rnn_1s", "cnn_rnn_4s"} <= runs
    assert tables.CITED_METHOD_RUNS <= runs


def _read_cfg(path: pathlib.Path) -> dict[str, str]:
    """A flagfile as {flag: text}; a bare boolean `--flag` reads "true",
    `--noflag` "false" (absl's spelling)."""
    fields = settings.flag_names(train.TrainConfig)
    flags = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, equals, value = line.removeprefix("--").partition("=")
            if not equals:
                key, value = ((key[2:], "false") if key.startswith("no") and key[2:] in fields
                              else (key, "true"))
            flags[key] = value
    return flags


def _typed_config(flags: dict[str, str]) -> train.TrainConfig:
    """The TrainConfig train's own flag parser makes of these flags (an
    unknown flag fails the parse)."""
    from absl import flags as absl_flags

    flag_values = absl_flags.FlagValues()
    settings.define_flags(train.TrainConfig, flag_values=flag_values)
    flag_values(["train", *(f"--{k}={v}" for k, v in flags.items())])
    return settings.from_flags(train.TrainConfig, flag_values)


def test_reproduce_script_trains_every_table_row_with_a_valid_config():
    script = (ROOT / "tools" / "reproduce.sh").read_text()
    calls = re.findall(r'^\s*train (\S+\.cfg) "\$(\w+)" (\S+)$', script, flags=re.M)
    trained = {}
    for cfg, corpus_var, run in calls:
        flags = _read_cfg(ROOT / "experiments" / cfg)
        config = _typed_config(flags)
        config.validate()
        corpus = {"recola_dir": "recola", "avec_dir": "avec2017"}.get(corpus_var, "synthetic")
        assert run == f"{corpus}_{config.variant}", (cfg, run)
        assert config.run_dir == f"runs/{run}" and config.corpus_kind == corpus, cfg
        trained.setdefault(corpus, set()).add(config.variant)
    for _, corpus, rows in tables.TABLES:
        wanted = {row[4] for row in rows if row[4] is not None}
        assert wanted <= trained[corpus], (corpus, wanted - trained[corpus])


@pytest.mark.parametrize("cfg", ["recola_cnn_rnn_1s.cfg", "recola_cnn_rnn_4s.cfg",
                                 "avec2017_cnn_rnn_4s.cfg"])
def test_cnn_rnn_configs(cfg):
    config = _typed_config(_read_cfg(ROOT / "experiments" / cfg))
    assert config.variant in networks.RNN_WINDOWS
    # The paper's training recipe, as the other rows' configs.
    assert (config.frames, config.face.size, config.batch_size, config.learning_rate,
            config.model.dropout, config.loss) == (16, 96, 16, 1e-4, 0.5, "mse")


# Synthetic Table 1 over seeds (`tools/reproduce.sh --synthetic`)

PREFIX = "synthetic_recola_like"


def _seed_result(rmse: float, cc: float, ccc: float, raw_ccc: float,
                 ratios: dict[str, float] | None = None) -> dict:
    result = {
        "convention": "avec",
        "dev_post": {"rmse": rmse, "cc": cc, "ccc": ccc},
        "dev_raw": {"rmse": rmse + 0.05, "cc": cc - 0.05, "ccc": raw_ccc},
    }
    if ratios is not None:
        result["attention_regions"] = {"available": True, "samples": 100, "regions": {
            name: {"ratio": ratio, "attention_share": 0.1 * ratio, "area_share": 0.1}
            for name, ratio in ratios.items()}}
    return result


def _write_run(results_dir: pathlib.Path, name: str, payload: dict | str) -> None:
    run = results_dir / "runs" / name
    run.mkdir(parents=True)
    text = payload if isinstance(payload, str) else json.dumps(payload)
    (run / "results.json").write_text(text)


@pytest.fixture
def seed_runs(tmp_path):
    """2D-CNN: three seeds; 3D-CNN: seed 0 only (seed 1 without dev metrics,
    seed 2 never ran); STA: three seeds, seed 2 without attention regions."""
    for seed, values in enumerate([(0.1, 0.5, 0.2, 0.1), (0.2, 0.6, 0.4, 0.3),
                                   (0.3, 0.9, 0.9, 0.5)]):
        _write_run(tmp_path, f"{PREFIX}_2d_cnn_seed{seed}", _seed_result(*values))
    _write_run(tmp_path, f"{PREFIX}_3d_cnn_seed0", _seed_result(0.15, 0.7, 0.4, 0.35))
    _write_run(tmp_path, f"{PREFIX}_3d_cnn_seed1", {"convention": "avec", "dev_post": {},
                                                    "dev_raw": {}})
    sta_ratios = [{"mouth": 1.2, "eyes": 0.9, "brows": 1.0, "nose": 0.8, "face_rest": 1.0},
                  {"mouth": 1.4, "eyes": 1.1, "brows": 1.0, "nose": 1.0, "face_rest": 1.0}]
    for seed, ratios in enumerate(sta_ratios):
        _write_run(tmp_path, f"{PREFIX}_3d_cnn_sta_seed{seed}",
                   _seed_result(0.1, 0.8, 0.7 + 0.1 * seed, 0.6, ratios))
    no_attention = _seed_result(0.1, 0.8, 0.9, 0.6)
    no_attention["attention_regions"] = {"available": False, "reason": "no landmarks",
                                         "partition": "dev"}
    _write_run(tmp_path, f"{PREFIX}_3d_cnn_sta_seed2", no_attention)
    # Another prefix and a seed outside the list are not counted.
    _write_run(tmp_path, "synthetic_2d_cnn_seed0", _seed_result(9.0, 9.0, 9.0, 9.0))
    _write_run(tmp_path, f"{PREFIX}_2d_cnn_seed7", _seed_result(9.0, 9.0, 9.0, 9.0))
    return tmp_path


def _approx(summary: tables.Summary, mean: float | None, std: float | None, n: int) -> None:
    assert summary.n == n
    assert (summary.mean is None) == (mean is None) and (summary.std is None) == (std is None)
    if mean is not None:
        assert summary.mean == pytest.approx(mean, rel=1e-12)
    if std is not None:
        assert summary.std == pytest.approx(std, rel=1e-12)


def test_seed_runs_aggregate_to_mean_and_sample_std(seed_runs):
    # A seed given twice counts once.
    aggregates = tables.aggregate_seed_runs(seed_runs, PREFIX, [0, 1, 2, 1])
    by_variant = {a.variant: a for a in aggregates}
    assert list(by_variant) == ["2d_cnn", "3d_cnn", "3d_cnn_sta"]
    cnn2d = by_variant["2d_cnn"]
    assert cnn2d.runs == [f"{PREFIX}_2d_cnn_seed{s}" for s in (0, 1, 2)] and not cnn2d.missing
    # By hand: sample std (n - 1), e.g. CCC 0.2, 0.4, 0.9: mean 0.5, std sqrt(0.26 / 2).
    _approx(cnn2d.dev_post["rmse"], 0.2, 0.1, 3)
    _approx(cnn2d.dev_post["cc"], 2.0 / 3.0, math.sqrt((0.5 - 2 / 3) ** 2 + (0.6 - 2 / 3) ** 2
                                                      + (0.9 - 2 / 3) ** 2) / math.sqrt(2), 3)
    _approx(cnn2d.dev_post["ccc"], 0.5, math.sqrt(0.13), 3)
    _approx(cnn2d.dev_raw_ccc, 0.3, 0.2, 3)
    assert cnn2d.attention == {} and cnn2d.conventions == {"avec"}
    # One run counted: a mean, no standard deviation.
    cnn3d = by_variant["3d_cnn"]
    _approx(cnn3d.dev_post["ccc"], 0.4, None, 1)
    sta = by_variant["3d_cnn_sta"]
    _approx(sta.dev_post["ccc"], 0.8, 0.1, 3)
    _approx(sta.attention["mouth"], 1.3, math.sqrt(0.02), 2)
    _approx(sta.attention["eyes"], 1.0, math.sqrt(0.02), 2)
    _approx(sta.attention["brows"], 1.0, 0.0, 2)
    _approx(sta.attention["nose"], 0.9, math.sqrt(0.02), 2)
    assert set(sta.attention) == set(tables.ATTENTION_REGIONS)


def test_missing_seed_runs_are_listed_not_dropped(seed_runs, tmp_path_factory):
    by_variant = {a.variant: a for a in tables.aggregate_seed_runs(seed_runs, PREFIX, [0, 1, 2])}
    assert by_variant["3d_cnn"].missing == {
        f"{PREFIX}_3d_cnn_seed1": "no dev metrics in results.json",
        f"{PREFIX}_3d_cnn_seed2": "no results.json",
    }
    assert by_variant["3d_cnn_sta"].attention_missing == {
        f"{PREFIX}_3d_cnn_sta_seed2": "attention regions unavailable: no landmarks"}
    # Nothing run at all: every run is missing and every cell says so.
    empty = tmp_path_factory.mktemp("empty")
    _write_run(empty, f"{PREFIX}_2d_cnn_seed0", "{not json")
    aggregates = tables.aggregate_seed_runs(empty, PREFIX, [0, 1])
    assert [len(a.missing) for a in aggregates] == [2, 2, 2]
    assert aggregates[0].missing[f"{PREFIX}_2d_cnn_seed0"].startswith("malformed results.json")
    text = tables.render_seed_tables(aggregates, PREFIX, [0, 1])
    assert "| 2D-CNN | 0 | not run | not run | not run | not run |" in text
    assert "| 3D-CNN + STA | 0 | not run | not run | not run | not run |" in text
    for variant in ("2d_cnn", "3d_cnn", "3d_cnn_sta"):
        assert f"`{PREFIX}_{variant}_seed1` (no results.json)" in text


def test_seed_tables_markdown(seed_runs):
    path = tables.write_tables(seed_runs, {}, PREFIX, [0, 1, 2])
    text = path.read_text(encoding="utf-8")
    assert "## Table 1" not in text  # no corpora: Tables 1-3 are left out
    main = text.split(f"## {tables.SEED_TABLE_TITLE}", 1)[1].split("\n## ", 1)[0]
    lines = main.splitlines()
    assert "| Method | n | RMSE | CC | CCC | CCC raw |" in lines
    assert "| 2D-CNN | 3 | 0.200 +- 0.100 | 0.667 +- 0.208 | 0.500 +- 0.361 | 0.300 +- 0.200 |" in lines
    assert "| 3D-CNN | 1 | 0.150 +- n/a | 0.700 +- n/a | 0.400 +- n/a | 0.350 +- n/a |" in lines
    assert "| 3D-CNN + STA | 3 | 0.100 +- 0.000 | 0.800 +- 0.000 | 0.800 +- 0.100 | 0.600 +- 0.000 |" in lines
    assert (f"Missing runs: `{PREFIX}_3d_cnn_seed1` (no dev metrics in results.json); "
            f"`{PREFIX}_3d_cnn_seed2` (no results.json).") in lines
    assert "seeds 0, 1, 2" in main and "CCC convention: avec." in lines
    attention = text.split(f"## {tables.SEED_ATTENTION_TITLE}", 1)[1]
    rows = [line for line in attention.splitlines() if line.startswith("| ")]
    assert rows[0] == "| Method | n | mouth | eyes | brows | nose |"
    assert rows[1:] == ["| 3D-CNN + STA | 2 | 1.300 +- 0.141 | 1.000 +- 0.141 | "
                        "1.000 +- 0.000 | 0.900 +- 0.141 |"]
    assert (f"Missing runs: `{PREFIX}_3d_cnn_sta_seed2` (attention regions unavailable: "
            "no landmarks).") in attention.splitlines()
    # With corpora, Tables 1-3 come first and the seed tables follow.
    both = tables.write_tables(seed_runs, {"recola": "recola"}, PREFIX, [0, 1, 2]).read_text()
    assert both.index("## Table 1") < both.index(f"## {tables.SEED_TABLE_TITLE}")


@pytest.mark.parametrize("short,variant", [("2dcnn", "2d_cnn"), ("3dcnn", "3d_cnn"),
                                           ("sta", "3d_cnn_sta")])
def test_recola_like_configs(short, variant):
    flags = _read_cfg(ROOT / "experiments" / f"synthetic_recola_like_{short}.cfg")
    config = _typed_config(flags)
    config.validate()
    assert (config.variant, config.corpus_kind, config.synthetic_preset, config.corpus_dir,
            config.face.size, config.seed) == (variant, "synthetic", "recola_like",
                                          "data/synthetic_recola_like", 32, 0)
    assert config.run_dir == f"runs/{tables.seed_run_name(PREFIX, variant, 0)}"
    # Otherwise the schedule of the default synthetic configs, but 8 epochs.
    default = _typed_config(_read_cfg(ROOT / "experiments" / "synthetic.cfg"))
    keys = ("frames", "batch_size", "learning_rate", "loss")
    assert [getattr(config, k) for k in keys] == [getattr(default, k) for k in keys]
    assert config.model.dropout == default.model.dropout
    assert (config.epochs, default.epochs) == (8, 6)


FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python: records recola_sta.train calls and writes a results.json
# whose dev CCC is 0.4<seed>; runs everything else with the real interpreter.
if [[ "$2" == recola_sta.train ]]; then
  echo "$*" >> "$TRAIN_LOG"
  for arg in "$@"; do
    case "$arg" in --run_dir=*) run_dir="${arg#*=}" ;; --seed=*) seed="${arg#*=}" ;; esac
  done
  mkdir -p "$run_dir"
  echo "{\\"convention\\": \\"avec\\", \\"dev_post\\": {\\"rmse\\": 0.1, \\"cc\\": 0.5, \\"ccc\\": 0.4$seed}, \\"dev_raw\\": {\\"rmse\\": 0.2, \\"cc\\": 0.4, \\"ccc\\": 0.3$seed}}" > "$run_dir/results.json"
  exit 0
fi
exec "$REAL_PYTHON" "$@"
"""


@pytest.mark.slow
def test_reproduce_synthetic_trains_every_seed_and_writes_seed_tables(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log, out = tmp_path / "train.log", tmp_path / "results"
    env = {**os.environ, "PYTHON": str(fake), "REAL_PYTHON": sys.executable,
           "TRAIN_LOG": str(log), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        ["bash", str(ROOT / "tools" / "reproduce.sh"), "--synthetic", "--seeds=1 3",
         f"--out={out}", "--epochs=1"],
        capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    expected = []
    for short, variant in (("2dcnn", "2d_cnn"), ("3dcnn", "3d_cnn"), ("sta", "3d_cnn_sta")):
        for seed in (1, 3):
            expected.append(
                f"-m recola_sta.train --flagfile=experiments/synthetic_recola_like_{short}.cfg "
                f"--run_dir={out}/runs/{PREFIX}_{variant}_seed{seed} --epochs=1 --seed={seed}")
    assert calls == expected
    text = (out / "tables.md").read_text(encoding="utf-8")
    assert "## Table 1" not in text
    # Dev CCC 0.41 and 0.43: mean 0.42, sample std sqrt(0.0002) = 0.014.
    assert "| 2D-CNN | 2 | 0.100 +- 0.000 | 0.500 +- 0.000 | 0.420 +- 0.014 | 0.320 +- 0.014 |" in text
    assert "seeds 1, 3" in text
    assert (f"`{PREFIX}_3d_cnn_sta_seed1` (no attention_regions in results.json)") in text


def test_fixed_gain_ablation_config_is_the_sta_config_with_one_learned_map():
    sta = _typed_config(_read_cfg(ROOT / "experiments" / "synthetic_recola_like_sta.cfg"))
    ablation = _typed_config(_read_cfg(ROOT / "experiments"
                                       / "synthetic_recola_like_fixed_gain.cfg"))
    ablation.validate()
    before, after = (run_folder.flag_values(run_folder.config_payload(config))
                     for config in (sta, ablation))
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"attention_weights", "attention_location_bias", "run_dir"}
    assert (ablation.model.attention_weights, ablation.model.attention_location_bias) == (
        "none", True)
