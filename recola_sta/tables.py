"""`python -m recola_sta.tables`: Writes the paper's Tables 1-3 from training runs (`recola_sta.evaluation.tables`).

A command-line entry point only: the implementation and its flags live in
`recola_sta.evaluation.tables`.
"""

import os

if __name__ == "__main__":
    # Before TensorFlow loads (it reads this only then): its C++ start-up
    # chatter would hide the progress bars.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from absl import app, flags

    from recola_sta.evaluation import tables

    __doc__ = tables.__doc__  # absl's --help shows the main module's docstring
    tables.define_flags()
    flags.adopt_module_key_flags(tables)
    app.run(tables.main)
