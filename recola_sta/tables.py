"""Write the paper's Tables 1-3 with this project's numbers beside the paper's.

    python -m recola_sta.tables --results_dir=results

Reads `RESULTS/runs/<corpus>_<variant>/results.json` (written by
`recola_sta.train`, as `tools/reproduce.sh` lays them out) and writes
`RESULTS/tables.md`. Rows the project implements show our dev RMSE / CC / CCC
after the AVEC post-processing chain (fitted on dev, as the paper applies
it; CCC in the results' convention) beside the paper's; rows that only cite
other papers are marked as cited. A run that is missing shows "not run".
Rows whose method comes from a cited paper but is trained here (the CNN + RNN
rows of Khorrami et al.) carry a footnote mark: our implementation of the
cited method, not the cited authors' numbers.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Sequence

from recola_sta import io_utils

# (label, paper RMSE, CC, CCC, our run name or None when only cited)
Row = tuple[str, float | None, float | None, float | None, str | None]

TABLE1: list[Row] = [
    ("2D-CNN", 0.113, 0.426, 0.326, "2d_cnn"),
    ("3D-CNN", 0.104, 0.510, 0.493, "3d_cnn"),
    ("3D-CNN + STA", 0.102, 0.572, 0.546, "3d_cnn_sta"),
]
TABLE2: list[Row] = [
    ("Baseline [26]", 0.117, 0.358, 0.273, None),
    ("CNN [1]", 0.113, 0.426, 0.326, "2d_cnn"),
    ("CNN + RNN (~1 s) [1]", 0.111, 0.501, 0.474, "cnn_rnn_1s"),
    ("CNN + RNN (~4 s) [1]", 0.108, 0.544, 0.506, "cnn_rnn_4s"),
    ("LGBP-TOP + LSTM [29]", 0.114, 0.430, 0.354, None),
    ("LGBP-TOP + Bi-Dir. LSTM [15]", 0.105, 0.501, 0.346, None),
    ("LGBP-TOP + LSTM + eps-loss [30]", 0.121, 0.488, 0.463, None),
    ("CNN + LSTM + eps-loss [30]", 0.116, 0.561, 0.538, None),
    ("3D-CNN + STA (~4 s)", 0.102, 0.572, 0.546, "3d_cnn_sta"),
]
TABLE3: list[Row] = [
    ("Baseline [31]", None, None, 0.400, None),
    ("CNN [1]", 0.114, 0.564, 0.528, "2d_cnn"),
    ("CNN + RNN (~4 s) [1]", 0.104, 0.616, 0.588, "cnn_rnn_4s"),
    ("3D-CNN + STA (~4 s)", 0.099, 0.638, 0.612, "3d_cnn_sta"),
]
# Runs that fill a cited paper's row with our implementation of its method.
CITED_METHOD_RUNS = frozenset({"cnn_rnn_1s", "cnn_rnn_4s"})
CITED_METHOD_MARK = "†"
CITED_METHOD_NOTE = (
    f"{CITED_METHOD_MARK} Our implementation of the cited method (Khorrami et al.'s "
    "CNN + RNN, as BUILD_NOTES.md describes it), trained and evaluated here like "
    "every other row; the paper columns are the cited paper's numbers as the "
    "paper reports them."
)
TABLES = [
    ("Table 1. Component analysis (RECOLA, valence, dev)", "recola", TABLE1),
    ("Table 2. Comparison on RECOLA (valence, dev)", "recola", TABLE2),
    ("Table 3. Comparison on AV+EC 2017 (valence, dev)", "avec2017", TABLE3),
]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def load_results(results_dir: str | os.PathLike) -> dict[str, dict]:
    """Maps run names (`<corpus>_<variant>`) to their results.json content."""
    runs = pathlib.Path(results_dir) / "runs"
    found = {}
    for path in sorted(runs.glob("*/results.json")):
        found[path.parent.name] = json.loads(path.read_text())
    return found


def render_tables(results: dict[str, dict], corpus_names: dict[str, str]) -> str:
    """Markdown for Tables 1-3.

    Args:
        results: run name -> results.json content.
        corpus_names: table corpus ("recola", "avec2017") -> the corpus whose
            runs fill it (e.g. "synthetic" for `reproduce.sh --synthetic`);
            a table whose corpus is absent is marked not run.
    """
    lines = ["# Tables 1-3: this reproduction beside the paper", ""]
    lines.append(
        "Ours: dev partition, after the AVEC post-processing chain fitted on dev "
        "(smoothing, centering, scaling; no time shift), metrics on the concatenation "
        "of the partition's recordings. Raw (before post-processing) in brackets."
    )
    lines.append("")
    for title, corpus, rows in TABLES:
        source = corpus_names.get(corpus)
        heading = title if source in (None, corpus) else f"{title} -- run on the {source} corpus"
        lines += [f"## {heading}", ""]
        lines.append("| Method | paper RMSE | paper CC | paper CCC | our RMSE | our CC | our CCC | our CCC raw |")
        lines.append("|---|---|---|---|---|---|---|---|")
        marked = False
        for label, p_rmse, p_cc, p_ccc, run in rows:
            paper = f"{_fmt(p_rmse)} | {_fmt(p_cc)} | {_fmt(p_ccc)}"
            if run in CITED_METHOD_RUNS:
                label, marked = f"{label} {CITED_METHOD_MARK}", True
            if run is None:
                ours = "cited | cited | cited | cited"
            elif source is None:
                ours = "not run | not run | not run | not run"
            else:
                result = results.get(f"{source}_{run}")
                if result is None or not result.get("dev_post"):
                    ours = "not run | not run | not run | not run"
                else:
                    post, raw = result["dev_post"], result["dev_raw"]
                    ours = f"{post['rmse']:.3f} | {post['cc']:.3f} | {post['ccc']:.3f} | ({raw['ccc']:.3f})"
            lines.append(f"| {label} | {paper} | {ours} |")
        lines.append("")
        if marked:
            lines += [CITED_METHOD_NOTE, ""]
    used = sorted({r.get("convention", "?") for r in results.values()})
    lines.append(f"CCC convention of our numbers: {', '.join(used) or 'n/a'} (see BUILD_NOTES.md).")
    lines.append("")
    return "\n".join(lines)


def write_tables(results_dir: str | os.PathLike, corpus_names: dict[str, str]) -> pathlib.Path:
    """Renders and atomically writes `RESULTS/tables.md`."""
    path = pathlib.Path(results_dir) / "tables.md"
    io_utils.atomic_write_text(path, render_tables(load_results(results_dir), corpus_names))
    return path


def main(argv: Sequence[str]) -> None:
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise SystemExit(f"Unexpected arguments: {argv[1:]}")
    names = {}
    for item in FLAGS.corpora:
        table_corpus, _, source = item.partition("=")
        if table_corpus not in ("recola", "avec2017") or not source:
            raise SystemExit(f"--corpora item {item!r} must look like recola=recola or recola=synthetic.")
        names[table_corpus] = source
    path = write_tables(FLAGS.results_dir, names)
    print(path.read_text())
    print(f"Wrote {path}")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("results_dir", "results", "Folder holding runs/<corpus>_<variant>/.")
    flags.DEFINE_list("corpora", ["recola=recola", "avec2017=avec2017"],
                      "Which corpus fills each table, e.g. recola=synthetic.")
    app.run(main)
