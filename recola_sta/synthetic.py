"""A RECOLA-layout synthetic corpus made by animating a real face photograph.

Nobody can ship RECOLA or SEWA, so every command of the project also runs on a
corpus generated here: scikit-image's `astronaut` photograph (512 x 512),
animated so that a known valence trace drives the mouth corners, surrounded by
nuisance the network has to see through. The whole pipeline, dlib included,
then runs for real on it.

What a frame shows (BUILD_NOTES.md, "Synthetic corpus", gives the reasons):

* **valence** moves the mouth corners (dlib landmarks 48 and 54) and the lip
  points beside them: up and outward for positive valence (smile), down and
  inward for negative (frown), `MOUTH_SHIFT_PX` = 16 px at |valence| = 1 at the
  photograph's scale, through a smooth displacement field confined to the
  lower face;
* **unrelated facial motion**: brows raised / lowered (driven half by the
  arousal trace, half by an independent trace) and blinks at random times;
* **head motion**: translation, in-plane rotation and scale drift;
* **lighting**: a global gain and a moving linear gradient;
* **subject differences** per recording: colour tint and gamma, focus blur,
  mirror image, background colour and texture, crop position and zoom.

Every trace is smooth and random, drawn from a generator seeded by
`(seed, partition, number)`, so a recording does not depend on how many others
are generated or in which order. Videos are 25 fps `mp4v` MPEG-4; labels are
RECOLA gold-standard ARFF files with a row every 40 ms from 0 to the duration.
As in RECOLA, the test partition gets videos but no label files.

The `recola_like` preset (`--preset=recola_like`) is harder and closer to
RECOLA's recordings: speech moves the jaw and lips all the time, valence shows
subtly (mouth corners, cheeks, eyelids) and slowly, every recording is another
identity, the head turns out of plane, hands pass over the mouth, and frames
go through lighting changes, sensor noise and JPEG compression (see
`RecolaLikeAnimator`, `_plan_recola_like` and docs/recola_like.md).

Usage::

    python -m recola_sta.synthetic --out data/synthetic
    python -m recola_sta.synthetic --out data/recola_like --preset=recola_like
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import math
import os
import pathlib
import shutil
import sys
import time
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np

from recola_sta import corpora, io_utils, pools

MARKER_NAME = "synthetic.json"
LABEL_PERIOD_S = 0.04  # RECOLA's gold standard: one row every 40 ms
MOUTH_SHIFT_PX = 16.0  # mouth-corner displacement at |valence| = 1, 512 px photo scale
BROW_SHIFT_PX = 7.0  # brow displacement at |brow| = 1
FACE_WIDTH_FRACTION = 0.36  # jaw width / min(width, 4/3 height) at zoom 1
_FORMAT_VERSION = 1
_PARTITION_INDEX = {"train": 0, "dev": 1, "test": 2}
# Levels at which the (non-linear) inverse displacement fields are tabulated;
# frames interpolate linearly between neighbouring levels.
_FIELD_LEVELS = 41
# Periods of the sinusoids that make up the valence and arousal traces.
_AFFECT_MIN_PERIOD_S = 4.0
_AFFECT_MAX_PERIOD_S = 30.0


# ---------------------------------------------------------------------------
# The face: the photograph, its landmarks and the expression fields


@functools.lru_cache(maxsize=1)
def astronaut_landmarks() -> np.ndarray:
    """The 68 dlib landmarks (x, y) of `skimage.data.astronaut()`, float64 (68, 2).

    Detected once per process with `dlib.get_frontal_face_detector()` and the
    68-point predictor of the `face-recognition-models` package.
    """
    import dlib
    import face_recognition_models
    import skimage.data

    image = skimage.data.astronaut()
    faces = dlib.get_frontal_face_detector()(image, 0)
    if not faces:
        raise RuntimeError("dlib found no face in skimage.data.astronaut().")
    face = max(faces, key=lambda r: r.area())
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    shape = predictor(image, face)
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclasses.dataclass(frozen=True)
class _Control:
    """A Gaussian bump of displacement: `unit` px per unit of the driving value."""

    center: tuple[float, float]
    unit: tuple[float, float]
    sigma: tuple[float, float]


def _inverse_field_table(
    rows: slice,
    cols: slice,
    controls: Sequence[_Control],
    keep: Callable[[np.ndarray, np.ndarray], np.ndarray],
    levels: np.ndarray,
    iterations: int = 40,
) -> np.ndarray:
    """Backward displacement B(p) of a forward field F, for each driving level.

    The forward field F(q) = a * keep(q) * sum_j unit_j * g_j(q) moves the
    content at q to q + F(q) (Gaussian bumps g_j around the landmarks). A
    remap needs the inverse: output pixel p samples the photo at p - B(p),
    with B(p) = F(p - B(p)), solved by fixed-point iteration (a contraction:
    the bumps are wide enough that |grad F| < 1, so the warp never folds).

    Returns:
        float32 (levels, h, w, 2) backward displacements over the ROI.
    """
    ys, xs = np.mgrid[rows, cols].astype(np.float64)

    def forward(qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fx = np.zeros_like(qx)
        fy = np.zeros_like(qy)
        for c in controls:
            g = np.exp(-0.5 * (((qx - c.center[0]) / c.sigma[0]) ** 2
                               + ((qy - c.center[1]) / c.sigma[1]) ** 2))
            fx += c.unit[0] * g
            fy += c.unit[1] * g
        k = keep(qx, qy)
        return fx * k, fy * k

    a = levels[:, None, None]
    bx = np.zeros((len(levels),) + xs.shape)
    by = np.zeros_like(bx)
    for _ in range(iterations):
        fx, fy = forward(xs - bx, ys - by)
        bx, by = a * fx, a * fy
    return np.stack([bx, by], axis=-1).astype(np.float32)


class FaceAnimator:
    """Renders the photograph with a given valence, brow position and blink.

    All work happens at the photograph's 512 x 512 scale and only inside two
    small regions (brows + eyes, mouth), which keeps a frame cheap; head pose
    and framing are applied afterwards by one affine warp of the whole image.

    Args:
        landmarks: (68, 2) landmarks of the photograph (`astronaut_landmarks()`).
    """

    # The default preset's mouth and brow tables; `RecolaLikeAnimator` makes its own.
    _default_tables = True

    def __init__(self, landmarks: np.ndarray):
        import skimage.data

        self.image = np.ascontiguousarray(skimage.data.astronaut()[..., :3])
        self.landmarks = np.asarray(landmarks, np.float64)
        lm = self.landmarks
        h, w = self.image.shape[:2]
        self.levels = np.linspace(-1.0, 1.0, _FIELD_LEVELS)

        eye_y = lm[36:48, 1].mean()
        nose_y = lm[30, 1]
        lip_bottom = lm[48:60, 1].max()
        # Brow ROI above `split`, mouth ROI below; the mouth field fades in
        # from `split` to the nose tip, slowly enough never to fold the image.
        split = int(round(eye_y + 0.25 * (nose_y - eye_y)))
        # Mouth: corners up/outward for +1, with the corners' lip neighbours
        # carried along by the Gaussian's width (sigma ~ a quarter mouth width).
        mouth_w = lm[54, 0] - lm[48, 0]
        sx, sy = 0.25 * mouth_w, 0.30 * mouth_w
        up, out = -0.92 * MOUTH_SHIFT_PX, 0.39 * MOUTH_SHIFT_PX
        mouth_controls = [
            _Control(tuple(lm[48]), (-out, up), (sx, sy)),
            _Control(tuple(lm[54]), (out, up), (sx, sy)),
        ]
        margin = int(3 * sy + MOUTH_SHIFT_PX)
        self.mouth_roi = (
            slice(split, min(h, int(lip_bottom) + margin)),
            slice(max(0, int(lm[48, 0]) - margin), min(w, int(lm[54, 0]) + margin)),
        )
        ramp_top, ramp_bottom = split, nose_y
        if self._default_tables:
            self.mouth_table = _inverse_field_table(
                *self.mouth_roi, mouth_controls,
                lambda qx, qy: _smoothstep((qy - ramp_top) / (ramp_bottom - ramp_top)),
                self.levels,
            )
        # Brows: raised for +1, lowered for -1; a vertical Gaussian narrow
        # enough to leave the eyes almost still.
        brow_w = lm[21, 0] - lm[17, 0]
        bsx, bsy = 0.45 * brow_w, 0.22 * brow_w
        brow_controls = [
            _Control(tuple(lm[17:22].mean(0)), (0.0, -BROW_SHIFT_PX), (bsx, bsy)),
            _Control(tuple(lm[22:27].mean(0)), (0.0, -BROW_SHIFT_PX), (bsx, bsy)),
        ]
        self.brow_controls = brow_controls
        bmargin = int(3 * bsx)
        self.brow_roi = (
            slice(max(0, int(lm[17:27, 1].min() - 4 * bsy - BROW_SHIFT_PX)), split),
            slice(max(0, int(lm[17, 0]) - bmargin), min(w, int(lm[26, 0]) + bmargin)),
        )
        if self._default_tables:
            self.brow_table = _inverse_field_table(
                *self.brow_roi, brow_controls, lambda qx, qy: np.ones_like(qx), self.levels
            )
        self._grids = {
            key: np.mgrid[roi].astype(np.float32)[::-1]  # (2, h, w): x grid, y grid
            for key, roi in (("mouth", self.mouth_roi), ("brow", self.brow_roi))
        }

        # Blinks: the eyes painted over with the surrounding skin.
        eye_mask = np.zeros((h, w), np.uint8)
        for idx in (slice(36, 42), slice(42, 48)):
            cv2.fillConvexPoly(eye_mask, np.round(lm[idx]).astype(np.int32), 255)
        eye_mask = cv2.dilate(eye_mask, np.ones((5, 5), np.uint8))
        self.closed_eyes = cv2.inpaint(self.image, eye_mask, 5, cv2.INPAINT_TELEA)
        soft = cv2.GaussianBlur(eye_mask.astype(np.float32) / 255.0, (0, 0), 1.5)
        ys, xs = np.nonzero(soft > 0.01)
        self.eye_roi = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        self.eye_alpha = soft[self.eye_roi][..., None]

        self.foreground = self._foreground_mask()

    def _foreground_mask(self) -> np.ndarray:
        """Soft mask (float32, [0, 1]) of head, hair, neck and suit; the rest is background."""
        lm = self.landmarks
        h, w = self.image.shape[:2]
        jaw_w = lm[16, 0] - lm[0, 0]
        face_h = lm[8, 1] - lm[17:27, 1].min()
        cx = lm[0:17, 0].mean()
        mask = np.zeros((h, w), np.float32)
        head_center = (cx, lm[17:27, 1].min() + 0.1 * face_h)
        cv2.ellipse(mask, (int(head_center[0]), int(head_center[1])),
                    (int(0.82 * jaw_w), int(0.95 * face_h)), 0, 0, 360, 1.0, -1)
        body_center = (cx, lm[8, 1] + 2.6 * face_h)
        cv2.ellipse(mask, (int(body_center[0]), int(body_center[1])),
                    (int(2.2 * jaw_w), int(2.6 * face_h)), 0, 0, 360, 1.0, -1)
        return cv2.GaussianBlur(mask, (0, 0), 4.0)

    def _field(self, table: np.ndarray, value: float) -> np.ndarray:
        pos = (np.clip(value, -1.0, 1.0) + 1.0) * 0.5 * (len(self.levels) - 1)
        i = min(int(pos), len(self.levels) - 2)
        f = np.float32(pos - i)
        return table[i] * (np.float32(1.0) - f) + table[i + 1] * f

    def render(
        self, source: np.ndarray, closed: np.ndarray, valence: float, brow: float, blink: float
    ) -> np.ndarray:
        """One expression frame at photo scale.

        Args:
            source: (512, 512, C) photo of this recording's subject (C = 3 or
                4; a 4th channel, the foreground alpha, is carried along).
            closed: the same photo with closed eyes.
            valence, brow: driving values in [-1, 1].
            blink: eye closure in [0, 1].

        Returns:
            A new (512, 512, C) uint8 image.
        """
        if blink > 0.01:
            base = source.copy()
            a = self.eye_alpha * blink
            base[self.eye_roi] = (source[self.eye_roi] * (1.0 - a)
                                  + closed[self.eye_roi] * a + 0.5).astype(np.uint8)
        else:
            base = source
        out = base.copy()
        for key, roi, table, value in (
            ("mouth", self.mouth_roi, self.mouth_table, valence),
            ("brow", self.brow_roi, self.brow_table, brow),
        ):
            field = self._field(table, value)
            grid = self._grids[key]
            out[roi] = cv2.remap(
                base, grid[0] - field[..., 0], grid[1] - field[..., 1],
                cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT,
            ).reshape(out[roi].shape)
        return out


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
    _check_preset(preset)
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

    # Subject (fixed for the recording).
    tint = rng.uniform(0.85, 1.15, 3)
    tint /= tint.mean()
    gamma = float(rng.uniform(0.8, 1.25))
    blur_sigma = float(rng.uniform(0.0, 1.0))
    mirror = bool(rng.random() < 0.5)
    zoom = float(rng.uniform(0.9, 1.2))
    offset = (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.05, 0.05)))
    background_color = rng.uniform(30, 225, 3)
    stripes = (float(rng.uniform(0, 25) if rng.random() < 0.5 else 0.0),
               float(rng.uniform(0, np.pi)), float(rng.uniform(12, 60)))
    noise_seed = int(rng.integers(2**31))

    # Affect traces.
    valence = SmoothTrace(rng, reference, _AFFECT_MIN_PERIOD_S, _AFFECT_MAX_PERIOD_S, span=True)
    arousal = SmoothTrace(rng, reference, _AFFECT_MIN_PERIOD_S, _AFFECT_MAX_PERIOD_S, span=True)
    brow_own = SmoothTrace(rng, frame_times, 1.5, 10.0)
    blink = _blink_trace(rng, frame_times)
    # Head and lighting nuisance.
    head_amp = rng.uniform(0.5, 1.0)
    tx = 0.06 * head_amp * SmoothTrace(rng, frame_times, 3.0, 20.0)(frame_times)
    ty = 0.05 * head_amp * SmoothTrace(rng, frame_times, 3.0, 20.0)(frame_times)
    angle = 7.0 * head_amp * SmoothTrace(rng, frame_times, 3.0, 20.0)(frame_times)
    scale = 1.0 + 0.07 * head_amp * SmoothTrace(rng, frame_times, 3.0, 20.0)(frame_times)
    base_gain = rng.uniform(0.85, 1.1)
    gain = base_gain * (1.0 + 0.15 * SmoothTrace(rng, frame_times, 5.0, 30.0)(frame_times))
    gradient_x = 0.3 * SmoothTrace(rng, frame_times, 5.0, 30.0)(frame_times)
    gradient_y = 0.2 * SmoothTrace(rng, frame_times, 5.0, 30.0)(frame_times)

    return RecordingPlan(
        name=name, partition=partition, frame_times=frame_times,
        valence=valence(frame_times),
        brow=np.clip(0.5 * arousal(frame_times) + 0.5 * brow_own(frame_times), -1.0, 1.0),
        blink=blink, tx=tx, ty=ty, angle_deg=angle, scale=scale,
        gain=gain, gradient_x=gradient_x, gradient_y=gradient_y,
        label_times=label_times,
        valence_labels=valence(label_times - annotation_delay_s),
        arousal_labels=arousal(label_times - annotation_delay_s),
        tint=tint, gamma=gamma, blur_sigma=blur_sigma, mirror=mirror, zoom=zoom,
        offset=offset, background_color=background_color, background_stripes=stripes,
        background_noise_seed=noise_seed,
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


def _recording_files(out_dir: pathlib.Path, name: str, partition: str) -> list[pathlib.Path]:
    files = [out_dir / "recordings_video" / f"{name}.mp4"]
    if partition != "test":
        files += [out_dir / "ratings_gold_standard" / target / f"{name}.arff"
                  for target in ("valence", "arousal")]
    return files


def write_recording(
    out_dir: pathlib.Path, animator: FaceAnimator, plan: RecordingPlan,
    width: int, height: int, fps: float,
) -> None:
    """Writes one recording's video and (train/dev only) its two ARFF files, atomically."""
    video, *labels = _recording_files(out_dir, plan.name, plan.partition)
    if isinstance(plan, RecolaLikePlan):
        if not isinstance(animator, RecolaLikeAnimator):
            raise TypeError("A recola_like plan needs a RecolaLikeAnimator.")
        frames = render_frames_recola_like(animator, plan, width, height)
    else:
        frames = render_frames(animator, plan, width, height)
    for path, values in zip(labels, (plan.valence_labels, plan.arousal_labels)):
        corpora.write_arff(path, plan.name, plan.label_times, values)
    with io_utils.atomic_path(video, suffix=".mp4") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write an mp4v video to {video}.")
        try:
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()


