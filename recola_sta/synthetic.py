"""`python -m recola_sta.synthetic`: Generates the synthetic RECOLA-layout corpus (`recola_sta.data.synthetic`).

A command-line entry point only: the implementation and its flags live in
`recola_sta.data.synthetic`.
"""

import os

if __name__ == "__main__":
    # Before TensorFlow loads (it reads this only then): its C++ start-up
    # chatter would hide the progress bars.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from absl import app, flags

    from recola_sta.data import synthetic

    __doc__ = synthetic.__doc__  # absl's --help shows the main module's docstring
    synthetic.define_flags()
    flags.adopt_module_key_flags(synthetic)
    app.run(synthetic.main)
