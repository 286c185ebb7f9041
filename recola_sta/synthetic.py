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

Usage::

    python -m recola_sta.synthetic --out data/synthetic
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import math
import multiprocessing
import os
import pathlib
import shutil
import sys
import time
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np

from recola_sta import corpora, io_utils

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
        bmargin = int(3 * bsx)
        self.brow_roi = (
            slice(max(0, int(lm[17:27, 1].min() - 4 * bsy - BROW_SHIFT_PX)), split),
            slice(max(0, int(lm[17, 0]) - bmargin), min(w, int(lm[26, 0]) + bmargin)),
        )
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
) -> RecordingPlan:
    """Draws a recording's subject, traces and nuisance from `(seed, partition, number)`."""
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
    for path, values in zip(labels, (plan.valence_labels, plan.arousal_labels)):
        corpora.write_arff(path, plan.name, plan.label_times, values)
    with io_utils.atomic_path(video, suffix=".mp4") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write an mp4v video to {video}.")
        try:
            for frame in render_frames(animator, plan, width, height):
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()


# ---------------------------------------------------------------------------
# The corpus


@functools.lru_cache(maxsize=2)
def _animator(landmarks_bytes: bytes) -> FaceAnimator:
    return FaceAnimator(np.frombuffer(landmarks_bytes, np.float64).reshape(68, 2))


def _render_task(out_dir: str, name: str, partition: str, number: int,
                 params: dict, landmarks_bytes: bytes) -> str:
    """Worker entry point: plan and write one recording."""
    cv2.setNumThreads(1)
    plan = plan_recording(
        name, partition, number, seed=params["seed"], duration_s=params["duration_s"],
        fps=params["fps"], annotation_delay_s=params["annotation_delay_s"],
    )
    write_recording(pathlib.Path(out_dir), _animator(landmarks_bytes), plan,
                    params["width"], params["height"], params["fps"])
    return name


class CorpusSettingsError(ValueError):
    """A folder holds a synthetic corpus made with other settings.

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
                  workers: int) -> None:
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

    Returns:
        `out_dir` as a path.

    Raises:
        ValueError: bad settings; `out_dir` holds a synthetic corpus made with
            other settings (and `overwrite` is False); or `out_dir` is a
            non-empty folder that is not a synthetic corpus.
    """
    _check_params(num_train, num_dev, num_test, duration_s, width, height, fps,
                  annotation_delay_s, workers)
    out_dir = pathlib.Path(out_dir)
    params = {
        "format_version": _FORMAT_VERSION, "source": "skimage.data.astronaut",
        "num_train": num_train, "num_dev": num_dev, "num_test": num_test,
        "duration_s": float(duration_s), "width": int(width), "height": int(height),
        "fps": float(fps), "seed": int(seed), "annotation_delay_s": float(annotation_delay_s),
        "mouth_shift_px": MOUTH_SHIFT_PX,
    }
    marker = out_dir / MARKER_NAME
    if marker.is_file():
        old = json.loads(marker.read_text())
        if old.get("params") != params:
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
        # "spawn": a forked child of a process that already runs TensorFlow
        # threads can deadlock.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx) as pool:
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
) -> pathlib.Path:
    """Generates a whole synthetic corpus, replacing one already in `out_dir`.

    Same arguments as `ensure_corpus` (which keeps what is already there).
    """
    return ensure_corpus(
        out_dir, num_train=num_train, num_dev=num_dev, num_test=num_test,
        duration_s=duration_s, width=width, height=height, fps=fps, seed=seed,
        annotation_delay_s=annotation_delay_s, workers=workers, progress=progress,
        overwrite=True,
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
        overwrite=f.overwrite,
    )
    recordings = corpora.load_corpus(out, "synthetic")
    print(f"Synthetic corpus in {out}: {len(recordings)} recordings "
          f"({f.num_train} train, {f.num_dev} dev, {f.num_test} test), "
          f"{time.perf_counter() - start:.1f} s.", file=sys.stderr)


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
