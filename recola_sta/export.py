"""`python -m recola_sta.export`: Exports a finished run's best model as a
SavedModel, an ONNX model or both (`recola_sta.inference.export`).

A command-line entry point only: the implementation and its flags live in
`recola_sta.inference.export`.
"""

import os

if __name__ == "__main__":
    # Before TensorFlow loads (it reads this only then): its C++ start-up
    # chatter would hide the output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from absl import app, flags

    from recola_sta.inference import export

    __doc__ = export.__doc__  # absl's --help shows the main module's docstring
    export.define_flags()
    flags.adopt_module_key_flags(export)
    app.run(export.main)
