"""What a synthetic recording shows: random traces, per-recording plans, frames.

`plan_recording` draws a recording's subject, traces (valence, arousal, brows,
blinks; for `recola_like` also speech, head turns, occlusions, lighting and
identity) and nuisance from `(seed, partition, number)`, so a recording does
not depend on how many others are generated or in which order.
`render_frames` / `render_frames_recola_like` turn a plan into RGB frames with
the animators of `recola_sta.face_animation`; `recola_sta.synthetic` writes
them to disk as a RECOLA-layout corpus.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from recola_sta.data.face_animation import FaceAnimator, RecolaLikeAnimator, smoothstep

PRESETS = ("default", "recola_like")
LABEL_PERIOD_S = 0.04  # RECOLA's gold standard: one row every 40 ms
FACE_WIDTH_FRACTION = 0.36  # jaw width / min(width, 4/3 height) at zoom 1
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
# Rendering a recording


def _subject_images(animator: FaceAnimator, plan: RecordingPlan) -> tuple[np.ndarray, np.ndarray]:
    """The photo (and its closed-eye twin) with this subject's tint, gamma and focus, as RGBA."""
    alpha = np.round(animator.foreground * 255.0).astype(np.uint8)[..., None]
    out = []
    for image in (animator.image, animator.closed_eyes):
        x = (image.astype(np.float32) / 255.0) ** plan.gamma * plan.tint.astype(np.float32)
        x = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if plan.blur_sigma > 0.3:
            x = cv2.GaussianBlur(x, (0, 0), plan.blur_sigma)
        out.append(np.ascontiguousarray(np.concatenate([x, alpha], axis=-1)))
    return out[0], out[1]


