"""Label files: RECOLA's gold-standard ARFF (read and write), AV+EC 2017's
`;`-separated CSV, and the `time,valence[,...]` CSV of users' own corpora,
plus the checks every label reader shares (numbers, strictly increasing
times, two files on one grid).

Text parsing only: which file belongs to which video is the business of the
corpus readers (`corpora`, `affwild2`). Malformed input raises `ValueError`
(or `FileNotFoundError`) whose message names the file and, where it applies,
the line. `read_arff` and `write_arff` are re-exported by
`recola_sta.data.corpora`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import pathlib
import re
from typing import Sequence

import numpy as np

from recola_sta import io_utils, resample

# Grids of two label files of one recording agree when every time is this close.
_GRID_TOLERANCE_S = 1e-6


# ---------------------------------------------------------------------------
# ARFF (RECOLA gold standard)


def read_arff(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads a RECOLA gold-standard ARFF file.

    Tolerant of what varies between releases: any `@relation` name, `%`
    comments, blank lines, CRLF line ends, quoted names and the order of the
    attributes (the `frameTime` and `GoldStandard` columns are found by name,
    case-insensitively; a file with a single numeric column besides
    `frameTime` uses that one). `?` values are read as NaN.

    Returns:
        (times, values): float64 arrays of equal length, times strictly
        increasing.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: malformed header or rows; the message names file and line.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ARFF label file {path} does not exist.")
    attributes: list[tuple[str, str]] = []
    rows: list[tuple[int, list[str]]] = []
    in_data = False
    for lineno, raw in enumerate(read_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if not in_data:
            lower = line.lower()
            if lower.startswith("@relation"):
                continue
            if lower.startswith("@attribute"):
                attributes.append(_parse_attribute(path, lineno, line))
                continue
            if lower.startswith("@data"):
                in_data = True
                continue
            raise ValueError(f"{path}:{lineno}: unexpected line in ARFF header: {line!r}")
        if line.startswith("{"):
            raise ValueError(f"{path}:{lineno}: sparse ARFF rows are not supported.")
        rows.append((lineno, [_unquote(f) for f in next(csv.reader([line], skipinitialspace=True))]))
    if not in_data:
        raise ValueError(f"{path}: no @data section.")
    names = [name.lower() for name, _ in attributes]
    if "frametime" not in names:
        raise ValueError(f"{path}: no frameTime attribute (attributes: {[a for a, _ in attributes]}).")
    time_col = names.index("frametime")
    if "goldstandard" in names:
        value_col = names.index("goldstandard")
    else:
        numeric = [
            i for i, (_, kind) in enumerate(attributes)
            if i != time_col and kind.lower() in ("numeric", "real", "integer")
        ]
        if len(numeric) != 1:
            raise ValueError(
                f"{path}: no GoldStandard attribute and not exactly one other numeric "
                f"attribute (attributes: {[a for a, _ in attributes]})."
            )
        value_col = numeric[0]
    times, values, linenos = [], [], []
    for lineno, fields in rows:
        if len(fields) != len(attributes):
            raise ValueError(
                f"{path}:{lineno}: {len(fields)} fields, the header declares {len(attributes)}."
            )
        times.append(parse_float(path, lineno, fields[time_col], "frameTime", allow_missing=False))
        values.append(parse_float(path, lineno, fields[value_col], "gold-standard value"))
        linenos.append(lineno)
    times_arr = np.asarray(times, np.float64)
    check_label_times(path, times_arr, linenos)
    return times_arr, np.asarray(values, np.float64)


def write_arff(
    path: str | os.PathLike,
    instance_name: str,
    times: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    relation: str = "GOLDSTANDARD",
) -> None:
    """Writes a gold-standard ARFF file exactly in RECOLA's layout, atomically.

    Rows look like `train_1,0.04,-0.022925`; NaN values are written as `?`.

    Raises:
        ValueError: `times` and `values` differ in length.
    """
    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    if times.shape != values.shape or times.ndim != 1:
        raise ValueError(
            f"write_arff({path}): times {times.shape} and values {values.shape} "
            "must be 1-D of equal length."
        )
    out = io.StringIO()
    out.write(f"@relation {relation}\n\n")
    out.write("@attribute Instance_name string\n")
    out.write("@attribute frameTime numeric\n")
    out.write("@attribute GoldStandard numeric\n\n")
    out.write("@data\n\n")
    for t, v in zip(times, values):
        value = "?" if math.isnan(v) else f"{v:.6f}"
        out.write(f"{instance_name},{_format_time(t)},{value}\n")
    io_utils.atomic_write_text(path, out.getvalue())


def _format_time(t: float) -> str:
    """`0.04` style: six decimals with trailing zeros dropped (`0`, `300`)."""
    text = f"{t:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _parse_attribute(path: pathlib.Path, lineno: int, line: str) -> tuple[str, str]:
    match = re.match(r"@attribute\s+('[^']*'|\"[^\"]*\"|\S+)\s+(.+)$", line, re.IGNORECASE)
    if not match:
        raise ValueError(f"{path}:{lineno}: malformed @attribute line: {line!r}")
    return _unquote(match.group(1)), match.group(2).strip()


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


# ---------------------------------------------------------------------------
# AV+EC 2017 and csv-corpus label files


def read_avec2017_labels(path: pathlib.Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Reads `instance_name;timestamp;arousal;valence[;liking]` rows."""
    columns = ("arousal", "valence", "liking")
    times: list[float] = []
    values: dict[str, list[float]] = {c: [] for c in columns}
    linenos: list[int] = []
    width = None
    for lineno, raw in enumerate(read_lines(path), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(";")]
        if lineno == 1 and len(fields) > 1 and fields[1].lower() in ("timestamp", "time", "frametime"):
            continue  # a header some users add; the official files have none
        if len(fields) not in (4, 5):
            raise ValueError(
                f"{path}:{lineno}: expected 5 ';'-separated fields "
                f"(instance_name;timestamp;arousal;valence;liking), got {len(fields)}."
            )
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise ValueError(f"{path}:{lineno}: {len(fields)} fields, earlier rows have {width}.")
        times.append(parse_float(path, lineno, fields[1], "timestamp", allow_missing=False))
        for column, text in zip(columns, fields[2:]):
            values[column].append(parse_float(path, lineno, text, column))
        linenos.append(lineno)
    if not times:
        raise ValueError(f"{path}: no label rows.")
    times_arr = np.asarray(times, np.float64)
    check_label_times(path, times_arr, linenos)
    targets = {c: np.asarray(v, np.float64) for c, v in values.items() if v}
    return times_arr, {"valence": targets.pop("valence"), **targets}