# ---------------------------------------------------------------------------
# The "recola_like" preset
#
# Closer to RECOLA's webcam recordings of people talking: the lower face moves
# all the time with speech, valence shows only subtly (mouth corners, cheeks,
# lower eyelids) and slowly, each recording is another identity, the head
# turns out of plane, a hand passes over the mouth now and then, and the
# pictures go through lighting changes, sensor noise and JPEG compression.
# BUILD_NOTES.md and docs/recola_like.md give the reasons and measurements.

PRESETS = ("default", "recola_like")
RECOLA_LIKE_MOUTH_SHIFT_PX = 6.0  # mouth corners at |valence| = 1 (default preset: 16)
RECOLA_LIKE_CHEEK_SHIFT_PX = 4.0  # cheek raise at valence = +1
RECOLA_LIKE_LID_SHIFT_PX = 2.5  # lower-eyelid raise (narrower eyes) at valence = +1
JAW_OPEN_PX = 10.0  # chin drop at jaw opening 1 (the inner lower lip moves ~0.7 of it)
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


def _inverse_field_table_groups(
    rows: slice,
    cols: slice,
    groups: Sequence[tuple[Sequence[_Control], np.ndarray]],
    iterations: int = 25,
) -> np.ndarray:
    """`_inverse_field_table` for a field made of groups of bumps, each group
    scaled by its own coefficient per level (e.g. the level itself, or only
    its positive part). Returns float32 (levels, h, w, 2)."""
    ys, xs = np.mgrid[rows, cols].astype(np.float64)
    units = []
    for controls, coef in groups:
        for c in controls:
            units.append((c, np.asarray(coef, np.float64)[:, None, None]))
    levels = len(groups[0][1])
    bx = np.zeros((levels,) + xs.shape)
    by = np.zeros_like(bx)
    for _ in range(iterations):
        qx, qy = xs - bx, ys - by
        fx = np.zeros_like(bx)
        fy = np.zeros_like(by)
        for c, coef in units:
            g = coef * np.exp(-0.5 * (((qx - c.center[0]) / c.sigma[0]) ** 2
                                      + ((qy - c.center[1]) / c.sigma[1]) ** 2))
            fx += c.unit[0] * g
            fy += c.unit[1] * g
        bx, by = fx, fy
    return np.stack([bx, by], axis=-1).astype(np.float32)


