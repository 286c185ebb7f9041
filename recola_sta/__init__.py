"""recola_sta: spatiotemporal attention networks for continuous emotion
recognition from face videos (Lee, Kim, Kim, Sohn, ICASSP 2018), in Keras 3.

Modules, in data-flow order: `corpora`, `synthetic`, `faces`, `preprocess`,
`cache`, `pipeline`, `layers`, `models`, `metrics`, `train`, `resample`,
`postprocess`, `evaluate`, `export`, `predict`, `plots`, `tables`.
"""

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) hides the
# progress bars; users can still raise it by setting the variable themselves.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
