"""The settings of a training run: `TrainConfig`, one typed field per flag
(`recola_sta.settings`: default, help, and choices or check in one place),
the face settings and the network's options nested as groups.
"""

from __future__ import annotations

import dataclasses
import pathlib

from recola_sta import metrics, settings
from recola_sta.cache import preprocess
from recola_sta.data import corpora, synthetic
from recola_sta.data.corpora import PARTITIONS
from recola_sta.faces.settings import FaceSettings
from recola_sta.model import networks
from recola_sta.model.networks import ModelOptions
from recola_sta.settings import nested, setting
from recola_sta.targets import parse_targets
from recola_sta.training import distributed

LOSSES = ("mse", "ccc")
# Where the augmentation runs (--augment_on): the same per-clip draws and
# mapping either way (pipeline.augment_clip, layers.ClipAugmentation).
AUGMENT_PLACES = ("pipeline", "model")
# --mixed_precision -> Keras dtype policy (variables and outputs stay float32).
PRECISION_POLICIES = {"none": "float32", "bfloat16": "mixed_bfloat16",
                      "float16": "mixed_float16"}
JIT_MODES = {"auto": "auto", "on": True, "off": False}


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run, typed; each field is also its CLI flag
    (`settings.setting`: default, help, and choices or check in one place).

    Defaults are the paper's where it gives them (section 3.1).
    """

    corpus_dir: str = setting(
        help="Corpus folder (RECOLA, AV+EC 2017, Aff-Wild2, synthetic or csv layout).",
        check=bool, expected="a corpus folder")
    corpus_kind: str = setting("synthetic", help="Corpus layout.", choices=corpora.CORPUS_KINDS)
    run_dir: str = setting("runs/default", help="Output folder of the run; re-running resumes it.")
    # A folder that holds other files is refused without it (`check_run_folder`).
    allow_existing_dir: bool = setting(
        False, help="Write the run into an existing --run_dir that holds other files and no "
                    "run; they are kept (a file with a name the run writes is replaced).")
    cache_dir: str = setting("", help="Preprocess cache; default data/cache/<corpus>_<size>.")
    variant: str = setting("3d_cnn_sta", help="Network.", choices=networks.VARIANTS)
    # The face settings (crop size, detection, tracking): --size, --upsample, ...
    face: FaceSettings = nested(FaceSettings)
    frames: int = setting(16, help="Frames per clip (paper: 16 at 4 fps).",
                          check=lambda v: v > 0, expected="a positive number of frames per clip")
    batch_size: int = setting(16, help="Clips per batch (paper: 16).",
                              check=lambda v: v > 0, expected="a positive number of clips")
    learning_rate: float = setting(1e-4, help="Adam learning rate (paper: 1e-4).",
                                   check=lambda v: v > 0, expected="positive")
    epochs: int = setting(20, help="Epochs over the training clips.",
                          check=lambda v: v > 0, expected="positive")
    max_steps_per_epoch: int = setting(0, help="Cap on steps per epoch; 0: all clips.",
                                       check=lambda v: v >= 0, expected="0 (all) or positive")
    loss: str = setting("mse", help="Training loss (paper: mse).", choices=LOSSES)
    # The network's options (`networks.ModelOptions`): --fc_units, --dropout,
    # --peephole_mode, --attention_*, ...
    model: ModelOptions = nested(ModelOptions)
    target: str = setting(
        "valence",
        help="Label dimension to learn (valence, arousal), or a comma-separated list "
             "(valence,arousal): one model with an output per target, trained on the sum of "
             "their losses, the best epoch by their mean dev CCC.")
    convention: str = setting(metrics.DEFAULT_CONVENTION, choices=metrics.CONVENTIONS,
                              help="CCC convention: avec (challenge) or population.")
    augment: bool = setting(True, help="Flip/contrast/colour augmentation (paper: on).")
    augment_on: str = setting(
        "pipeline", choices=AUGMENT_PLACES,
        help="Where --augment runs: pipeline (tf.data, on the CPU) or model (the model's "
             "first layer, on the accelerator: a GPU trains faster than 2 CPU cores "
             "augment). The same draws and mapping either way.")
    seed: int = setting(0, help="Random seed.")
    # Same seed, same run: tf.data keeps its element order and TensorFlow's
    # ops their reduction order (tf.config.experimental.enable_op_determinism);
    # a resumed run trains on as the uninterrupted one would (each epoch's
    # draws depend on the seed and the epoch alone, `EpochSeeds`).
    # Off by default: the parallel input pipeline then hands over whichever
    # clip is ready first (docs/training.md, "Reproducibility").
    deterministic: bool = setting(
        False, help="Reproducible runs: fixed tf.data order and deterministic TensorFlow ops.")
    # Accelerator settings (docs/training.md, "GPU path").
    mixed_precision: str = setting(
        "none", choices=tuple(PRECISION_POLICIES),
        help="Compute dtype of the layers: none (float32), bfloat16, or float16 (GPU only: "
             "TensorFlow's CPU kernels lack float16 3D pooling; with loss scaling). Weights, "
             "the output and the loss stay float32.")
    jit_compile: str = setting(
        "auto", choices=tuple(JIT_MODES),
        help="XLA compilation of the training step: auto (Keras: on with a GPU, off on CPU, "
             "where it measured slower), on or off.")
    workers: int = setting(2, help="Processes for corpus generation and face preprocessing.",
                           check=lambda v: v > 0, expected="positive")
    min_found_rate: float = setting(0.8, help="Warn for recordings with fewer faces found.")
    time_shift: bool = setting(False, help="Search annotation-delay compensation (paper: off).")
    export: bool = setting(True, help="Export the best model as a SavedModel.")
    export_formats: tuple[str, ...] = setting(
        ("savedmodel",), help="With --export: savedmodel, onnx (model.onnx beside it, for ONNX "
                              "Runtime; needs the [onnx] extra), or both (savedmodel,onnx).",
        check=lambda v: bool(v) and set(v) <= {"savedmodel", "onnx"},
        expected="a non-empty list of savedmodel and onnx")
    eval_partitions: tuple[str, ...] = setting(
        ("dev", "test"), help="Partitions predicted after training.",
        check=lambda v: set(v) <= set(PARTITIONS),
        expected=f"partitions among {PARTITIONS}")
    progress: bool = setting(True, help="Progress bars and the model summary.")
    # Scaling out (recola_sta.distributed).
    distribution: str = setting(
        "none", choices=distributed.DISTRIBUTIONS,
        help="none: one device; mirrored: every local device; multi_worker: the cluster in "
             "TF_CONFIG. --batch_size is the global batch.")
    worker_timeout_s: float = setting(
        600.0, check=lambda v: v > 0, expected="positive seconds",
        help="multi_worker: seconds a cross-worker step may wait for the others (more than "
             "the chief's validation pass) before the run fails.")
    # Synthetic corpus, used only when corpus_kind == "synthetic" and it is missing.
    synthetic_num_train: int = setting(20, help="Synthetic corpus: train recordings.")
    synthetic_num_dev: int = setting(5, help="Synthetic corpus: dev recordings.")
    synthetic_num_test: int = setting(5, help="Synthetic corpus: test recordings.")
    synthetic_duration_s: float = setting(60.0, help="Synthetic corpus: seconds each.")
    synthetic_seed: int = setting(0, help="Synthetic corpus: seed.")
    synthetic_preset: str = setting(
        "default", choices=synthetic.PRESETS,
        help="Synthetic corpus: preset (recola_like: harder, see docs/recola_like.md).")
    # RECOLA's videos are 25 fps; faces are sampled at 4 fps
    # (preprocess.SAMPLE_FPS) whatever the rate, so a lower rate renders
    # fewer frames that are never used.
    synthetic_fps: float = setting(
        25.0, check=lambda v: v >= preprocess.SAMPLE_FPS,
        expected=f"at least the {preprocess.SAMPLE_FPS:g} fps at which faces are sampled",
        help="Synthetic corpus: video frame rate (RECOLA: 25; faces are sampled at 4).")

    @property
    def targets(self) -> tuple[str, ...]:
        """The label dimensions of --target, in order (`parse_targets`)."""
        return parse_targets(self.target)

    def resolved_cache_dir(self) -> str:
        if self.cache_dir:
            return self.cache_dir
        name = pathlib.Path(self.corpus_dir).resolve().name or "corpus"
        return str(pathlib.Path("data") / "cache" / f"{name}_{self.face.size}")

    def validate(self) -> None:
        """Raises ValueError naming the flag of the first bad setting."""
        settings.check(self)
        parse_targets(self.target)
        if self.distribution != "none" and len(self.targets) > 1:
            # The distributed loop computes one target's loss and CCC.
            raise ValueError(f"--distribution={self.distribution!r} is invalid: expected none "
                             "when --target names several targets.")