def _union(a: tuple[slice, slice], b: tuple[slice, slice]) -> tuple[slice, slice]:
    return (slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
            slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)))


def _relative(roi: tuple[slice, slice], outer: tuple[slice, slice]) -> tuple[slice, slice]:
    return (slice(roi[0].start - outer[0].start, roi[0].stop - outer[0].start),
            slice(roi[1].start - outer[1].start, roi[1].stop - outer[1].start))


def _clip_roi(rows: tuple[float, float], cols: tuple[float, float], h: int, w: int
              ) -> tuple[slice, slice]:
    return (slice(max(0, int(rows[0])), min(h, int(math.ceil(rows[1])))),
            slice(max(0, int(cols[0])), min(w, int(math.ceil(cols[1])))))


class RecolaLikeAnimator(FaceAnimator):
    """The `recola_like` preset's face: speech, subtle valence, identity masks.

    Valence (one table over levels -1..1): the mouth corners move
    `RECOLA_LIKE_MOUTH_SHIFT_PX` up/outward (down/inward for negative
    valence); for positive valence only, the cheeks rise by
    `RECOLA_LIKE_CHEEK_SHIFT_PX` and the lower eyelids by
    `RECOLA_LIKE_LID_SHIFT_PX` (narrower eyes), as in a Duchenne smile. The
    brows use the default preset's field. The jaw drop is a backward field
    defined directly (no inversion): zero from 3 px above the inner upper lip up, rising
    over 1.6 x `JAW_OPEN_PX` to a full drop of the lower lip and chin (so the
    stretch never folds), fading out below the chin; a dark mouth interior is
    painted into the opened gap. All fields act inside one region of the
    photo, summed, with one remap per frame.
    """

    _default_tables = False

    def __init__(self, landmarks: np.ndarray):
        super().__init__(landmarks)
        lm = self.landmarks
        h, w = self.image.shape[:2]
        jaw_w = lm[16, 0] - lm[0, 0]
        mouth_w = lm[54, 0] - lm[48, 0]
        eye_w = 0.5 * ((lm[39, 0] - lm[36, 0]) + (lm[45, 0] - lm[42, 0]))

        # Valence.
        # Taller than the default bumps (0.30), so both lips follow the corners
        # alike and a smile does not part them (the inner-lip gap stays put).
        sx, sy = 0.25 * mouth_w, 0.45 * mouth_w
        up, out = -0.92 * RECOLA_LIKE_MOUTH_SHIFT_PX, 0.39 * RECOLA_LIKE_MOUTH_SHIFT_PX
        corners = [_Control(tuple(lm[48]), (-out, up), (sx, sy)),
                   _Control(tuple(lm[54]), (out, up), (sx, sy))]
        # Cheek bumps high and outward enough not to push the upper lip (which
        # would part the lips with valence).
        cs = 0.13 * jaw_w
        cheek_centers = [(0.6 * lm[1, 0] + 0.4 * lm[31, 0], lm[29, 1] - 3.0),
                         (0.6 * lm[15, 0] + 0.4 * lm[35, 0], lm[29, 1] - 3.0)]
        cheeks = [_Control(c, (0.0, -RECOLA_LIKE_CHEEK_SHIFT_PX), (cs, cs)) for c in cheek_centers]
        lids = [_Control((lm[idx, 0].mean(), lm[idx, 1].mean() + 2.0),
                         (0.0, -RECOLA_LIKE_LID_SHIFT_PX), (0.5 * eye_w, 4.0))
                for idx in ([40, 41], [46, 47])]
        self.valence_roi = _clip_roi(
            (lm[36:48, 1].min() - 14, lm[48:60, 1].max() + 3 * sy + RECOLA_LIKE_MOUTH_SHIFT_PX),
            (min(lm[48, 0] - 3 * sx, cheek_centers[0][0] - 3 * cs),
             max(lm[54, 0] + 3 * sx, cheek_centers[1][0] + 3 * cs)), h, w)
        self.valence_table = _inverse_field_table_groups(
            *self.valence_roi,
            [(corners, self.levels), (cheeks + lids, np.maximum(self.levels, 0.0))])
        self.brow_table = _inverse_field_table(
            *self.brow_roi, self.brow_controls, lambda qx, qy: np.ones_like(qx), self.levels)

        # Jaw drop for opening 1 (a backward field; the remap samples p - B(p)).
        self.upper_inner_y = float(lm[61:64, 1].mean())
        self.lip_line_y = self.upper_inner_y - 3.0
        ramp = 1.6 * JAW_OPEN_PX
        chin_y = float(lm[8, 1])
        jaw_cx, jaw_sx = float(lm[[8, 51, 57], 0].mean()), 0.28 * jaw_w
        self.jaw_roi = _clip_roi((self.lip_line_y - 2, chin_y + 26),
                                 (jaw_cx - 3 * jaw_sx, jaw_cx + 3 * jaw_sx), h, w)
        ys, xs = np.mgrid[self.jaw_roi].astype(np.float64)
        drop = (JAW_OPEN_PX * _smoothstep((ys - self.lip_line_y) / ramp)
                * (1.0 - _smoothstep((ys - chin_y - 3.0) / 20.0))
                * np.exp(-0.5 * ((xs - jaw_cx) / jaw_sx) ** 2))
        self.jaw_field = np.stack([np.zeros_like(drop), drop], axis=-1).astype(np.float32)
        # The opened gap: from the inner upper lip to the moved inner lower lip.
        self.mouth_center_x = float(lm[60:68, 0].mean())
        self.inner_lower_y = float(lm[65:68, 1].mean())
        self.inner_mouth_half_w = 0.5 * float(lm[64, 0] - lm[60, 0])

        self.face_roi = _union(_union(self.valence_roi, self.brow_roi), self.jaw_roi)
        self._subs = {key: _relative(roi, self.face_roi) for key, roi in (
            ("valence", self.valence_roi), ("brow", self.brow_roi), ("jaw", self.jaw_roi))}
        self._face_grid = np.mgrid[self.face_roi].astype(np.float32)[::-1]
        jr = _relative(self.jaw_roi, self.face_roi)
        self._jaw_grid = self._face_grid[:, jr[0], jr[1]]

        # Skin (face and neck) and hair masks, for identity changes.
        self.face_height = float(lm[8, 1] - lm[17:27, 1].min())
        self.jaw_width = float(jaw_w)
        forehead = lm[26:16:-1].copy()
        forehead[:, 1] -= 0.2 * self.face_height
        face_poly = np.round(np.concatenate([lm[0:17], forehead])).astype(np.int32)
        skin = np.zeros((h, w), np.float32)
        cv2.fillPoly(skin, [face_poly], 1.0)
        cv2.ellipse(skin, (int(lm[8, 0]), int(chin_y + 4)), (int(0.38 * jaw_w), 12),
                    0, 0, 360, 1.0, -1)
        self.skin_mask = cv2.GaussianBlur(skin, (0, 0), 2.0)
        hsv = cv2.cvtColor(self.image, cv2.COLOR_RGB2HSV).astype(np.float32)
        hairy = ((hsv[..., 1] > 70) | (hsv[..., 2] < 150)).astype(np.float32)
        head = np.zeros((h, w), np.float32)
        head_center = (int(lm[0:17, 0].mean()), int(lm[17:27, 1].min() + 0.1 * self.face_height))
        cv2.ellipse(head, head_center,
                    (int(0.82 * jaw_w), int(0.95 * self.face_height)), 0, 0, 360, 1.0, -1)
        ys, _ = np.mgrid[0:h, 0:w]
        head[ys > lm[4, 1]] = 0.0
        hair = head * hairy * (1.0 - cv2.dilate(skin, np.ones((5, 5), np.uint8)))
        self.hair_mask = cv2.GaussianBlur(hair, (0, 0), 1.5)
        self.skin_color = (self.image.astype(np.float32) * skin[..., None]).sum((0, 1)) / skin.sum()

    def render_recola_like(self, source: np.ndarray, closed: np.ndarray, valence: float,
                           brow: float, blink: float, jaw: float) -> np.ndarray:
        """One frame at photo scale: `render` plus the jaw opening `jaw` in [0, 1]."""
        if blink > 0.01:
            base = source.copy()
            a = self.eye_alpha * blink
            base[self.eye_roi] = (source[self.eye_roi] * (1.0 - a)
                                  + closed[self.eye_roi] * a + 0.5).astype(np.uint8)
        else:
            base = source
        roi = self.face_roi
        field = np.zeros(self._face_grid.shape[1:] + (2,), np.float32)
        field[self._subs["valence"]] += self._field(self.valence_table, valence)
        field[self._subs["brow"]] += self._field(self.brow_table, brow)
        if jaw > 0.005:
            field[self._subs["jaw"]] += np.float32(jaw) * self.jaw_field
        out = base.copy()
        grid = self._face_grid
        out[roi] = cv2.remap(base, grid[0] - field[..., 0], grid[1] - field[..., 1],
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
                             ).reshape(out[roi].shape)
        if jaw > 0.05:
            # Dark mouth interior in the lower part of the opened gap.
            gap = JAW_OPEN_PX * jaw * 0.68
            cy = 0.5 * (self.upper_inner_y + self.inner_lower_y + gap)
            ay = 0.35 * gap + 0.5
            ax = self.inner_mouth_half_w * (0.55 + 0.3 * jaw)
            gx, gy = self._jaw_grid
            d = ((gx - self.mouth_center_x) / ax) ** 2 + ((gy - cy) / ay) ** 2
            a = (0.85 * min(1.0, jaw / 0.3)) * np.clip((1.0 - d) / 0.5, 0.0, 1.0)
            patch = out[self.jaw_roi]
            rgb = patch[..., :3].astype(np.float32)
            rgb += (np.array([48.0, 22.0, 26.0], np.float32) - rgb) * a[..., None]
            patch[..., :3] = (rgb + 0.5).astype(np.uint8)
        return out


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
    tint = rng.uniform(0.9, 1.1, 3)
    tint /= tint.mean()
    gamma = float(rng.uniform(0.8, 1.25))
    blur_sigma = float(rng.uniform(0.0, 1.2))
    mirror = bool(rng.random() < 0.5)
    zoom = float(rng.uniform(0.9, 1.2))
    offset = (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.05, 0.05)))
    background_color = rng.uniform(30, 225, 3)
    stripes = (float(rng.uniform(0, 25) if rng.random() < 0.3 else 0.0),
               float(rng.uniform(0, np.pi)), float(rng.uniform(12, 60)))
    noise_seed = int(rng.integers(2**31))
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
    head_amp = rng.uniform(0.5, 1.0)
    tx = 0.06 * head_amp * SmoothTrace(rng, frame_times, 3.0, 20.0)(frame_times)
    ty = 0.05 * head_amp * SmoothTrace(rng, frame_times, 3.0, 20.0)(frame_times)
    angle = 7.0 * head_amp * SmoothTrace(rng, frame_times, 3.0, 20.0)(frame_times)
    scale = 1.0 + 0.07 * head_amp * SmoothTrace(rng, frame_times, 3.0, 20.0)(frame_times)
    turn_amp = rng.uniform(0.5, 1.0)
    yaw = MAX_YAW_DEG * turn_amp * SmoothTrace(rng, frame_times, 2.0, 15.0)(frame_times)
    pitch = MAX_PITCH_DEG * turn_amp * SmoothTrace(rng, frame_times, 2.0, 15.0)(frame_times)

    # Lighting: slow drift, sudden changes (a lamp, the camera's exposure)
    # eased over 0.3-1 s, a moving gradient and a colour cast.
    base_gain = rng.uniform(0.7, 1.15)
    gain = base_gain * (1.0 + 0.2 * SmoothTrace(rng, frame_times, 3.0, 30.0)(frame_times))
    for start, length in _events(rng, frame_times[-1] if len(frame_times) else 0.0,
                                 1.0 / 25.0, 0.3, 1.0):
        gain *= 1.0 + (rng.uniform(0.7, 1.3) - 1.0) * _smoothstep((frame_times - start) / length)
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
        name=name, partition=partition, frame_times=frame_times,
        valence=valence(frame_times),
        brow=np.clip(0.5 * arousal_trace(frame_times) + 0.5 * brow_own(frame_times), -1.0, 1.0),
        blink=blink, tx=tx, ty=ty, angle_deg=angle, scale=scale,
        gain=gain, gradient_x=gradient_x, gradient_y=gradient_y,
        label_times=label_times,
        valence_labels=valence(label_times - annotation_delay_s),
        arousal_labels=arousal(label_times - annotation_delay_s),
        tint=tint, gamma=gamma, blur_sigma=blur_sigma, mirror=mirror, zoom=zoom,
        offset=offset, background_color=background_color, background_stripes=stripes,
        background_noise_seed=noise_seed,
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
    head = np.float32(1.0) - _smoothstep((uy - chin_y - 10.0) / 50.0)
    yaw = np.float32(math.radians(plan.yaw_deg[k])) * head
    x = _turn(ux, float(lm[27:31, 0].mean()), 0.75 * jw, yaw)
    y = _turn(uy, float(lm[29, 1]), 0.9 * fh, np.float32(math.radians(plan.pitch_deg[k])))
    # Identity: face and jaw width (about the face's vertical axis), length below the eyes.
    ident = plan.identity
    eye_y, nose_y = float(lm[36:48, 1].mean()), float(lm[30, 1])
    cx = float(lm[0:17, 0].mean())
    width_scale = ident.face_width * (1.0 + (ident.jaw_width - 1.0)
                                      * _smoothstep((y - nose_y) / (chin_y - nose_y)))
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


