"""What a synthetic recording shows, drawn before any frame is rendered:
random traces and per-recording plans, for both presets.

`plan_recording` draws a recording's subject, traces (valence, arousal, brows,
blinks; for `recola_like` also speech, head turns, occlusions, lighting and
identity) and nuisance from `(seed, partition, number)`, so a recording does
not depend on how many others are generated or in which order. Rendering a
plan into frames is `synthetic_scenes`, which re-exports the names here that
callers use (`synthetic_scenes.plan_recording`, `LABEL_PERIOD_S`, ...).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from recola_sta.data.face_animation import smoothstep

PRESETS = ("default", "recola_like")
LABEL_PERIOD_S = 0.04  # RECOLA's gold standard: one row every 40 ms
_PARTITION_INDEX = {"train": 0, "dev": 1, "test": 2}
# Periods of the sinusoids that make up the valence and arousal traces.
_AFFECT_MIN_PERIOD_S = 4.0
_AFFECT_MAX_PERIOD_S = 30.0


# ---------------------------------------------------------------------------
# Random traces and per-recording plans


class SmoothTrace:
    """A smooth random signal: a sum of sinusoids with random slow frequencies.

    Normalised on `reference_times` either to span exactly [-1, 1]
    (`span=True`: min -> -1, max -> +1) or to a maximum magnitude of 1.

    Args:
        rng: random generator.
        reference_times: times (s) on which the normalisation is computed.
        min_period_s, max_period_s: range of the components' periods.
        components: number of sinusoids.
        span: min-max normalisation instead of max-magnitude.
    """

    def __init__(self, rng: np.random.Generator, reference_times: np.ndarray,
                 min_period_s: float, max_period_s: float, components: int = 6,
                 span: bool = False):
        self.freqs = rng.uniform(1.0 / max_period_s, 1.0 / min_period_s, components)
        # Slower components get more weight, as in natural affect traces.
        self.amps = rng.uniform(0.5, 1.0, components) / np.sqrt(self.freqs * max_period_s)
        self.phases = rng.uniform(0.0, 2.0 * np.pi, components)
        raw = self._raw(reference_times)
        if span:
            lo, hi = raw.min(), raw.max()
            self.offset, self.scale = 0.5 * (lo + hi), 0.5 * max(hi - lo, 1e-9)
        else:
            self.offset, self.scale = 0.0, max(float(np.abs(raw).max()), 1e-9)

    def _raw(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, np.float64)[..., None]
        return (self.amps * np.sin(2.0 * np.pi * self.freqs * t + self.phases)).sum(-1)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return np.clip((self._raw(t) - self.offset) / self.scale, -1.0, 1.0)


def _blink_trace(rng: np.random.Generator, times: np.ndarray, rate_hz: float = 0.3) -> np.ndarray:
    """Eye closure in [0, 1]: blinks of 0.2-0.4 s at Poisson times."""
    closure = np.zeros_like(times)
    duration = times[-1] if len(times) else 0.0
    t = rng.exponential(1.0 / rate_hz)
    while t < duration:
        length = rng.uniform(0.2, 0.4)
        phase = (times - t) / length
        inside = (phase > 0) & (phase < 1)
        closure[inside] = np.maximum(closure[inside], np.sin(np.pi * phase[inside]) ** 0.7)
        t += length + rng.exponential(1.0 / rate_hz)
    return closure


def check_preset(preset: str) -> None:
    """Refuses a preset name that is not one of `PRESETS`."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}.")


