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

    python -m recola_sta.tables --results_dir=results --corpora= \
        --seed_runs=synthetic_recola_like --seeds=0,1,2

adds "Synthetic Table 1 over seeds": each Table 1 network's runs
`RESULTS/runs/<seed_runs>_<variant>_seed<N>/` aggregated over the seeds (mean
and sample standard deviation of dev RMSE / CC / CCC, the number of runs),
and the STA runs' attention region ratios the same way. Runs that are
missing are listed by name. An empty --corpora leaves Tables 1-3 out.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import statistics
from typing import Sequence

from recola_sta import cli, io_utils, settings
from recola_sta.settings import setting

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
                if result is None or not result.get("dev_post") or "targets" in result:
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


SEED_TABLE_TITLE = "Synthetic Table 1 over seeds"
SEED_ATTENTION_TITLE = "Attention region ratios of the STA runs over seeds"
SEED_METRICS = ("rmse", "cc", "ccc")
ATTENTION_REGIONS = ("mouth", "eyes", "brows", "nose")


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (n - 1) of n values.

    `mean` is None without values, `std` without at least two.
    """

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Summary":
        values = [float(v) for v in values]
        return cls(mean=statistics.fmean(values) if values else None,
                   std=statistics.stdev(values) if len(values) > 1 else None,
                   n=len(values))

    def format(self, digits: int = 3) -> str:
        if self.mean is None:
            return "not run"
        std = "n/a" if self.std is None else f"{self.std:.{digits}f}"
        return f"{self.mean:.{digits}f} +- {std}"


@dataclasses.dataclass
class SeedAggregate:
    """One network's runs over seeds (`aggregate_seed_runs`).

    Attributes:
        label, variant: the Table 1 row and the model variant.
        runs: names of the runs that have dev results, in seed order.
        missing: run name -> why it is not counted, in seed order.
        dev_post: "rmse", "cc", "ccc" -> Summary of the post-processed dev metrics.
        dev_raw_ccc: Summary of the dev CCC before post-processing.
        attention: region -> Summary of its attention ratio (attention share /
            area share), for the `ATTENTION_REGIONS`; empty for networks
            without attention.
        attention_missing: run name -> why its attention ratios are not
            counted (an STA run with dev results but no region report).
        conventions: the CCC conventions of the counted runs.
    """

    label: str
    variant: str
    runs: list[str]
    missing: dict[str, str]
    dev_post: dict[str, Summary]
    dev_raw_ccc: Summary
    attention: dict[str, Summary]
    attention_missing: dict[str, str]
    conventions: set[str]


def seed_run_name(prefix: str, variant: str, seed: int) -> str:
    """The run folder name `tools/reproduce.sh` gives one seed of a network."""
    return f"{prefix}_{variant}_seed{seed}"


def _read_run(path: pathlib.Path) -> tuple[dict | None, str]:
    """(results.json content, "") or (None, why it cannot be counted)."""
    if not path.is_file():
        return None, "no results.json"
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        return None, f"malformed results.json: {e}"
    if not isinstance(result, dict) or not result.get("dev_post") or not result.get("dev_raw"):
        return None, "no dev metrics in results.json"
    if "targets" in result:
        return None, (f"a run of several targets ({', '.join(map(str, result['targets']))}); "
                      "the tables compare single-target runs")
    return result, ""


def _region_ratios(result: dict) -> tuple[dict[str, float] | None, str]:
    report = result.get("attention_regions")
    if not isinstance(report, dict):
        return None, "no attention_regions in results.json"
    regions = report.get("regions")
    if not isinstance(regions, dict):
        return None, f"attention regions unavailable: {report.get('reason', 'no regions')}"
    lacking = [name for name in ATTENTION_REGIONS
               if not isinstance(regions.get(name), dict) or "ratio" not in regions[name]]
    if lacking:
        return None, f"no ratio for {', '.join(lacking)}"
    return {name: float(regions[name]["ratio"]) for name in ATTENTION_REGIONS}, ""


def aggregate_seed_runs(results_dir: str | os.PathLike, prefix: str,
                        seeds: Sequence[int]) -> list[SeedAggregate]:
    """Aggregates each Table 1 network's runs over seeds.

    Reads `RESULTS/runs/<prefix>_<variant>_seed<N>/results.json` for every
    Table 1 variant and seed. A run without that file, with a malformed one
    or one without dev metrics is listed in `missing`, not counted. Metric
    values that are not finite are counted as they are (they make the mean
    NaN rather than disappear).

    Returns:
        One SeedAggregate per Table 1 row, in the table's order.
    """
    runs_dir = pathlib.Path(results_dir) / "runs"
    seeds = list(dict.fromkeys(seeds))  # a seed given twice is one run
    aggregates = []
    for label, _, _, _, variant in TABLE1:
        runs, missing, conventions = [], {}, set()
        post = {metric: [] for metric in SEED_METRICS}
        raw_ccc, ratios, attention_missing = [], {name: [] for name in ATTENTION_REGIONS}, {}
        for seed in seeds:
            name = seed_run_name(prefix, variant, seed)
            result, why = _read_run(runs_dir / name / "results.json")
            if result is None:
                missing[name] = why
                continue
            runs.append(name)
            conventions.add(str(result.get("convention", "?")))
            for metric in SEED_METRICS:
                post[metric].append(result["dev_post"][metric])
            raw_ccc.append(result["dev_raw"]["ccc"])
            if variant == "3d_cnn_sta":
                values, why = _region_ratios(result)
                if values is None:
                    attention_missing[name] = why
                else:
                    for region, value in values.items():
                        ratios[region].append(value)
        aggregates.append(SeedAggregate(
            label=label, variant=variant, runs=runs, missing=missing,
            dev_post={metric: Summary.of(values) for metric, values in post.items()},
            dev_raw_ccc=Summary.of(raw_ccc),
            attention=({region: Summary.of(values) for region, values in ratios.items()}
                       if variant == "3d_cnn_sta" else {}),
            attention_missing=attention_missing, conventions=conventions,
        ))
    return aggregates


def _missing_line(missing: dict[str, str]) -> str:
    if not missing:
        return "Missing runs: none."
    return "Missing runs: " + "; ".join(f"`{name}` ({why})" for name, why in missing.items()) + "."


def render_seed_tables(aggregates: Sequence[SeedAggregate], prefix: str,
                       seeds: Sequence[int]) -> str:
    """Markdown: "Synthetic Table 1 over seeds" and the STA runs' attention
    region ratios, each with the runs it lacks listed by name."""
    seed_list = ", ".join(str(seed) for seed in seeds)
    lines = [f"## {SEED_TABLE_TITLE}", ""]
    lines.append(
        f"Runs `runs/{prefix}_<variant>_seed<N>`, seeds {seed_list}. "
        "Dev partition after the AVEC post-processing chain fitted on dev (raw CCC "
        "before post-processing in the last column); mean +- sample standard deviation "
        "over the runs counted (n; n/a below two runs)."
    )
    lines += ["", "| Method | n | RMSE | CC | CCC | CCC raw |", "|---|---|---|---|---|---|"]
    missing: dict[str, str] = {}
    for agg in aggregates:
        cells = [agg.dev_post[metric].format() for metric in SEED_METRICS]
        cells.append(agg.dev_raw_ccc.format())
        lines.append(f"| {agg.label} | {len(agg.runs)} | {' | '.join(cells)} |")
        missing.update(agg.missing)
    conventions = sorted(set().union(*(agg.conventions for agg in aggregates)))
    lines += ["", _missing_line(missing), "",
              f"CCC convention: {', '.join(conventions) or 'n/a'}.", ""]

    lines += [f"## {SEED_ATTENTION_TITLE}", ""]
    lines.append(
        "Attention share / area share of each landmark region on dev faces (1 = uniform "
        "attention), mean +- sample standard deviation over the STA runs counted (n)."
    )
    header = " | ".join(ATTENTION_REGIONS)
    lines += ["", f"| Method | n | {header} |", "|---|---|" + "---|" * len(ATTENTION_REGIONS)]
    missing = {}
    for agg in aggregates:
        if not agg.attention:
            continue
        n = agg.attention[ATTENTION_REGIONS[0]].n
        cells = " | ".join(agg.attention[region].format() for region in ATTENTION_REGIONS)
        lines.append(f"| {agg.label} | {n} | {cells} |")
        missing.update(agg.missing)
        missing.update(agg.attention_missing)
    lines += ["", _missing_line(missing), ""]
    return "\n".join(lines)


def write_tables(results_dir: str | os.PathLike, corpus_names: dict[str, str],
                 seed_runs: str = "", seeds: Sequence[int] = ()) -> pathlib.Path:
    """Renders and atomically writes `RESULTS/tables.md`.

    Tables 1-3 when `corpus_names` is not empty (or nothing else is asked
    for), then, when `seed_runs` names a run prefix, the seed tables of
    `render_seed_tables` for `seeds`.
    """
    path = pathlib.Path(results_dir) / "tables.md"
    parts = []
    if corpus_names or not seed_runs:
        parts.append(render_tables(load_results(results_dir), corpus_names))
    if seed_runs:
        if not corpus_names:
            parts.append("# Synthetic tables: this reproduction over seeds\n")
        parts.append(render_seed_tables(aggregate_seed_runs(results_dir, seed_runs, seeds),
                                        seed_runs, seeds))
    io_utils.atomic_write_text(path, "\n".join(parts))
    return path


def main(argv: Sequence[str], flag_values=None) -> int:
    """The CLI: `argv` is what flag parsing left (program name first),
    `flag_values` the parsed flags (default: absl's global FLAGS)."""
    from absl import flags

    config = settings.from_flags(TablesConfig, flags.FLAGS if flag_values is None else flag_values)
    return cli.run("tables", lambda: _tables(argv, config), output=config.results_dir)


def _tables(argv: Sequence[str], FLAGS: TablesConfig) -> None:
    """main()'s work: write results/tables.md and print it."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    names = {}
    for item in FLAGS.corpora:
        table_corpus, _, source = item.partition("=")
        if table_corpus not in ("recola", "avec2017") or not source:
            raise ValueError(f"--corpora item {item!r} must look like recola=recola or recola=synthetic.")
        names[table_corpus] = source
    try:
        seeds = [int(seed) for seed in FLAGS.seeds]
    except ValueError:
        raise ValueError(f"--seeds={','.join(FLAGS.seeds)} must be integers, e.g. 0,1,2.") from None
    if FLAGS.seed_runs and not seeds:
        raise ValueError("--seed_runs needs at least one seed (--seeds).")
    path = write_tables(FLAGS.results_dir, names, FLAGS.seed_runs, seeds)
    print(path.read_text())
    print(f"Wrote {path}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TablesConfig:
    """The tables CLI's settings (each field is its flag)."""

    results_dir: str = setting("results", help="Folder holding runs/<corpus>_<variant>/.")
    corpora: tuple[str, ...] = setting(
        ("recola=recola", "avec2017=avec2017"),
        help="Which corpus fills each table, e.g. recola=synthetic; empty: no Tables 1-3 (with "
             "--seed_runs).")
    seed_runs: str = setting("", help="Run prefix of the seed runs <prefix>_<variant>_seed<N> to "
                                      "aggregate (e.g. synthetic_recola_like); empty: none.")
    seeds: tuple[str, ...] = setting(("0", "1", "2"), help="Seeds of --seed_runs.")


def define_flags(flag_values=None) -> None:
    """Defines the CLI's flags, one per `TablesConfig` field, in
    `flag_values` where given (`cli.call`), else in absl's global FLAGS."""
    settings.define_flags(TablesConfig, flag_values=flag_values)
