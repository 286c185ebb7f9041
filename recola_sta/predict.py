"""`python -m recola_sta.predict`: Predicts valence (and any other targets) for a face video (`recola_sta.inference.predict`).

A command-line entry point only: the implementation and its flags live in
`recola_sta.inference.predict`.
"""

import os

if __name__ == "__main__":
    # Before TensorFlow loads (it reads this only then): its C++ start-up
    # chatter would hide the progress bars.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from absl import app, flags

    from recola_sta.inference import predict

    __doc__ = predict.__doc__  # absl's --help shows the main module's docstring
    predict.define_flags()
    flags.adopt_module_key_flags(predict)
    app.run(predict.main)