# ---------------------------------------------------------------------------
# The corpus


@functools.lru_cache(maxsize=2)
def _animator(landmarks_bytes: bytes, preset: str = "default") -> FaceAnimator:
    landmarks = np.frombuffer(landmarks_bytes, np.float64).reshape(68, 2)
    if preset == "recola_like":
        return RecolaLikeAnimator(landmarks)
    return FaceAnimator(landmarks)


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}.")


def _render_task(out_dir: str, name: str, partition: str, number: int,
                 params: dict, landmarks_bytes: bytes) -> str:
    """Worker entry point: plan and write one recording."""
    cv2.setNumThreads(1)
    preset = params["preset"]
    plan = plan_recording(
        name, partition, number, seed=params["seed"], duration_s=params["duration_s"],
        fps=params["fps"], annotation_delay_s=params["annotation_delay_s"], preset=preset,
    )
    write_recording(pathlib.Path(out_dir), _animator(landmarks_bytes, preset), plan,
                    params["width"], params["height"], params["fps"])
    return name


class CorpusSettingsError(ValueError):
    """A folder holds a synthetic corpus made with other settings or another preset.

    Attributes:
        folder: the corpus folder.
        differences: setting -> (value in the folder, value asked for), for
            each setting that differs.
    """

    def __init__(self, message: str, folder: pathlib.Path,
                 differences: dict[str, tuple[Any, Any]]):
        super().__init__(message)
        self.folder = folder
        self.differences = differences