@dataclasses.dataclass
class RecordingPlan:
    """Everything random about one recording, drawn from its own seed.

    Frame-rate arrays have one value per video frame; `label_times` /
    `valence_labels` / `arousal_labels` are the 40 ms gold-standard grid.
    """

    name: str
    partition: str
    frame_times: np.ndarray
    valence: np.ndarray  # shown by the face, per frame
    brow: np.ndarray
    blink: np.ndarray
    tx: np.ndarray  # head translation, fraction of frame width / height
    ty: np.ndarray
    angle_deg: np.ndarray
    scale: np.ndarray
    gain: np.ndarray  # lighting
    gradient_x: np.ndarray
    gradient_y: np.ndarray
    label_times: np.ndarray
    valence_labels: np.ndarray
    arousal_labels: np.ndarray
    tint: np.ndarray  # per-channel gain (RGB)
    gamma: float
    blur_sigma: float
    mirror: bool
    zoom: float
    offset: tuple[float, float]  # face centre offset, fraction of frame size
    background_color: np.ndarray
    background_stripes: tuple[float, float, float]  # amplitude, angle, period (px)
    background_noise_seed: int


def _subject(rng: np.random.Generator, *, tint_spread: float, max_blur: float,
             stripes_probability: float) -> dict[str, Any]:
    """A recording's look, fixed for its duration (both presets; RecordingPlan fields)."""
    tint = rng.uniform(1.0 - tint_spread, 1.0 + tint_spread, 3)
    tint /= tint.mean()
    return dict(
        tint=tint,
        gamma=float(rng.uniform(0.8, 1.25)),
        blur_sigma=float(rng.uniform(0.0, max_blur)),
        mirror=bool(rng.random() < 0.5),
        zoom=float(rng.uniform(0.9, 1.2)),
        offset=(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.05, 0.05))),
        background_color=rng.uniform(30, 225, 3),
        background_stripes=(float(rng.uniform(0, 25) if rng.random() < stripes_probability
                                  else 0.0),
                            float(rng.uniform(0, np.pi)), float(rng.uniform(12, 60))),
        background_noise_seed=int(rng.integers(2**31)),
    )


def _head_motion(rng: np.random.Generator, frame_times: np.ndarray) -> dict[str, np.ndarray]:
    """Translation, in-plane rotation and scale drift per frame (both presets)."""
    head_amp = rng.uniform(0.5, 1.0)

    def drift(amplitude: float) -> np.ndarray:
        return amplitude * head_amp * SmoothTrace(rng, frame_times, 3.0, 20.0)(frame_times)

    return dict(tx=drift(0.06), ty=drift(0.05), angle_deg=drift(7.0), scale=1.0 + drift(0.07))


