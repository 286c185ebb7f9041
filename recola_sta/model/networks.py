"""The networks of the paper's Tables 1-3, as Keras functional models.

- `"2d_cnn"`: the emotion network with 2D (1x3x3) kernels, every frame on its
  own, each frame standardised on its own (the paper's 2D-CNN row,
  Khorrami et al.'s CNN).
- `"3d_cnn"`: the emotion network of section 2.3 with 3x3x3 kernels.
- `"3d_cnn_sta"`: the 3D-CNN whose first feature maps X' are multiplied by the
  spatiotemporal attention of section 2.2 (encoder -> ConvLSTM decoder ->
  spatial softmax), eq. (3).
- `"cnn_rnn_1s"`, `"cnn_rnn_4s"`: our implementation of the cited CNN + RNN
  rows of Khorrami et al. (ICIP 2016), "(~1 s)" and "(~4 s)" in Tables 2-3:
  the 2D-CNN's per-frame trunk (conv1-conv4, flatten, fc1, dropout), then
  `layers.CausalWindowLSTM` (one LSTM of `rnn_units` units over the last 4 or
  16 frames of every frame, i.e. ~1 s or ~4 s at 4 fps), then the linear
  valence output per frame.

All take float32 clips `(batch, frames, size, size, 3)` in [0, 1] (the first
layer standardises each clip, or each frame for `PER_FRAME_VARIANTS`) and
return float32 `(batch, frames, 1)`: one valence per frame. Every kernel is
Xavier (glorot_uniform) initialised.

Emotion network (section 2.3): conv1 (32) -> [attention] -> pool -> conv2 (64)
-> pool -> conv3 (128) -> pool -> conv4 (256), "same" padding, ReLU, the
max-pools (1, 2, 2) so time is kept; then each frame's final feature map is
flattened (not averaged: averaging hides where a feature fired, and a
prototype then predicted the label mean) -> Dense(fc_units, ReLU) ->
Dropout(0.5) -> [CNN+RNN: `layers.CausalWindowLSTM`] -> Dense(1, linear).

Layer names other code relies on: `"augment"` (only with the `augmentation`
option), `"standardize"`, `"conv1"` (X'),
`"temporal_decoder"`, `"attention"` (the maps A), `"attend"` (X''),
`"rnn"` (the CNN+RNN's recurrent layer), `"valence"` (the output; `"targets"`
for a model of several targets, `output_layer_name`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras

from recola_sta.model import layers
from recola_sta.settings import setting

VARIANTS = ("2d_cnn", "3d_cnn", "3d_cnn_sta", "cnn_rnn_1s", "cnn_rnn_4s")
# Frames per recurrent window of the CNN+RNN variants (4 fps: ~1 s, ~4 s).
RNN_WINDOWS = {"cnn_rnn_1s": 4, "cnn_rnn_4s": 16}
# Variants whose every frame is processed on its own up to the recurrent
# layer: (1, 3, 3) kernels and per-frame standardisation.
PER_FRAME_VARIANTS = ("2d_cnn", *RNN_WINDOWS)
# How each frame's last feature map (after conv4) becomes the FC input.
READOUTS = ("flatten", "average", "max")

PEEPHOLE_NONE = "none"


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """The options of `build_model` beside the variant and the input and
    output sizes: one default each, and for those the training CLI sets, the
    flag's help and check (`recola_sta.settings`; train nests them as
    `TrainConfig.model`). The others (flag=False) are set by code only.
    """

    fc_units: int = setting(128, help="Width of the first fully connected layer.",
                            check=lambda v: v > 0, expected="positive")
    dropout: float = setting(0.5, help="Dropout between the fully connected layers (paper: 0.5).",
                             check=lambda v: 0.0 <= v < 1.0, expected="in [0, 1)")
    conv_filters: tuple[int, ...] = setting(
        (32, 64, 128, 256), flag=False, help="The four 3D convolutions (paper: 32, 64, 128, 256).")
    # "flatten": each frame's last map flattened (location-specific FC
    # weights); "average" / "max": pooled over space first, so the FC sees
    # what fired, not where (then only the attention can prefer a region).
    readout: str = setting(
        "flatten", choices=READOUTS,
        help="Per-frame read-out before the FC layers: flatten (location-specific FC "
             "weights), average or max (pooled over space).")
    # Only used by the CNN+RNN variants: LSTM hidden units (Khorrami et al.'s
    # RNN size as we recall it, unverified; BUILD_NOTES.md, Model).
    rnn_units: int = setting(100, flag=False, help="LSTM units of the CNN+RNN variants.")
    # Only used by "3d_cnn_sta" (accepted and ignored by the others, so one
    # set of training flags serves every variant).
    encoder_filters: tuple[int, ...] = setting(
        (16, 32), flag=False, help="Spatial encoder conv + pool stages.")
    decoder_filters: tuple[int, ...] = setting(
        (16, 8), flag=False, help="ConvLSTM channels of each decoder stage, one per encoder stage.")
    upsampling: str = setting("transposed", help="Decoder x2 stages.",
                              choices=layers.UPSAMPLING_MODES)
    peephole_mode: str = setting(
        "conv", choices=(*layers.PEEPHOLE_MODES, PEEPHOLE_NONE),
        help="ConvLSTM peepholes: conv (eq. 1 as printed), hadamard (Shi et al.), none.")
    unit_forget_bias: bool = setting(True, flag=False,
                                     help="ConvLSTM forget gates biased to 1 at initialisation.")
    attention_scale: str = setting(
        "hw", choices=layers.ATTENTION_SCALES,
        help="hw: attention times H*W (uniform = 1); none: raw softmax (eq. 3 literally).")
    use_previous_state: bool = setting(
        True, flag=False, help="Attention of frame t from the decoder state H_{t-1} (eq. 2).")
    # "linear": eq. (2) as printed; "standardized": per-frame standardised
    # scores times a learned temperature (see layers.SpatialSoftmax).
    attention_scores: str = setting(
        "linear", choices=layers.ATTENTION_SCORES,
        help="linear: eq. 2 as printed; standardized: per-frame z-scores times a learned "
             "temperature (attention that can sharpen at lr 1e-4).")
    attention_temperature: float = setting(
        1.0, check=lambda v: v > 0,
        expected="positive", help="Initial temperature of --attention_scores=standardized.")
    # "per_location": eq. (2) as printed (one W_i per location); "shared":
    # one 1x1 map for every location.
    attention_weights: str = setting(
        "per_location", choices=layers.ATTENTION_WEIGHTS,
        help="Eq. 2 score weights: shared (one 1x1 map for every location), per_location "
             "(one W_i per location, eq. 2 as printed) or none (an ablation: the learned "
             "--attention_location_bias alone, one fixed map for every frame).")
    # Constant multiplying the attention scores (W initialised / gain), i.e.
    # an Adam learning-rate multiplier for the score weights.
    attention_score_gain: float = setting(
        1.0, check=lambda v: v > 0, expected="positive",
        help="Constant gain on the attention scores (weights initialised / gain): an Adam "
             "learning-rate multiplier for them; 1 = eq. 2.")
    attention_normalize_state: bool = setting(
        False, help="Normalise the decoder state over its channels before eq. 2.")
    attention_location_bias: bool = setting(
        False, help="Add a learned per-location prior score to eq. 2 (not in the paper).")


# The defaults of `build_model`'s options, by name: `ModelOptions`', and two
# that only code sets: `peepholes` (False: none, as peephole_mode="none") and
# `augmentation` (None, or `layers.ClipAugmentation`'s arguments).
DEFAULT_OPTIONS: dict[str, Any] = {**dataclasses.asdict(ModelOptions()), "peepholes": True,
                                   "augmentation": None}

_POOL = (1, 2, 2)  # pool space only: one valence per frame needs T kept.


def _check_filters(value, name: str, length: int | None = None) -> tuple[int, ...]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
    ok = ok and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    )
    if ok and length is not None:
        ok = len(value) == length
    if not ok:
        expected = f"{length} positive integers" if length else "positive integers"
        if name == "decoder_filters":
            expected += " (one per encoder stage)"
        raise ValueError(f"Option `{name}` must be {expected}. Received: {name}={value!r}")
    return tuple(value)


def _options(variant: str, frames: int, size: int, options: dict) -> dict:
    """Validates build_model's arguments; returns the full option dict, with
    `peepholes` (whether the ConvLSTM has any) resolved."""
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; expected one of {VARIANTS}.")
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(
            f"Unknown model option(s) {unknown}; known: {sorted(DEFAULT_OPTIONS)}."
        )
    opts = {**DEFAULT_OPTIONS, **options}
    for name, value in (("frames", frames), ("size", size), ("fc_units", opts["fc_units"]),
                        ("rnn_units", opts["rnn_units"])):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    dropout = opts["dropout"]
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"Option `dropout` must be in [0, 1). Received: dropout={dropout!r}")
    opts["conv_filters"] = _check_filters(opts["conv_filters"], "conv_filters", 4)
    opts["encoder_filters"] = _check_filters(opts["encoder_filters"], "encoder_filters")
    opts["decoder_filters"] = _check_filters(
        opts["decoder_filters"], "decoder_filters", len(opts["encoder_filters"])
    )
    for name, choices in (
        ("upsampling", layers.UPSAMPLING_MODES),
        ("peephole_mode", (*layers.PEEPHOLE_MODES, PEEPHOLE_NONE)),
        ("attention_scale", layers.ATTENTION_SCALES),
        ("attention_scores", layers.ATTENTION_SCORES),
        ("attention_weights", layers.ATTENTION_WEIGHTS),
        ("readout", READOUTS),
    ):
        if opts[name] not in choices:
            raise ValueError(
                f"Option `{name}` must be one of {choices}. Received: {name}={opts[name]!r}"
            )
    if opts["augmentation"] is not None and not isinstance(opts["augmentation"], dict):
        raise ValueError("Option `augmentation` must be None or a dict of "
                         f"layers.ClipAugmentation arguments. Received: {opts['augmentation']!r}")
    for name in ("attention_normalize_state", "attention_location_bias"):
        if not isinstance(opts[name], bool):
            raise ValueError(f"Option `{name}` must be True or False. Received: {opts[name]!r}")
    if opts["attention_location_bias"] and opts["attention_scores"] != "linear":
        raise ValueError("Option `attention_location_bias` needs attention_scores='linear'.")
    if opts["attention_weights"] == "none" and not opts["attention_location_bias"]:
        raise ValueError("Option attention_weights='none' needs attention_location_bias=True "
                         "(its scores are the location bias alone).")
    for name in ("attention_temperature", "attention_score_gain"):
        value = opts[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"Option `{name}` must be positive. Received: {name}={value!r}")
    if opts["peephole_mode"] == PEEPHOLE_NONE:
        # No peepholes; the layer keeps its default mode, which it then ignores.
        opts["peepholes"], opts["peephole_mode"] = False, "conv"
    pools = max(3, len(opts["encoder_filters"]) if variant == "3d_cnn_sta" else 3)
    if size % 2**pools:
        raise ValueError(
            f"`size` must be divisible by {2**pools} (the network halves it "
            f"{pools} times). Received: size={size}"
        )
    return opts


def _attention(x, opts: dict):
    """Spatial encoder -> temporal decoder -> spatial softmax (section 2.2)."""
    for k, filters in enumerate(opts["encoder_filters"]):
        # A (1, 3, 3) kernel is a 2D convolution with weights shared by all
        # frames (the paper's Siamese encoder).
        x = keras.layers.Conv3D(
            filters, (1, 3, 3), padding="same", activation="relu",
            name=f"encoder_conv{k + 1}",
        )(x)
        x = keras.layers.MaxPool3D(_POOL, name=f"encoder_pool{k + 1}")(x)
    x = layers.TemporalDecoder(
        opts["decoder_filters"],
        opts["upsampling"],
        peepholes=opts["peepholes"],
        peephole_mode=opts["peephole_mode"],
        unit_forget_bias=opts["unit_forget_bias"],
        name="temporal_decoder",
    )(x)
    return layers.SpatialSoftmax(
        opts["use_previous_state"], scores=opts["attention_scores"],
        initial_temperature=opts["attention_temperature"],
        score_weights=opts["attention_weights"], score_gain=opts["attention_score_gain"],
        normalize_state=opts["attention_normalize_state"],
        location_bias=opts["attention_location_bias"],
        name="attention",
    )(x)


def build_model(
    variant: str, *, frames: int = 16, size: int = 96, num_targets: int = 1,
    **options: Any
) -> keras.Model:
    """Builds one of the paper's Table-1 networks (not compiled).

    Args:
        variant: one of `VARIANTS`.
        frames: clip length T (static: the ConvLSTM unrolls over it).
        size: height and width of the square face crops; divisible by 8 (and
            by 2**len(encoder_filters) for the STA variant).
        num_targets: K, values per frame: 1 (the paper's valence) gives the
            output layer "valence"; K > 1 (e.g. valence and arousal) gives
            one linear layer "targets" of K units, in the order of the
            targets the model is trained on.
        **options: overrides of `DEFAULT_OPTIONS` (`ModelOptions`' and
            `peepholes`, `augmentation`):
            fc_units: width of the first fully connected layer (128).
            dropout: dropout rate between the two FC layers (paper: 0.5).
            conv_filters: the four 3D convolutions (paper: 32, 64, 128, 256).
            encoder_filters: spatial encoder conv + pool stages (16, 32).
            decoder_filters: ConvLSTM channels of each decoder stage, one per
                encoder stage (16, 8).
            upsampling: x2 enlargement, "transposed" | "bilinear" | "nearest".
            peepholes, peephole_mode, unit_forget_bias: ConvLSTM settings;
                peephole_mode="none" or peepholes=False: no peepholes.
            attention_scale: "hw" (uniform attention = 1) | "none".
            use_previous_state: attention of frame t from H_{t-1} (eq. 2).
            attention_scores: "linear" (eq. 2) | "standardized" (per-frame
                standardised scores times a learned temperature).
            attention_temperature: initial temperature (standardized).
            attention_weights: "shared" (one 1x1 map) | "per_location" (one
                W_i per location, eq. 2 as printed) | "none" (an ablation:
                the learned location bias alone, one map for every frame).
            attention_score_gain: constant gain on the scores, an Adam
                learning-rate multiplier for their weights (1.0).
            attention_normalize_state: normalise the decoder state over its
                channels (per location) before eq. (2) (False).
            attention_location_bias: add a learned per-location prior score
                (not in eq. 2; needs attention_scores="linear") (False).
            readout: "flatten" (each frame's last map flattened into fc1) |
                "average" | "max" (pooled over space first).
            rnn_units: LSTM units of the CNN+RNN variants (100).
            augmentation: None, or `layers.ClipAugmentation`'s arguments:
                the per-clip training augmentation as the first layer
                ("augment"; identity at inference).

    Returns:
        A functional `keras.Model` named after the variant, input
        `(batch, frames, size, size, 3)`, output `(batch, frames, num_targets)`.

    Raises:
        ValueError: unknown variant or option, or a bad value (named).
    """
    opts = _options(variant, frames, size, options)
    if isinstance(num_targets, bool) or not isinstance(num_targets, int) or num_targets < 1:
        raise ValueError(f"`num_targets` must be a positive integer. Received: "
                         f"num_targets={num_targets!r}")
    per_frame = variant in PER_FRAME_VARIANTS
    kernel = (1, 3, 3) if per_frame else (3, 3, 3)
    inputs = keras.Input((frames, size, size, 3), name="clip")
    x = inputs
    if opts["augmentation"] is not None:
        x = layers.ClipAugmentation(**opts["augmentation"], name="augment")(x)
    x = layers.ClipStandardization(per_frame=per_frame, name="standardize")(x)
    features = keras.layers.Conv3D(
        opts["conv_filters"][0], kernel, padding="same", activation="relu", name="conv1"
    )(x)
    if variant == "3d_cnn_sta":
        attention = _attention(x, opts)
        features = layers.AttentionMultiply(opts["attention_scale"], name="attend")(
            [attention, features]
        )
    x = features
    for k, filters in enumerate(opts["conv_filters"][1:], start=2):
        x = keras.layers.MaxPool3D(_POOL, name=f"pool{k - 1}")(x)
        x = keras.layers.Conv3D(
            filters, kernel, padding="same", activation="relu", name=f"conv{k}"
        )(x)
    if opts["readout"] == "flatten":
        x = keras.layers.Reshape((frames, -1), name="flatten_frames")(x)
    else:
        # Pools over (H, W) of every frame: the time axis is folded into the
        # batch by TimeDistributed, so there is still one vector per frame.
        x = keras.layers.TimeDistributed(
            {"average": keras.layers.GlobalAveragePooling2D,
             "max": keras.layers.GlobalMaxPooling2D}[opts["readout"]](),
            name="pool_frames",
        )(x)
    x = keras.layers.Dense(opts["fc_units"], activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(opts["dropout"], name="dropout")(x)
    if variant in RNN_WINDOWS:
        x = layers.CausalWindowLSTM(opts["rnn_units"], RNN_WINDOWS[variant], name="rnn")(x)
    outputs = keras.layers.Dense(num_targets, name=output_layer_name(num_targets),
                                 dtype="float32")(x)
    return keras.Model(inputs, outputs, name=variant)


def output_layer_name(num_targets: int) -> str:
    """The output layer's name: "valence" for one target (as the paper's
    models, whatever the target), "targets" for several."""
    return "valence" if num_targets == 1 else "targets"


def attention_model(model: keras.Model) -> keras.Model:
    """Maps a STA model's input clips to its attention maps.

    Args:
        model: a `"3d_cnn_sta"` model from `build_model` (or loaded from a
            `.keras` file), sharing its weights with the returned model.

    Returns:
        A `keras.Model` from the same input to `(batch, frames, size, size)`
        maps, each frame summing to 1.

    Raises:
        ValueError: the model has no layer named "attention".
    """
    names = {layer.name for layer in model.layers}
    if "attention" not in names:
        raise ValueError(
            f"attention_model needs a '3d_cnn_sta' model; model {model.name!r} "
            "has no layer named 'attention'."
        )
    # float32 whatever the compute dtype (a mixed-precision model's maps are
    # bfloat16 or float16, too coarse to sum over a face region).
    attention = keras.ops.cast(model.get_layer("attention").output, "float32")
    return keras.Model(model.input, attention, name=f"{model.name}_attention")
