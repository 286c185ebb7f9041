"""`python -m recola_sta.preprocess`: Preprocesses a corpus into a face cache (`recola_sta.cache.preprocess`).

A command-line entry point only: the implementation and its flags live in
`recola_sta.cache.preprocess`.
"""

import os

if __name__ == "__main__":
    # Before TensorFlow loads (it reads this only then): its C++ start-up
    # chatter would hide the progress bars.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from absl import app, flags

    from recola_sta.cache import preprocess

    __doc__ = preprocess.__doc__  # absl's --help shows the main module's docstring
    preprocess.define_flags()
    flags.adopt_module_key_flags(preprocess)
    app.run(preprocess.main)
