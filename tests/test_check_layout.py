"""tools/check_layout.py finds import circles (lazy imports included) and
TensorFlow reached from modules that must stay free of it."""

from __future__ import annotations

import importlib.util
import pathlib

TOOL = pathlib.Path(__file__).resolve().parents[1] / "tools" / "check_layout.py"


def _tool():
    spec = importlib.util.spec_from_file_location("check_layout", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for name, text in {"recola_sta/__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_clean_layout_holds(tmp_path):
    root = _package(tmp_path, {
        "recola_sta/faces/__init__.py": "",
        "recola_sta/faces/align.py": "import numpy\nfrom recola_sta import io\n",
        "recola_sta/io.py": "import os\n",
        "recola_sta/model.py": "import keras\nfrom recola_sta.faces import align\n",
    })
    assert _tool().check(root, ("recola_sta.faces", "recola_sta.io")) == []
    assert _tool().main(["--root", str(root), "--tf_free", "recola_sta.faces"]) == 0


def test_a_lazy_import_circle_is_found(tmp_path):
    root = _package(tmp_path, {
        "recola_sta/a.py": "from recola_sta import b\n",
        "recola_sta/b.py": "def f():\n    from recola_sta import c\n",
        "recola_sta/c.py": "def g():\n    import recola_sta.a\n",
    })
    problems = _tool().check(root, ())
    assert problems == ["import circle: recola_sta.a -> recola_sta.b -> recola_sta.c -> recola_sta.a"]
    assert _tool().main(["--root", str(root), "--tf_free", ""]) == 1


def test_tensorflow_reached_through_another_module_is_named(tmp_path):
    root = _package(tmp_path, {
        "recola_sta/faces/__init__.py": "",
        "recola_sta/faces/align.py": "def f():\n    from .. import cache\n",
        "recola_sta/cache.py": "import tensorflow as tf\n",
    })
    problems = _tool().check(root, ("recola_sta.faces",))
    assert problems == ["recola_sta.faces.align must not import TensorFlow: "
                        "recola_sta.faces.align -> recola_sta.cache -> tensorflow"]


def test_worker_modules_of_this_package_stay_free_of_tensorflow():
    # Corpus generation and face preprocessing run these modules in spawned
    # workers; TensorFlow there costs seconds and hundreds of MB per worker.
    tool = _tool()
    problems = tool.check(TOOL.parents[1], tool.DEFAULT_TF_FREE)
    assert [p for p in problems if "must not import TensorFlow" in p] == []
    assert len(tool.module_names(TOOL.parents[1])) > 20