def _check_params(num_train: int, num_dev: int, num_test: int, duration_s: float,
                  width: int, height: int, fps: float, annotation_delay_s: float,
                  workers: int, preset: str) -> None:
    _check_preset(preset)
    for flag, value in (("num_train", num_train), ("num_dev", num_dev), ("num_test", num_test)):
        if value < 0:
            raise ValueError(f"{flag} must be >= 0, got {value}.")
    if num_train + num_dev + num_test == 0:
        raise ValueError("num_train + num_dev + num_test must be positive.")
    if duration_s < 1.0:
        raise ValueError(f"duration_s must be at least 1 s, got {duration_s}.")
    if width < 64 or height < 64:
        raise ValueError(f"width and height must be at least 64 px, got {width}x{height}.")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    if annotation_delay_s < 0:
        raise ValueError(f"annotation_delay_s must be >= 0, got {annotation_delay_s}.")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")


def ensure_corpus(
    out_dir: str | os.PathLike,
    *,
    num_train: int = 20,
    num_dev: int = 5,
    num_test: int = 5,
    duration_s: float = 60.0,
    width: int = 320,
    height: int = 240,
    fps: float = 25.0,
    seed: int = 0,
    annotation_delay_s: float = 0.0,
    workers: int = 2,
    progress: bool = False,
    overwrite: bool = False,
    preset: str = "default",
) -> pathlib.Path:
    """Generates the recordings of a synthetic corpus that are not there yet.

    `out_dir/synthetic.json` records the settings; it says `"complete": true`
    once every recording is written. A re-run with the same settings returns
    at once if the corpus is complete, and otherwise writes only the missing
    recordings (each file is written atomically, so a file that exists is
    whole), completing a corpus whose generation was interrupted.

    Args:
        out_dir: corpus folder (RECOLA layout), created if needed.
        num_train, num_dev, num_test: recordings per partition.
        duration_s: length of each recording.
        width, height: video frame size in pixels.
        fps: video frame rate (labels are always every 40 ms).
        seed: random seed; the corpus is a deterministic function of it.
        annotation_delay_s: labels lag the face by this many seconds.
        workers: processes rendering recordings in parallel.
        progress: show a progress bar.
        overwrite: regenerate every recording, replacing an existing
            synthetic corpus (made with any settings) in `out_dir`.
        preset: `"default"` (the corpus described in the module docstring)
            or `"recola_like"` (speech, subtle and slow valence, identities,
            out-of-plane turns, occlusions, compression; see
            `RecolaLikeAnimator` and `_plan_recola_like`). Recorded in
            `synthetic.json`; a marker without it means `"default"`.

    Returns:
        `out_dir` as a path.

    Raises:
        ValueError: bad settings; `out_dir` holds a synthetic corpus made with
            other settings or another preset (and `overwrite` is False); or
            `out_dir` is a non-empty folder that is not a synthetic corpus.
    """
    _check_params(num_train, num_dev, num_test, duration_s, width, height, fps,
                  annotation_delay_s, workers, preset)
    out_dir = pathlib.Path(out_dir)
    params = {
        "format_version": _FORMAT_VERSION, "source": "skimage.data.astronaut",
        "num_train": num_train, "num_dev": num_dev, "num_test": num_test,
        "duration_s": float(duration_s), "width": int(width), "height": int(height),
        "fps": float(fps), "seed": int(seed), "annotation_delay_s": float(annotation_delay_s),
        "mouth_shift_px": MOUTH_SHIFT_PX if preset == "default" else RECOLA_LIKE_MOUTH_SHIFT_PX,
        "preset": preset,
    }
    marker = out_dir / MARKER_NAME
    if marker.is_file():
        old = json.loads(marker.read_text())
        old_params = dict(old.get("params") or {})
        old_params.setdefault("preset", "default")  # markers written before presets existed
        if old_params != params:
            if old_params["preset"] != preset and not overwrite:
                # The mouth shift follows from the preset; other settings may differ too.
                differences = {k: (old_params.get(k), v) for k, v in params.items()
                               if old_params.get(k) != v and k != "mouth_shift_px"}
                raise CorpusSettingsError(
                    f"{out_dir} holds a synthetic corpus of preset {old_params['preset']!r}, "
                    f"not {preset!r}; pass overwrite=True (--overwrite) or choose another folder.",
                    out_dir, differences,
                )
            if not overwrite:
                before = old.get("params") if isinstance(old.get("params"), dict) else {}
                differences = {k: (before.get(k), v) for k, v in params.items()
                               if before.get(k) != v}
                raise CorpusSettingsError(
                    f"{out_dir} holds a synthetic corpus made with other settings "
                    f"({old.get('params')}); pass overwrite=True (--overwrite) or choose "
                    "another folder.", out_dir, differences,
                )
        elif old.get("complete") and not overwrite:
            return out_dir
        if overwrite:
            for sub in ("recordings_video", "ratings_gold_standard"):
                shutil.rmtree(out_dir / sub, ignore_errors=True)
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(
            f"{out_dir} is not empty and has no {MARKER_NAME}: refusing to write a "
            "synthetic corpus into it."
        )

    plan = [(f"{p}_{i}", p, i) for p, n in (("train", num_train), ("dev", num_dev),
                                            ("test", num_test)) for i in range(1, n + 1)]
    io_utils.atomic_write_text(marker, json.dumps(
        {"params": params, "complete": False}, indent=2) + "\n")
    todo = [job for job in plan
            if not all(f.is_file() for f in _recording_files(out_dir, job[0], job[1]))]
    landmarks_bytes = astronaut_landmarks().astype(np.float64).tobytes()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc="synthetic recordings", unit="rec")
    if workers == 1 or len(todo) <= 1:
        for name, partition, number in todo:
            _render_task(str(out_dir), name, partition, number, params, landmarks_bytes)
            if bar is not None:
                bar.update()
    else:
        with pools.spawn_pool(min(workers, len(todo))) as pool:
            futures = [pool.submit(_render_task, str(out_dir), name, partition, number,
                                   params, landmarks_bytes) for name, partition, number in todo]
            for future in concurrent.futures.as_completed(futures):
                future.result()
                if bar is not None:
                    bar.update()
    if bar is not None:
        bar.close()
    io_utils.atomic_write_text(marker, json.dumps(
        {"params": params, "complete": True,
         "recordings": [name for name, _, _ in plan],
         "note": "Test recordings have no label files, as in RECOLA; their traces "
                 "follow from the seed (plan_recording)."}, indent=2) + "\n")
    return out_dir


