"""recola_sta: spatiotemporal attention networks for continuous emotion
recognition from face videos (Lee, Kim, Kim, Sohn, ICASSP 2018), in Keras 3.

The subpackages, in data-flow order: `faces` (videos, detection, alignment),
`data` (corpora), `cache` (the preprocess cache), `model` (layers and
networks), `training`, `evaluation`, `inference` (export, predict) and
`analysis` (attention, figures); shared modules sit at the top. BUILD_NOTES.md,
"Layout", says what each owns and may import. `python -m recola_sta.train`
(and `preprocess`, `evaluate`, `predict`, `synthetic`, `tables`) runs a CLI.

Importing the package or a module sets no environment variable and no global
library state (such as matplotlib's backend). The command-line entry points
that load TensorFlow quieten its C++ start-up logging themselves with
`TF_CPP_MIN_LOG_LEVEL=2` (unless already set), before TensorFlow is imported:
TensorFlow reads the variable once, when it loads.
"""

__version__ = "0.1.0"
