"""The one exit-code convention every CLI shares (recola_sta.cli)."""

import errno

import pytest

from recola_sta import cli


def _raise(error):
    def body():
        raise error
    return body


def test_done_and_returned_codes():
    assert cli.run("x", lambda: None) == cli.EXIT_DONE == 0
    assert cli.run("x", lambda: 3) == 3


def test_interrupt_is_one_line_and_130(capsys):
    assert cli.run("train", _raise(KeyboardInterrupt())) == cli.EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert err.strip() == "train: interrupted; run the same command to resume."


def test_no_face_is_3(capsys):
    assert cli.run("predict", _raise(cli.NoFaceError("no face in a.mp4"))) == 3
    assert capsys.readouterr().err.strip() == "predict: no face in a.mp4"


def test_bad_input_is_2_and_names_the_problem(capsys):
    assert cli.run("evaluate", _raise(ValueError("--run_dir=/x: no config.json"))) == 2
    assert capsys.readouterr().err.strip() == "evaluate: --run_dir=/x: no config.json"
    assert cli.run("evaluate", _raise(FileNotFoundError(2, "No such file", "/a/b"))) == 2


def test_a_bug_propagates():
    with pytest.raises(RuntimeError, match="bug"):
        cli.run("x", _raise(RuntimeError("bug")))
    with pytest.raises(ZeroDivisionError):
        cli.run("x", _raise(ZeroDivisionError()), bad_input=(ValueError,))


def test_full_disk_names_the_file_and_the_free_space(tmp_path, capsys):
    target = tmp_path / "run" / "history.csv"
    error = OSError(errno.ENOSPC, "No space left on device", str(target))
    assert cli.run("train", _raise(error), output=tmp_path) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"train: no space left on device while writing {target} (")
    assert "MiB free there" in err and "run the same command to resume" in err
    assert "\n" not in err


def test_full_disk_wrapped_by_tensorflow_names_the_output_folder(tmp_path, capsys):
    class ResourceExhaustedError(Exception):  # TensorFlow's wrapping carries only text
        pass

    wrapped = ResourceExhaustedError("saved_model/variables.data: No space left on device")
    assert cli.is_disk_full(wrapped)
    assert cli.run("train", _raise(wrapped), output=tmp_path) == 2
    assert f"while writing {tmp_path} (" in capsys.readouterr().err
    # An ENOSPC raised while handling another error is found through the chain.
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("export failed")
    except RuntimeError as e:
        assert cli.is_disk_full(e)
    assert not cli.is_disk_full(OSError(errno.EACCES, "Permission denied"))