def generate_corpus(
    out_dir: str | os.PathLike,
    *,
    num_train: int = 20,
    num_dev: int = 5,
    num_test: int = 5,
    duration_s: float = 60.0,
    width: int = 320,
    height: int = 240,
    fps: float = 25.0,
    seed: int = 0,
    annotation_delay_s: float = 0.0,
    workers: int = 2,
    progress: bool = False,
    preset: str = "default",
) -> pathlib.Path:
    """Generates a whole synthetic corpus, replacing one already in `out_dir`.

    Same arguments as `ensure_corpus` (which keeps what is already there).
    """
    return ensure_corpus(
        out_dir, num_train=num_train, num_dev=num_dev, num_test=num_test,
        duration_s=duration_s, width=width, height=height, fps=fps, seed=seed,
        annotation_delay_s=annotation_delay_s, workers=workers, progress=progress,
        overwrite=True, preset=preset,
    )


# ---------------------------------------------------------------------------
# CLI


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("out", None, "Folder of the corpus (RECOLA layout).", required=True)
    flags.DEFINE_integer("num_train", 20, "Training recordings.")
    flags.DEFINE_integer("num_dev", 5, "Development recordings.")
    flags.DEFINE_integer("num_test", 5, "Test recordings (videos only, as in RECOLA).")
    flags.DEFINE_float("duration_s", 60.0, "Length of each recording in seconds.")
    flags.DEFINE_integer("width", 320, "Frame width in pixels.")
    flags.DEFINE_integer("height", 240, "Frame height in pixels.")
    flags.DEFINE_float("fps", 25.0, "Video frame rate.")
    flags.DEFINE_integer("seed", 0, "Random seed; the corpus is a deterministic function of it.")
    flags.DEFINE_float("annotation_delay_s", 0.0, "Labels lag the face by this many seconds.")
    flags.DEFINE_integer("workers", 2, "Processes rendering recordings in parallel.")
    flags.DEFINE_enum("preset", "default", list(PRESETS),
                      "Corpus preset: 'default', or 'recola_like' (speech, subtle slow valence, "
                      "identities, head turns, occlusions, lighting and JPEG noise).")
    flags.DEFINE_bool("overwrite", False, "Regenerate everything, replacing an existing "
                      "synthetic corpus in --out.")


def main(argv: Sequence[str]) -> None:
    from absl import flags

    del argv
    f = flags.FLAGS
    start = time.perf_counter()
    out = ensure_corpus(
        f.out, num_train=f.num_train, num_dev=f.num_dev, num_test=f.num_test,
        duration_s=f.duration_s, width=f.width, height=f.height, fps=f.fps, seed=f.seed,
        annotation_delay_s=f.annotation_delay_s, workers=f.workers, progress=True,
        overwrite=f.overwrite, preset=f.preset,
    )
    recordings = corpora.load_corpus(out, "synthetic")
    print(f"Synthetic corpus ({f.preset}) in {out}: {len(recordings)} recordings "
          f"({f.num_train} train, {f.num_dev} dev, {f.num_test} test), "
          f"{time.perf_counter() - start:.1f} s.", file=sys.stderr)


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