def _background(plan: RecordingPlan, width: int, height: int) -> np.ndarray:
    """This subject's static background: a colour, low-frequency texture, maybe stripes."""
    rng = np.random.default_rng(plan.background_noise_seed)
    small = rng.normal(0.0, 1.0, (max(2, height // 24), max(2, width // 24), 3)).astype(np.float32)
    texture = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    bg = plan.background_color.astype(np.float32) + 22.0 * texture
    amp, angle, period = plan.background_stripes
    if amp > 0:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = (xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period)
        bg += amp * np.sin(phase)[..., None]
    return np.clip(bg, 0, 255).astype(np.float32)


def _frame_affine(animator: FaceAnimator, plan: RecordingPlan, k: int,
                  width: int, height: int) -> np.ndarray:
    """2x3 map from photo coordinates to frame coordinates for frame k."""
    lm = animator.landmarks
    center_src = lm.mean(axis=0)
    jaw = lm[16, 0] - lm[0, 0]
    face_px = FACE_WIDTH_FRACTION * min(width, height * 4.0 / 3.0) * plan.zoom
    s = face_px / jaw * plan.scale[k]
    theta = math.radians(plan.angle_deg[k])
    rot = s * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    if plan.mirror:
        rot = rot @ np.diag([-1.0, 1.0])
    center_dst = np.array([
        width * (0.5 + plan.offset[0] + plan.tx[k]),
        height * (0.5 + plan.offset[1] + plan.ty[k]),
    ])
    return np.hstack([rot, (center_dst - rot @ center_src)[:, None]])


def render_frames(
    animator: FaceAnimator, plan: RecordingPlan, width: int, height: int
) -> Iterator[np.ndarray]:
    """Yields the recording's RGB uint8 frames (height, width, 3), in order."""
    source, closed = _subject_images(animator, plan)
    background = _background(plan, width, height)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs = xs / width - 0.5
    ys = ys / height - 0.5
    for k in range(len(plan.frame_times)):
        face = animator.render(source, closed, plan.valence[k], plan.brow[k], plan.blink[k])
        warped = cv2.warpAffine(
            face, _frame_affine(animator, plan, k, width, height), (width, height),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
        alpha = warped[..., 3:].astype(np.float32) * (1.0 / 255.0)
        frame = background + (warped[..., :3].astype(np.float32) - background) * alpha
        light = plan.gain[k] + plan.gradient_x[k] * xs + plan.gradient_y[k] * ys
        frame *= light[..., None]
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)



# ---------------------------------------------------------------------------
# The "recola_like" preset
#
# Closer to RECOLA's webcam recordings of people talking: the lower face moves
# all the time with speech, valence shows only subtly (mouth corners, cheeks,
# lower eyelids) and slowly, each recording is another identity, the head
# turns out of plane, a hand passes over the mouth now and then, and the
# pictures go through lighting changes, sensor noise and JPEG compression.
# BUILD_NOTES.md and docs/recola_like.md give the reasons and measurements.

MAX_YAW_DEG = 20.0
MAX_PITCH_DEG = 20.0
# Time constant range of the two cascaded low-pass filters that make the
# recola_like affect traces (1/e autocorrelation time about 2.15 x this).
_RL_AFFECT_TAU_S = (5.0, 12.0)
_RL_NOISE_BANK = 8  # sensor-noise frames drawn per recording, reused at random
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
    """Draws a `recola_like` recording from `(seed, partition, number, preset)`."""
    rng = np.random.default_rng([seed, _PARTITION_INDEX[partition], number, _RECOLA_LIKE_STREAM])
    frame_times = np.arange(int(round(duration_s * fps))) / fps
    label_times = np.round(np.arange(int(round(duration_s / LABEL_PERIOD_S)) + 1) * LABEL_PERIOD_S, 6)

    identity = Identity(
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
    subject = _subject(rng, tint_spread=0.1, max_blur=1.2, stripes_probability=0.3)
    room = []
    for _ in range(int(rng.integers(0, 5))):
        (x0, x1), (y0, y1) = np.sort(rng.uniform(0, 1, 2)), np.sort(rng.uniform(0, 1, 2))
        room.append(tuple(float(v) for v in (x0, y0, x1, y1, *rng.uniform(20, 235, 3))))

    # Valence and arousal: slow (changing over tens of seconds), each
    # recording around its own mean with its own range, as annotated moods
    # differ between subjects.
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

    brow_own = SmoothTrace(rng, frame_times, 1.5, 10.0)
    blink = _blink_trace(rng, frame_times)
    jaw = _speech_trace(rng, frame_times)
    head = _head_motion(rng, frame_times)
    turn_amp = rng.uniform(0.5, 1.0)
    yaw = MAX_YAW_DEG * turn_amp * SmoothTrace(rng, frame_times, 2.0, 15.0)(frame_times)
    pitch = MAX_PITCH_DEG * turn_amp * SmoothTrace(rng, frame_times, 2.0, 15.0)(frame_times)

    # Lighting: slow drift, sudden changes (a lamp, the camera's exposure)
    # eased over 0.3-1 s, a moving gradient and a colour cast.
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
    noise_index = rng.integers(0, _RL_NOISE_BANK, len(frame_times))
    jpeg_base = rng.uniform(25.0, 85.0)
    jpeg_quality = np.clip(np.round(jpeg_base + 10.0 * SmoothTrace(rng, frame_times, 2.0, 20.0)(
        frame_times)), 10, 95).astype(np.int64)
    occlusions = [(start, length, float(rng.uniform(-0.25, 0.25)), float(rng.uniform(0.0, 0.3)),
                   float(rng.uniform(-40.0, 40.0)))
                  for start, length in _events(rng, duration_s, 1.0 / 20.0, 0.5, 2.0)]

    return RecolaLikePlan(
        **_affect_fields(name, partition, frame_times, label_times, annotation_delay_s,
                         valence, arousal),
        brow=np.clip(0.5 * arousal_trace(frame_times) + 0.5 * brow_own(frame_times), -1.0, 1.0),
        blink=blink, **head, gain=gain, gradient_x=gradient_x, gradient_y=gradient_y,
        **subject,
        jaw=jaw, yaw_deg=yaw, pitch_deg=pitch, color_cast=color_cast, noise_sigma=noise_sigma,
        noise_index=noise_index, jpeg_quality=jpeg_quality, occlusions=occlusions,
        identity=identity, room=room,
    )


def _identity_images(animator: RecolaLikeAnimator, plan: RecolaLikePlan
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Photo and closed-eye twin of this subject (skin, hair, cap, tint, gamma, focus), RGBA."""
    ident = plan.identity
    lm = animator.landmarks
    alpha = animator.foreground.copy()
    hair_layer = np.zeros(alpha.shape, np.float32)
    if ident.long_hair:
        for side, x in ((-1, lm[0, 0]), (1, lm[16, 0])):
            cv2.ellipse(hair_layer, (int(x + side * 6), int(lm[4, 1])),
                        (int(0.16 * animator.jaw_width), int(0.5 * animator.face_height)),
                        0, 0, 360, 1.0, -1)
        hair_layer *= 1.0 - cv2.dilate(animator.skin_mask, np.ones((3, 3), np.uint8))
        hair_layer = cv2.GaussianBlur(hair_layer, (0, 0), 1.5)
    cap = np.zeros(alpha.shape, np.float32)
    if ident.accessory == "cap":
        cx = int(lm[0:17, 0].mean())
        base_y = int(lm[17:27, 1].min() - 0.22 * animator.face_height)
        dome = (int(0.8 * animator.jaw_width), int(0.75 * animator.face_height))
        cv2.ellipse(cap, (cx, base_y), dome, 0, 180, 360, 1.0, -1)
        cv2.ellipse(cap, (cx, base_y), (int(0.85 * animator.jaw_width), 6), 0, 0, 360, 1.0, -1)
        cap = cv2.GaussianBlur(cap, (0, 0), 1.0)
    alpha = np.maximum(alpha, np.maximum(hair_layer, cap))
    alpha8 = np.round(alpha * 255.0).astype(np.uint8)[..., None]
    texture_rng = np.random.default_rng(plan.background_noise_seed + 1)
    small = texture_rng.normal(0.0, 1.0, (64, 64)).astype(np.float32)
    texture = 1.0 + 0.12 * cv2.resize(small, alpha.shape[::-1], interpolation=cv2.INTER_CUBIC)
    out = []
    for image in (animator.image, animator.closed_eyes):
        x = image.astype(np.float32)
        x *= 1.0 + (ident.skin.astype(np.float32) - 1.0) * animator.skin_mask[..., None]
        luminance = x.mean(-1, keepdims=True) / max(1.0, float(
            (image.astype(np.float32).mean(-1) * animator.hair_mask).sum()
            / max(animator.hair_mask.sum(), 1.0)))
        hair = ident.hair_color * luminance
        x += (hair - x) * animator.hair_mask[..., None]
        x += (ident.hair_color * texture[..., None] - x) * hair_layer[..., None]
        x += (ident.accessory_color * (0.85 + 0.15 * texture[..., None]) - x) * cap[..., None]
        x = (np.clip(x, 0, 255) / 255.0) ** plan.gamma * plan.tint.astype(np.float32)
        x = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if plan.blur_sigma > 0.3:
            x = cv2.GaussianBlur(x, (0, 0), plan.blur_sigma)
        out.append(np.ascontiguousarray(np.concatenate([x, alpha8], axis=-1)))
    return out[0], out[1]


_Layer = tuple[tuple[slice, slice], np.ndarray, np.ndarray]  # ROI, RGB float32, alpha (h, w, 1)


def _sprite(rgb: np.ndarray, alpha: np.ndarray) -> _Layer:
    """Crops a full-size layer to its non-zero bounding box."""
    ys, xs = np.nonzero(alpha > 0.004)
    roi = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return roi, rgb[roi].astype(np.float32), alpha[roi][..., None].astype(np.float32)


def _glasses_layer(animator: RecolaLikeAnimator, color: np.ndarray) -> _Layer:
    """Glasses drawn over the eyes (photo scale): frame, faint lens tint, bridge, arms."""
    lm = animator.landmarks
    h, w = animator.image.shape[:2]
    alpha = np.zeros((h, w), np.float32)
    rgb = np.zeros((h, w, 3), np.float32)
    centers = [lm[36:42].mean(0), lm[42:48].mean(0)]
    eye_w = 0.5 * ((lm[39, 0] - lm[36, 0]) + (lm[45, 0] - lm[42, 0]))
    axes = (int(round(0.85 * eye_w)), int(round(0.6 * eye_w)))
    lens = np.zeros((h, w), np.float32)
    for c in centers:
        cv2.ellipse(lens, (int(c[0]), int(c[1] + 1)), axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        cv2.ellipse(alpha, (int(c[0]), int(c[1] + 1)), axes, 0, 0, 360, 1.0, 2, cv2.LINE_AA)
    cv2.line(alpha, (int(centers[0][0]) + axes[0], int(centers[0][1])),
             (int(centers[1][0]) - axes[0], int(centers[1][1])), 1.0, 2, cv2.LINE_AA)
    cv2.line(alpha, (int(centers[0][0]) - axes[0], int(centers[0][1])),
             (int(lm[0, 0]) + 1, int(lm[0, 1])), 1.0, 2, cv2.LINE_AA)
    cv2.line(alpha, (int(centers[1][0]) + axes[0], int(centers[1][1])),
             (int(lm[16, 0]) - 1, int(lm[16, 1])), 1.0, 2, cv2.LINE_AA)
    rgb[:] = color
    lens_tint = 0.12 * lens * (1.0 - alpha)
    rgb = rgb * alpha[..., None] + np.float32(235.0) * lens_tint[..., None]
    total = alpha + lens_tint
    rgb /= np.maximum(total, 1e-6)[..., None]
    return _sprite(rgb, total)


def _hand_layer(animator: RecolaLikeAnimator, plan: RecolaLikePlan, dx: float, dy: float,
                angle_deg: float) -> _Layer:
    """A hand-like blob (palm, four fingers, thumb) over the lower face, photo scale."""
    lm = animator.landmarks
    h, w = animator.image.shape[:2]
    size = int(1.1 * animator.jaw_width)
    canvas = np.zeros((2 * size, 2 * size), np.float32)
    s = size
    cv2.ellipse(canvas, (s, int(1.2 * s)), (int(0.3 * s), int(0.34 * s)), 0, 0, 360, 1.0, -1)
    for i, fx in enumerate(np.linspace(-0.24, 0.24, 4)):
        length = (0.24, 0.3, 0.28, 0.2)[i]
        cv2.ellipse(canvas, (int(s + fx * s), int((0.9 - length) * s)),
                    (int(0.075 * s), int(length * s)), fx * 20.0, 0, 360, 1.0, -1)
    cv2.ellipse(canvas, (int(1.33 * s), int(1.05 * s)), (int(0.07 * s), int(0.2 * s)),
                -35, 0, 360, 1.0, -1)
    shade = np.linspace(1.08, 0.85, 2 * size, dtype=np.float32)[:, None] * np.ones(
        (1, 2 * size), np.float32)
    center = np.array([lm[48:68, 0].mean() + dx * animator.jaw_width,
                       lm[48:68, 1].mean() + dy * animator.jaw_width])
    # The canvas point (s, 0.8 s), between palm and fingers, lands on `center`.
    m = cv2.getRotationMatrix2D((float(s), 0.8 * s), angle_deg, 1.0)
    m[:, 2] += center - np.array([s, 0.8 * s])
    alpha = cv2.warpAffine(canvas, m, (w, h), flags=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.0)
    shading = cv2.warpAffine(shade, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=1.0)
    skin = animator.skin_color * plan.identity.skin.astype(np.float32)
    rgb = skin[None, None, :] * shading[..., None]
    rgb = np.clip((rgb / 255.0) ** plan.gamma * plan.tint.astype(np.float32) * 255.0, 0, 255)
    return _sprite(rgb, alpha)


def _blend(image: np.ndarray, layer: _Layer, opacity: float) -> None:
    """Alpha-blends a layer onto an RGBA uint8 image in place (the alpha channel too)."""
    roi, rgb, alpha = layer
    a = alpha * np.float32(opacity)
    patch = image[roi]
    patch[..., :3] = (patch[..., :3] + (rgb - patch[..., :3]) * a + 0.5).astype(np.uint8)
    patch[..., 3] = np.maximum(patch[..., 3], (a[..., 0] * 255.0 + 0.5).astype(np.uint8))


def _room_background(plan: RecolaLikePlan, width: int, height: int) -> np.ndarray:
    """The default background with some flat rectangles (furniture, doors), softened."""
    bg = _background(plan, width, height)
    if plan.room:
        for x0, y0, x1, y1, r, g, b in plan.room:
            cv2.rectangle(bg, (int(x0 * width), int(y0 * height)),
                          (int(x1 * width), int(y1 * height)), (r, g, b), -1)
        bg = cv2.GaussianBlur(bg, (0, 0), 1.5)
    return bg


def _turn(u: np.ndarray, center: float, radius: float, angle: np.ndarray) -> np.ndarray:
    """Backward map of a rotation about a cylinder's axis, orthographic view.

    A point at angle phi on the cylinder (u = c + R sin phi) is seen at
    phi + angle after the turn; the output coordinate u therefore samples the
    photo at c + R sin(asin((u - c) / R) - angle), the hidden side clamped
    to the silhouette. Outside the cylinder the picture is shifted to stay
    continuous.
    """
    x = (u - center) / radius
    xc = np.clip(x, -1.0, 1.0)
    phi = np.clip(np.arcsin(xc) - angle, -0.5 * np.pi, 0.5 * np.pi)
    return center + radius * (np.sin(phi) + (x - xc))


def _pose_identity_map(animator: RecolaLikeAnimator, plan: RecolaLikePlan, k: int,
                       grid_x: np.ndarray, grid_y: np.ndarray, width: int, height: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Frame pixel -> photo coordinates for frame k: in-plane pose, out-of-plane
    turn (a cylinder for yaw, another for pitch), then the identity's face shape.

    Evaluated at the frame coordinates `grid_x`, `grid_y` (any shape; the
    caller uses a coarse grid and interpolates, the map being smooth).
    """
    inv = cv2.invertAffineTransform(_frame_affine(animator, plan, k, width, height))
    inv = inv.astype(np.float32)
    ux = inv[0, 0] * grid_x + inv[0, 1] * grid_y + inv[0, 2]
    uy = inv[1, 0] * grid_x + inv[1, 1] * grid_y + inv[1, 2]
    lm = animator.landmarks
    fh, jw = animator.face_height, animator.jaw_width
    chin_y = float(lm[8, 1])
    # Yaw turns the head only (fading out below the chin), pitch everything.
    head = np.float32(1.0) - smoothstep((uy - chin_y - 10.0) / 50.0)
    yaw = np.float32(math.radians(plan.yaw_deg[k])) * head
    x = _turn(ux, float(lm[27:31, 0].mean()), 0.75 * jw, yaw)
    y = _turn(uy, float(lm[29, 1]), 0.9 * fh, np.float32(math.radians(plan.pitch_deg[k])))
    # Identity: face and jaw width (about the face's vertical axis), length below the eyes.
    ident = plan.identity
    eye_y, nose_y = float(lm[36:48, 1].mean()), float(lm[30, 1])
    cx = float(lm[0:17, 0].mean())
    width_scale = ident.face_width * (1.0 + (ident.jaw_width - 1.0)
                                      * smoothstep((y - nose_y) / (chin_y - nose_y)))
    envelope = np.exp(-0.5 * ((y - eye_y) / (1.3 * fh)) ** 2)
    x = cx + (x - cx) / (1.0 + (width_scale - 1.0) * envelope)
    stretched_end = eye_y + ident.face_length * (chin_y + 10.0 - eye_y)
    y = np.where(y < eye_y, y,
                 np.where(y < stretched_end, eye_y + (y - eye_y) / ident.face_length,
                          y - (stretched_end - chin_y - 10.0)))
    return x.astype(np.float32), y.astype(np.float32)


def render_frames_recola_like(
    animator: RecolaLikeAnimator, plan: RecolaLikePlan, width: int, height: int
) -> Iterator[np.ndarray]:
    """Yields a `recola_like` recording's RGB uint8 frames (height, width, 3), in order."""
    source, closed = _identity_images(animator, plan)
    glasses = (_glasses_layer(animator, plan.identity.accessory_color)
               if plan.identity.accessory == "glasses" else None)
    hands = [(start, length, _hand_layer(animator, plan, dx, dy, angle))
             for start, length, dx, dy, angle in plan.occlusions]
    background = _room_background(plan, width, height)
    noise_rng = np.random.default_rng(plan.background_noise_seed + 2)
    noise = (noise_rng.standard_normal((_RL_NOISE_BANK, height, width, 3), np.float32)
             * np.float32(plan.noise_sigma))
    # The pose map is computed every `step` pixels and interpolated.
    # `cv2.resize` by a factor `step` reads coarse point u at pixel
    # (u + 0.5) step - 0.5, so the coarse points are placed there.
    step = 4
    coarse_h, coarse_w = -(-height // step) + 1, -(-width // step) + 1
    grid_y, grid_x = (np.mgrid[0:coarse_h, 0:coarse_w].astype(np.float32) + 0.5) * step - 0.5
    full_size = (coarse_w * step, coarse_h * step)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs = xs / width - 0.5
    ys = ys / height - 0.5
    background = np.clip(background + 0.5, 0, 255).astype(np.uint8)
    for k, t in enumerate(plan.frame_times):
        face = animator.render_recola_like(source, closed, plan.valence[k], plan.brow[k],
                                           plan.blink[k], plan.jaw[k])
        if glasses is not None:
            _blend(face, glasses, 1.0)
        for start, length, hand in hands:
            if start <= t < start + length:
                _blend(face, hand, float(np.clip(min(t - start, start + length - t) / 0.15, 0, 1)))
        maps = [cv2.resize(m, full_size, interpolation=cv2.INTER_LINEAR)[:height, :width]
                for m in _pose_identity_map(animator, plan, k, grid_x, grid_y, width, height)]
        warped = cv2.remap(face, maps[0], maps[1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha = warped[..., 3].astype(np.float32) * np.float32(1.0 / 255.0)
        frame = cv2.blendLinear(np.ascontiguousarray(warped[..., :3]), background,
                                alpha, np.float32(1.0) - alpha)
        light = (np.float32(plan.gain[k]) + np.float32(plan.gradient_x[k]) * xs
                 + np.float32(plan.gradient_y[k]) * ys)
        frame = cv2.multiply(frame, tuple(float(c) for c in plan.color_cast[k]) + (0.0,))
        frame = cv2.multiply(frame, cv2.cvtColor(light, cv2.COLOR_GRAY2RGB), dtype=cv2.CV_32F)
        frame = cv2.add(frame, noise[plan.noise_index[k]], dtype=cv2.CV_8U)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, int(plan.jpeg_quality[k])])
        if not ok:
            raise RuntimeError("OpenCV cannot encode a JPEG frame.")
        yield cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


