"""`python -m recola_sta.train`: Trains a network (`recola_sta.training.train`).

A command-line entry point only: the implementation and its flags live in
`recola_sta.training.train`.
"""

import os

if __name__ == "__main__":
    # Before TensorFlow loads (it reads this only then): its C++ start-up
    # chatter would hide the progress bars.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from absl import app, flags

    from recola_sta.training import train

    __doc__ = train.__doc__  # absl's --help shows the main module's docstring
    train.define_flags()
    flags.adopt_module_key_flags(train)
    app.run(train.main)
