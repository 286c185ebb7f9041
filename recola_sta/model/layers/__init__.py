"""Custom Keras layers of the spatiotemporal attention (STA) network.

Lee, Kim, Kim and Sohn, "Spatiotemporal attention based deep neural networks
for emotion recognition", ICASSP 2018, sections 2.2-2.3:

- `ClipStandardization`: per-clip (or per-frame) zero mean, unit variance
  (the models' first layer, so exported models take plain [0, 1] RGB frames).
- `PeepholeConvLSTM2D`: the ConvLSTM of eq. (1), peephole terms included.
- `FrameUpsampling2D`: the x2 enlargement ("deconvolution") of one decoder
  stage, applied to every frame.
- `TemporalDecoder`: ConvLSTM stages, each followed by a x2 enlargement.
- `SpatialSoftmax`: eq. (2), one attention map per frame summing to 1.
- `AttentionMultiply`: eq. (3), X'' = A (.) X', rescaled (see the class).
- `CausalWindowLSTM`: the recurrent layer of the CNN+RNN rows (Khorrami et
  al.), an LSTM over the last W frames of every frame.
- `ClipAugmentation`: the training's per-clip flip and colour change, as the
  model's first layer (identity at inference).

One module per family: `standardization`, `convlstm`, `attention`,
`recurrent`, `augmentation` (also `apply_augmentation`, the augmentation
mapping the tf.data pipeline runs too); this package re-exports every
layer, constant and that function.

Every layer is made of `keras.ops` and Keras layers only, so it runs on the TensorFlow and JAX
backends, and is registered for `.keras` saving under the package name
"recola_sta". Sequences are channels-last, `(batch, time, height, width,
channels)`; time, height and width must be static (the ConvLSTM unrolls a
Python loop over time).
"""

from recola_sta.model.layers.attention import (
    ATTENTION_SCALES, ATTENTION_SCORES, ATTENTION_WEIGHTS, LEGACY_SCORE_WEIGHTS, AttentionMultiply,
    SpatialSoftmax,
)
from recola_sta.model.layers.augmentation import RGB_TO_YIQ, ClipAugmentation, apply_augmentation
from recola_sta.model.layers.convlstm import (
    LEGACY_UPSAMPLING, PEEPHOLE_MODES, UPSAMPLING_MODES, FrameUpsampling2D, PeepholeConvLSTM2D,
    TemporalDecoder,
)
from recola_sta.model.layers.recurrent import CausalWindowLSTM
from recola_sta.model.layers.standardization import ClipStandardization

# Every layer's refusal of a `.keras` archive saved by an earlier version: a
# loader that finds one in Keras' error (`run_state.load_model`) reports it in
# one line. A layer that adds a refusal adds it here.
ARCHIVE_REFUSALS = (LEGACY_UPSAMPLING, LEGACY_SCORE_WEIGHTS)

__all__ = [
    "ARCHIVE_REFUSALS", "ATTENTION_SCALES", "ATTENTION_SCORES", "ATTENTION_WEIGHTS", "LEGACY_SCORE_WEIGHTS",
    "LEGACY_UPSAMPLING",
    "PEEPHOLE_MODES", "RGB_TO_YIQ", "UPSAMPLING_MODES",
    "AttentionMultiply", "CausalWindowLSTM", "ClipAugmentation", "ClipStandardization",
    "FrameUpsampling2D", "PeepholeConvLSTM2D", "SpatialSoftmax", "TemporalDecoder",
    "apply_augmentation",
]
