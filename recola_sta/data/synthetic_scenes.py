"""What a synthetic recording looks like: a plan (`synthetic_plans`) rendered
into RGB frames.

`render_frames` / `render_frames_recola_like` turn a plan into frames with
the animators of `recola_sta.data.face_animation`; `recola_sta.data.synthetic`
writes them to disk as a RECOLA-layout corpus. The plans' public names
(`plan_recording`, `RecordingPlan`, `LABEL_PERIOD_S`, ...) are re-exported
here, so callers keep writing `synthetic_scenes.plan_recording`.
"""

from __future__ import annotations

import math
from typing import Iterator

import cv2
import numpy as np

from recola_sta.data.face_animation import FaceAnimator, RecolaLikeAnimator, smoothstep
from recola_sta.data.synthetic_plans import (
    LABEL_PERIOD_S, MAX_PITCH_DEG, MAX_YAW_DEG, PRESETS, RECOLA_LIKE_NOISE_BANK, Identity, RecolaLikePlan,
    RecordingPlan, SlowTrace, SmoothTrace, check_preset, plan_recording)

__all__ = ["FACE_WIDTH_FRACTION", "LABEL_PERIOD_S", "MAX_PITCH_DEG", "MAX_YAW_DEG", "PRESETS", "Identity",
           "RecolaLikePlan", "RecordingPlan", "SlowTrace", "SmoothTrace", "check_preset", "plan_recording",
           "render_frames", "render_frames_recola_like"]

FACE_WIDTH_FRACTION = 0.36  # jaw width / min(width, 4/3 height) at zoom 1


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
# The "recola_like" preset (see `synthetic_plans` for what it draws)


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
    noise = (noise_rng.standard_normal((RECOLA_LIKE_NOISE_BANK, height, width, 3), np.float32)
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
