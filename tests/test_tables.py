"""Tests of recola_sta.tables and of the run layout tools/reproduce.sh feeds it."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re

import pytest

from recola_sta import models, tables, train

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
    assert runs <= set(models.VARIANTS)
    assert {"cnn_rnn_1s", "cnn_rnn_4s"} <= runs
    assert tables.CITED_METHOD_RUNS <= runs


def _read_cfg(path: pathlib.Path) -> dict[str, str]:
    flags = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.removeprefix("--").partition("=")
            flags[key] = value
    return flags


def _typed_config(flags: dict[str, str]) -> train.TrainConfig:
    values = {}
    for field in dataclasses.fields(train.TrainConfig):
        if field.name not in flags:
            continue
        raw = flags[field.name]
        default = getattr(train.TrainConfig, field.name, "")
        if isinstance(default, tuple):
            values[field.name] = tuple(raw.split(","))
        elif isinstance(default, bool):
            values[field.name] = raw.lower() == "true"
        else:
            values[field.name] = type(default)(raw)
    unknown = set(flags) - {f.name for f in dataclasses.fields(train.TrainConfig)}
    assert not unknown, unknown
    return train.TrainConfig(**values)


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
    assert config.variant in models.RNN_WINDOWS
    # The paper's training recipe, as the other rows' configs.
    assert (config.frames, config.size, config.batch_size, config.learning_rate,
            config.dropout, config.loss) == (16, 96, 16, 1e-4, 0.5, "mse")
