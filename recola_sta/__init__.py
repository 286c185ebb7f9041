"""recola_sta: spatiotemporal attention networks for continuous emotion
recognition from face videos (Lee, Kim, Kim, Sohn, ICASSP 2018), in Keras 3.

The main modules, in data-flow order: `corpora`, `synthetic`, `faces`,
`preprocess`, `cache`, `pipeline`, `layers`, `models`, `metrics`, `train`,
`resample`, `postprocess`, `evaluate`, `export`, `predict`, `plots`,
`tables`; BUILD_NOTES.md, "Module map", lists every module and its callers.

Importing the package or a module sets no environment variable and no global
library state (such as matplotlib's backend). The command-line entry points
that load TensorFlow quieten its C++ start-up logging themselves with
`TF_CPP_MIN_LOG_LEVEL=2` (unless already set), before TensorFlow is imported:
TensorFlow reads the variable once, when it loads.
"""

__version__ = "0.1.0"
