"""Temporary files of atomic writes: a name no user file has, and a cleanup
that removes only those."""

from __future__ import annotations

import pathlib

import pytest

from recola_sta import io_utils

# Hidden files with several dots, as users keep them in any folder.
USER_FILES = (".env.local", ".eslintrc.json", ".pre-commit-config.yaml", ".a.b.c",
              ".train_2.tfrecord.ab12cd34.tmp", "notes.v2.txt", ".lock")


# Atomic writes entered and never left, kept alive (a collected one would
# clean up when it is closed).
_UNFINISHED = []


def _leftover(path: pathlib.Path, suffix: str = "") -> pathlib.Path:
    """The temporary file of an atomic write whose process died before the
    rename."""
    context = io_utils.atomic_path(path, suffix=suffix)
    _UNFINISHED.append(context)
    tmp = context.__enter__()
    tmp.write_bytes(b"partial")
    return tmp


def test_cleanup_removes_leftover_temporaries_and_keeps_the_users_files(tmp_path):
    for name in USER_FILES:
        (tmp_path / name).write_text("mine")
    (tmp_path / ".config.d").mkdir()
    leftovers = [_leftover(tmp_path / "train_2.tfrecord"),
                 _leftover(tmp_path / "train_2.mp4", suffix=".mp4")]

    removed = io_utils.remove_temporaries(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(USER_FILES + (".config.d",))
    assert all((tmp_path / name).read_text() == "mine" for name in USER_FILES)
    assert sorted(removed) == sorted(leftovers)
    assert io_utils.remove_temporaries(tmp_path / "missing") == []


def test_cleanup_removes_temporary_folders(tmp_path):
    folder = tmp_path / f"{io_utils.TEMP_PREFIX}results.x1y2z3"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "part.jsonl").write_text("{}")
    (tmp_path / "results").mkdir()
    assert io_utils.remove_temporaries(tmp_path) == [folder]
    assert [p.name for p in tmp_path.iterdir()] == ["results"]


def test_temporary_names_keep_the_extension_last(tmp_path):
    tmp = _leftover(tmp_path / "attention.mp4", suffix=".mp4")
    assert tmp.parent == tmp_path and tmp.suffix == ".mp4"
    assert tmp.name.startswith(f"{io_utils.TEMP_PREFIX}attention.mp4.")
    assert io_utils.is_temporary(tmp.name)
    assert _leftover(tmp_path / "manifest.json").suffix == ".tmp"
    # A long target name still gives a valid file name.
    long_name = "é" * 120 + ".tfrecord"  # 249 bytes
    tmp = _leftover(tmp_path / long_name)
    assert tmp.is_file() and len(tmp.name.encode()) <= 255
    assert io_utils.remove_temporaries(tmp_path)


def test_a_finished_or_failed_atomic_write_leaves_no_temporary(tmp_path):
    io_utils.atomic_write_text(tmp_path / ".env.local", "KEY=1\n")
    with pytest.raises(RuntimeError):
        with io_utils.atomic_path(tmp_path / "out.csv", suffix=".csv") as tmp:
            tmp.write_text("half")
            raise RuntimeError("failed")
    assert [p.name for p in tmp_path.iterdir()] == [".env.local"]