def read_label_csv(path: pathlib.Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Reads a `time,valence[,arousal,...]` CSV with a header row."""
    lines = [(i, line) for i, line in enumerate(read_lines(path), start=1) if line.strip()]
    if not lines:
        raise ValueError(f"{path}: empty label file; expected a header time,valence[,...].")
    header_lineno, header_line = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([header_line]))]
    for required in ("time", "valence"):
        if required not in header:
            raise ValueError(
                f"{path}:{header_lineno}: header {header} lacks a {required!r} column "
                "(expected time,valence[,arousal,...])."
            )
    if len(set(header)) != len(header) or "" in header:
        raise ValueError(f"{path}:{header_lineno}: empty or repeated column names in {header}.")
    time_col = header.index("time")
    times: list[float] = []
    values: dict[str, list[float]] = {h: [] for h in header if h != "time"}
    linenos = []
    for lineno, line in lines[1:]:
        fields = next(csv.reader([line]))
        if len(fields) != len(header):
            raise ValueError(f"{path}:{lineno}: {len(fields)} fields, the header has {len(header)}.")
        times.append(parse_float(path, lineno, fields[time_col], "time", allow_missing=False))
        for column, text in zip(header, fields):
            if column != "time":
                values[column].append(parse_float(path, lineno, text, column))
        linenos.append(lineno)
    if not times:
        raise ValueError(f"{path}: no label rows after the header.")
    times_arr = np.asarray(times, np.float64)
    check_label_times(path, times_arr, linenos)
    targets = {c: np.asarray(v, np.float64) for c, v in values.items()}
    return times_arr, {"valence": targets.pop("valence"), **targets}


# ---------------------------------------------------------------------------
# Shared by every label reader


def read_lines(path: pathlib.Path) -> list[str]:
    """Lines of a text file whatever its line ends (LF, CRLF, CR), BOM dropped."""
    with open(path, encoding="utf-8-sig", errors="replace", newline=None) as f:
        return f.read().splitlines()


def parse_float(
    path: pathlib.Path, lineno: int, text: str, what: str, allow_missing: bool = True
) -> float:
    """One number of a label file; `?`, empty or `nan` -> NaN where
    `allow_missing`, else (and for non-numbers) a ValueError naming file and line."""
    text = text.strip()
    if allow_missing and text in ("?", "", "nan", "NaN"):
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}:{lineno}: non-numeric {what} {text!r}.") from None
    if not allow_missing and not math.isfinite(value):
        raise ValueError(f"{path}:{lineno}: {what} must be finite, got {text!r}.")
    return value


def check_label_times(path: pathlib.Path, times: np.ndarray, linenos: Sequence[int]) -> None:
    """A label file has rows and strictly increasing times (`resample.first_unordered_step`,
    the one ordering check), or the error names the file and line."""
    if times.size == 0:
        raise ValueError(f"{path}: no label rows.")
    step = resample.first_unordered_step(times, strict=True)
    if step is not None:
        k = step + 1
        raise ValueError(
            f"{path}:{linenos[k]}: times are not strictly increasing "
            f"({times[k - 1]:g} then {times[k]:g})."
        )


def check_same_grid(
    path_a: pathlib.Path, times_a: np.ndarray, path_b: pathlib.Path, times_b: np.ndarray
) -> None:
    """Two label files of one recording (valence, arousal) share one time grid,
    or the error names both files and the first row where they part."""
    n = min(times_a.size, times_b.size)
    differ = np.flatnonzero(np.abs(times_a[:n] - times_b[:n]) > _GRID_TOLERANCE_S)
    if differ.size:
        k = int(differ[0])
        raise ValueError(
            f"Label grids disagree: {path_a} and {path_b} differ at data row {k + 1} "
            f"(time {times_a[k]:g} vs {times_b[k]:g})."
        )
    if times_a.size != times_b.size:
        raise ValueError(
            f"Label grids disagree: {path_a} has {times_a.size} rows, {path_b} has {times_b.size}."
        )
