"""`python -m recola_sta.evaluate`: Evaluates a training run on dev (`recola_sta.evaluation.evaluate`).

A command-line entry point only: the implementation and its flags live in
`recola_sta.evaluation.evaluate`.
"""

import os

if __name__ == "__main__":
    # Before TensorFlow loads (it reads this only then): its C++ start-up
    # chatter would hide the progress bars.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from absl import app, flags

    from recola_sta.evaluation import evaluate

    __doc__ = evaluate.__doc__  # absl's --help shows the main module's docstring
    evaluate.define_flags()
    flags.adopt_module_key_flags(evaluate)
    app.run(evaluate.main)