def _affect_fields(name: str, partition: str, frame_times: np.ndarray, label_times: np.ndarray,
                   annotation_delay_s: float, valence: Callable[[np.ndarray], np.ndarray],
                   arousal: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """The RecordingPlan fields both presets fill alike: the recording's
    name and times, the valence the face shows at each frame, and the gold
    standard, which reports the affect `annotation_delay_s` late."""
    return dict(
        name=name, partition=partition, frame_times=frame_times,
        valence=valence(frame_times), label_times=label_times,
        valence_labels=valence(label_times - annotation_delay_s),
        arousal_labels=arousal(label_times - annotation_delay_s),
    )


def plan_recording(
    name: str,
    partition: str,
    number: int,
    *,
    seed: int,
    duration_s: float,
    fps: float,
    annotation_delay_s: float,
    preset: str = "default",
) -> RecordingPlan:
    """Draws a recording's subject, traces and nuisance from `(seed, partition, number)`.

    `preset="recola_like"` returns a `RecolaLikePlan` (see `_plan_recola_like`).
    """
    check_preset(preset)
    if preset == "recola_like":
        return _plan_recola_like(name, partition, number, seed=seed, duration_s=duration_s,
                                 fps=fps, annotation_delay_s=annotation_delay_s)
    rng = np.random.default_rng([seed, _PARTITION_INDEX[partition], number])
    frame_times = np.arange(int(round(duration_s * fps))) / fps
    label_times = np.round(np.arange(int(round(duration_s / LABEL_PERIOD_S)) + 1) * LABEL_PERIOD_S, 6)
    # The face at time t shows valence V(t); the rater reports it
    # `annotation_delay_s` later, so the label at t is V(t - delay). The
    # traces are normalised over at least their longest period, so a short
    # recording is a window of a normal-speed trace, not a stretched one.
    reference = np.arange(-annotation_delay_s, max(duration_s, _AFFECT_MAX_PERIOD_S) + 1e-9,
                          LABEL_PERIOD_S)

    subject = _subject(rng, tint_spread=0.15, max_blur=1.0, stripes_probability=0.5)

    # Affect traces.
    valence = SmoothTrace(rng, reference, _AFFECT_MIN_PERIOD_S, _AFFECT_MAX_PERIOD_S, span=True)
    arousal = SmoothTrace(rng, reference, _AFFECT_MIN_PERIOD_S, _AFFECT_MAX_PERIOD_S, span=True)
    brow_own = SmoothTrace(rng, frame_times, 1.5, 10.0)
    blink = _blink_trace(rng, frame_times)
    # Head and lighting nuisance.
    head = _head_motion(rng, frame_times)
    base_gain = rng.uniform(0.85, 1.1)
    gain = base_gain * (1.0 + 0.15 * SmoothTrace(rng, frame_times, 5.0, 30.0)(frame_times))
    gradient_x = 0.3 * SmoothTrace(rng, frame_times, 5.0, 30.0)(frame_times)
    gradient_y = 0.2 * SmoothTrace(rng, frame_times, 5.0, 30.0)(frame_times)

    return RecordingPlan(
        **_affect_fields(name, partition, frame_times, label_times, annotation_delay_s,
                         valence, arousal),
        brow=np.clip(0.5 * arousal(frame_times) + 0.5 * brow_own(frame_times), -1.0, 1.0),
        blink=blink, **head, gain=gain, gradient_x=gradient_x, gradient_y=gradient_y,
        **subject,
    )


# ---------------------------------------------------------------------------
# The "recola_like" preset
#
# Closer to RECOLA's webcam recordings of people talking: the lower face moves
# all the time with speech, valence shows only subtly (mouth corners, cheeks,
# lower eyelids) and slowly, each recording is another identity, the head
# turns out of plane, a hand passes over the mouth now and then, and the
# pictures go through lighting changes, sensor noise and JPEG compression.
# docs/recola_like.md gives the reasons and measurements.

MAX_YAW_DEG = 20.0
MAX_PITCH_DEG = 20.0
# Time constant range of the two cascaded low-pass filters that make the
# recola_like affect traces (1/e autocorrelation time about 2.15 x this).
_RL_AFFECT_TAU_S = (5.0, 12.0)
RECOLA_LIKE_NOISE_BANK = 8  # sensor-noise frames drawn per recording, reused at random
_RECOLA_LIKE_STREAM = 1  # extra seed word: recola_like draws from its own streams
_HAIR_COLORS = np.array([
    [34, 27, 24], [70, 46, 30], [118, 82, 50], [196, 164, 108], [150, 72, 36], [150, 146, 142],
], np.float32)  # black, dark brown, brown, blonde, red, grey
_FRAME_COLORS = np.array([[20, 20, 20], [90, 60, 40], [150, 150, 160], [120, 30, 30]], np.float32)
_ACCESSORIES = ("none", "glasses", "cap")


class SlowTrace:
    """Smooth random affect: white noise through two cascaded first-order
    low-pass filters of time constant `tau_s` (autocorrelation
    (1 + lag / tau) exp(-lag / tau), which drops below 1/e at about
    2.15 tau), min-max normalised to [-1, 1] over [start_s, end_s].

    Sampled every `LABEL_PERIOD_S` from `start_s - 4 tau` (a warm-up that
    forgets the filters' zero start) and linearly interpolated between.

    Args:
        rng: random generator (its own; how much it draws depends on the span).
        start_s, end_s: the span the trace is normalised over.
        tau_s: filter time constant in seconds.
    """

    def __init__(self, rng: np.random.Generator, start_s: float, end_s: float, tau_s: float):
        from scipy import signal

        warm_up = 4.0 * tau_s
        self.times = start_s - warm_up + np.arange(
            int(math.ceil((end_s - start_s + warm_up) / LABEL_PERIOD_S)) + 2) * LABEL_PERIOD_S
        a = math.exp(-LABEL_PERIOD_S / tau_s)
        x = rng.standard_normal(len(self.times))
        for _ in range(2):
            x = signal.lfilter([1.0 - a], [1.0, -a], x)
        window = self.times >= start_s - LABEL_PERIOD_S
        lo, hi = x[window].min(), x[window].max()
        self.values = (x - 0.5 * (lo + hi)) / (0.5 * max(hi - lo, 1e-9))

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return np.clip(np.interp(t, self.times, self.values), -1.0, 1.0)


def _speech_trace(rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    """Jaw opening in [0, 1]: talk spurts of syllables at 2-6 Hz, and pauses.

    Spurts last 1-6 s, pauses 0.4-5 s; within a spurt each syllable opens
    the jaw once (a sin^2 pulse) to its own height in [0.3, 1], at the
    spurt's rate with a little jitter.
    """
    opening = np.zeros_like(times)
    duration = times[-1] if len(times) else 0.0
    t = float(rng.uniform(-2.0, 0.0))
    talking = bool(rng.random() < 0.5)
    while t < duration:
        if talking:
            length = float(rng.uniform(1.0, 6.0))
            rate = float(rng.uniform(2.0, 6.0))
            jitter_phase = float(rng.uniform(0.0, 2.0 * np.pi))
            heights = rng.uniform(0.3, 1.0, int(math.ceil(length * rate)) + 2)
            inside = (times >= t) & (times < t + length)
            tt = times[inside] - t
            phase = rate * tt + 0.15 * np.sin(2.0 * np.pi * 0.7 * tt + jitter_phase)
            phase = np.maximum(phase, 0.0)
            syllable = np.minimum(phase.astype(np.int64), len(heights) - 1)
            envelope = np.clip(np.minimum(tt, length - tt) / 0.1, 0.0, 1.0)
            opening[inside] = heights[syllable] * np.sin(np.pi * (phase % 1.0)) ** 2 * envelope
            t += length
        else:
            t += float(rng.uniform(0.4, 5.0))
        talking = not talking
    return opening


def _events(rng: np.random.Generator, duration_s: float, rate_hz: float,
            min_s: float, max_s: float) -> list[tuple[float, float]]:
    """(start, length) of events at Poisson times, lengths uniform in [min_s, max_s]."""
    events = []
    t = float(rng.exponential(1.0 / rate_hz))
    while t < duration_s:
        length = float(rng.uniform(min_s, max_s))
        events.append((t, length))
        t += length + float(rng.exponential(1.0 / rate_hz))
    return events


@dataclasses.dataclass
class Identity:
    """A `recola_like` subject made from the photograph.

    Attributes:
        face_width, jaw_width, face_length: shape warps (1 = the photo's):
            whole-face width, extra width of the lower face, and length from
            the eyes to the chin.
        skin: per-channel (RGB) factor on the skin of face and neck.
        hair_color: RGB of the hair (the photo's texture is kept).
        long_hair: hair drawn down both sides of the face to the jaw.
        accessory: one of "none", "glasses", "cap".
        accessory_color: RGB of the glasses frame or the cap.
    """

    face_width: float
    jaw_width: float
    face_length: float
    skin: np.ndarray
    hair_color: np.ndarray
    long_hair: bool
    accessory: str
    accessory_color: np.ndarray


@dataclasses.dataclass
class RecolaLikePlan(RecordingPlan):
    """A `RecordingPlan` with the `recola_like` preset's extra traces.

    Attributes:
        jaw: jaw opening per frame in [0, 1] (speech), independent of valence.
        yaw_deg, pitch_deg: out-of-plane head turns per frame.
        color_cast: (frames, 3) per-channel lighting factor.
        noise_sigma: sensor-noise standard deviation (grey levels).
        noise_index: which of the recording's noise frames each frame gets.
        jpeg_quality: JPEG quality each frame is re-encoded at.
        occlusions: (start s, length s, dx, dy, angle deg) of hands over the
            lower face; dx, dy in jaw widths from the mouth centre.
        identity: the subject.
        room: (x0, y0, x1, y1 fractions of the frame, r, g, b) rectangles
            drawn into the background (doors, shelves, windows).
    """

    jaw: np.ndarray
    yaw_deg: np.ndarray
    pitch_deg: np.ndarray
    color_cast: np.ndarray
    noise_sigma: float
    noise_index: np.ndarray
    jpeg_quality: np.ndarray
    occlusions: list[tuple[float, float, float, float, float]]
    identity: Identity
    room: list[tuple[float, ...]]


def _plan_recola_like(name: str, partition: str, number: int, *, seed: int, duration_s: float,
                      fps: float, annotation_delay_s: float) -> RecolaLikePlan:
    """Draws a `recola_like` recording from `(seed, partition, number, preset)`.

    The steps draw from one generator in a fixed order (identity, look,
    room, affect, face and head, lighting and camera, occlusions); a
    recording's plan depends on that order, so it must not change.
    """
    rng = np.random.default_rng([seed, _PARTITION_INDEX[partition], number, _RECOLA_LIKE_STREAM])
    frame_times = np.arange(int(round(duration_s * fps))) / fps
    label_times = np.round(np.arange(int(round(duration_s / LABEL_PERIOD_S)) + 1) * LABEL_PERIOD_S, 6)

    identity = _draw_identity(rng)
    subject = _subject(rng, tint_spread=0.1, max_blur=1.2, stripes_probability=0.3)
    room = _draw_room(rng)
    valence, arousal, arousal_trace = _recola_like_affect(rng, duration_s, annotation_delay_s)
    brow_own = SmoothTrace(rng, frame_times, 1.5, 10.0)
    blink = _blink_trace(rng, frame_times)
    jaw = _speech_trace(rng, frame_times)
    head = _head_motion(rng, frame_times)
    turn_amp = rng.uniform(0.5, 1.0)
    yaw = MAX_YAW_DEG * turn_amp * SmoothTrace(rng, frame_times, 2.0, 15.0)(frame_times)
    pitch = MAX_PITCH_DEG * turn_amp * SmoothTrace(rng, frame_times, 2.0, 15.0)(frame_times)
    camera = _recola_like_camera(rng, frame_times)
    occlusions = [(start, length, float(rng.uniform(-0.25, 0.25)), float(rng.uniform(0.0, 0.3)),
                   float(rng.uniform(-40.0, 40.0)))
                  for start, length in _events(rng, duration_s, 1.0 / 20.0, 0.5, 2.0)]

    return RecolaLikePlan(
        **_affect_fields(name, partition, frame_times, label_times, annotation_delay_s,
                         valence, arousal),
        brow=np.clip(0.5 * arousal_trace(frame_times) + 0.5 * brow_own(frame_times), -1.0, 1.0),
        blink=blink, **head, **camera, **subject,
        jaw=jaw, yaw_deg=yaw, pitch_deg=pitch, occlusions=occlusions,
        identity=identity, room=room,
    )


def _draw_identity(rng: np.random.Generator) -> Identity:
    """The subject made from the photograph: face shape, skin, hair, accessory."""
    return Identity(
        face_width=float(rng.uniform(0.9, 1.1)),
        jaw_width=float(rng.uniform(0.88, 1.12)),
        face_length=float(rng.uniform(0.92, 1.08)),
        skin=(float(rng.uniform(0.45, 1.1))
              * (1.0 + float(rng.uniform(-1.0, 1.0)) * np.array([0.08, 0.0, -0.1]))),
        hair_color=_HAIR_COLORS[int(rng.integers(len(_HAIR_COLORS)))].copy(),
        long_hair=bool(rng.random() < 0.4),
        accessory=_ACCESSORIES[int(rng.choice(3, p=[0.4, 0.4, 0.2]))],
        accessory_color=(_FRAME_COLORS[int(rng.integers(len(_FRAME_COLORS)))].copy()
                         if rng.random() < 0.7 else rng.uniform(20, 230, 3).astype(np.float32)),
    )


def _draw_room(rng: np.random.Generator) -> list[tuple[float, ...]]:
    """Up to four flat rectangles of the background (`RecolaLikePlan.room`)."""
    room = []
    for _ in range(int(rng.integers(0, 5))):
        (x0, x1), (y0, y1) = np.sort(rng.uniform(0, 1, 2)), np.sort(rng.uniform(0, 1, 2))
        room.append(tuple(float(v) for v in (x0, y0, x1, y1, *rng.uniform(20, 235, 3))))
    return room


def _recola_like_affect(rng: np.random.Generator, duration_s: float, annotation_delay_s: float
                        ) -> tuple[Callable[[np.ndarray], np.ndarray],
                                   Callable[[np.ndarray], np.ndarray], SlowTrace]:
    """(valence, arousal, the arousal trace before mean and range).

    Slow (changing over tens of seconds), each recording around its own mean
    with its own range, as annotated moods differ between subjects. The brows
    follow the raw arousal trace.
    """
    valence_trace = SlowTrace(np.random.default_rng(rng.integers(2**63)), -annotation_delay_s,
                              duration_s, float(rng.uniform(*_RL_AFFECT_TAU_S)))
    v_mean, v_amp = float(rng.uniform(-0.15, 0.35)), float(rng.uniform(0.3, 0.65))
    arousal_trace = SlowTrace(np.random.default_rng(rng.integers(2**63)), -annotation_delay_s,
                              duration_s, float(rng.uniform(*_RL_AFFECT_TAU_S)))
    a_mean, a_amp = float(rng.uniform(-0.2, 0.3)), float(rng.uniform(0.3, 0.65))

    def valence(t: np.ndarray) -> np.ndarray:
        return np.clip(v_mean + v_amp * valence_trace(t), -1.0, 1.0)

    def arousal(t: np.ndarray) -> np.ndarray:
        return np.clip(a_mean + a_amp * arousal_trace(t), -1.0, 1.0)

    return valence, arousal, arousal_trace


def _recola_like_camera(rng: np.random.Generator, frame_times: np.ndarray) -> dict[str, Any]:
    """Lighting and camera per frame (RecolaLikePlan fields): slow drift and
    sudden changes (a lamp, the camera's exposure) eased over 0.3-1 s, a
    moving gradient, a colour cast, sensor noise and JPEG quality."""
    base_gain = rng.uniform(0.7, 1.15)
    gain = base_gain * (1.0 + 0.2 * SmoothTrace(rng, frame_times, 3.0, 30.0)(frame_times))
    for start, length in _events(rng, frame_times[-1] if len(frame_times) else 0.0,
                                 1.0 / 25.0, 0.3, 1.0):
        gain *= 1.0 + (rng.uniform(0.7, 1.3) - 1.0) * smoothstep((frame_times - start) / length)
    gain = np.clip(gain, 0.45, 1.5)
    gradient_x = 0.5 * SmoothTrace(rng, frame_times, 5.0, 30.0)(frame_times)
    gradient_y = 0.3 * SmoothTrace(rng, frame_times, 5.0, 30.0)(frame_times)
    color_cast = np.stack([1.0 + 0.06 * SmoothTrace(rng, frame_times, 5.0, 40.0)(frame_times)
                           for _ in range(3)], axis=-1)
    noise_sigma = float(rng.uniform(1.0, 4.0))
    noise_index = rng.integers(0, RECOLA_LIKE_NOISE_BANK, len(frame_times))
    jpeg_base = rng.uniform(25.0, 85.0)
    jpeg_quality = np.clip(np.round(jpeg_base + 10.0 * SmoothTrace(rng, frame_times, 2.0, 20.0)(
        frame_times)), 10, 95).astype(np.int64)
    return dict(gain=gain, gradient_x=gradient_x, gradient_y=gradient_y, color_cast=color_cast,
                noise_sigma=noise_sigma, noise_index=noise_index, jpeg_quality=jpeg_quality)
