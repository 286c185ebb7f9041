"""The synthetic corpus' faces: a real photograph animated by displacement fields.

`FaceAnimator` moves scikit-image's `astronaut` photograph (512 x 512, whose
68 dlib landmarks `astronaut_landmarks` finds once) with smooth displacement
fields: the mouth corners with valence, the brows, and the eyelids for blinks.
`RecolaLikeAnimator` adds the `recola_like` preset's speech-driven jaw and
lips, cheek raise and lower-eyelid narrowing, and the masks that give each
recording another identity. The inverse fields are tabulated at
`_FIELD_LEVELS` levels and interpolated, so a frame costs a few remaps.

Who moves the face when (the traces) is `recola_sta.data.synthetic_plans`,
the frames `recola_sta.data.synthetic_scenes`; the corpus on disk is
`recola_sta.data.synthetic`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Sequence

import cv2
import numpy as np

MOUTH_SHIFT_PX = 16.0  # mouth-corner displacement at |valence| = 1, 512 px photo scale
BROW_SHIFT_PX = 7.0  # brow displacement at |brow| = 1
# Levels at which the (non-linear) inverse displacement fields are tabulated;
# frames interpolate linearly between neighbouring levels.
_FIELD_LEVELS = 41
RECOLA_LIKE_MOUTH_SHIFT_PX = 6.0  # mouth corners at |valence| = 1 (default preset: 16)
RECOLA_LIKE_CHEEK_SHIFT_PX = 4.0  # cheek raise at valence = +1
RECOLA_LIKE_LID_SHIFT_PX = 2.5  # lower-eyelid raise (narrower eyes) at valence = +1
JAW_OPEN_PX = 10.0  # chin drop at jaw opening 1 (the inner lower lip moves ~0.7 of it)


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


def smoothstep(x: np.ndarray) -> np.ndarray:
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
                lambda qx, qy: smoothstep((qy - ramp_top) / (ramp_bottom - ramp_top)),
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

    def _blinked(self, source: np.ndarray, closed: np.ndarray, blink: float) -> np.ndarray:
        """`source` with its eyes blended towards `closed` by `blink` in [0, 1]
        (`source` itself, not a copy, when the eyes are open)."""
        if blink <= 0.01:
            return source
        base = source.copy()
        a = self.eye_alpha * blink
        base[self.eye_roi] = (source[self.eye_roi] * (1.0 - a)
                              + closed[self.eye_roi] * a + 0.5).astype(np.uint8)
        return base

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
        base = self._blinked(source, closed, blink)
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
# The recola_like preset's face: speech, cheeks, eyelids and identity masks


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
        self._set_up_valence()
        self._set_up_jaw()
        # One region of the photo holding the three fields, one remap per frame.
        self.face_roi = _union(_union(self.valence_roi, self.brow_roi), self.jaw_roi)
        self._subs = {key: _relative(roi, self.face_roi) for key, roi in (
            ("valence", self.valence_roi), ("brow", self.brow_roi), ("jaw", self.jaw_roi))}
        self._face_grid = np.mgrid[self.face_roi].astype(np.float32)[::-1]
        jr = _relative(self.jaw_roi, self.face_roi)
        self._jaw_grid = self._face_grid[:, jr[0], jr[1]]
        self._set_up_identity_masks()

    def _set_up_valence(self) -> None:
        """The valence region and table (mouth corners, and for positive
        valence cheeks and lower eyelids), and the brows' table."""
        lm = self.landmarks
        h, w = self.image.shape[:2]
        jaw_w = lm[16, 0] - lm[0, 0]
        mouth_w = lm[54, 0] - lm[48, 0]
        eye_w = 0.5 * ((lm[39, 0] - lm[36, 0]) + (lm[45, 0] - lm[42, 0]))
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

    def _set_up_jaw(self) -> None:
        """The jaw drop for opening 1 (a backward field; the remap samples
        p - B(p)) and the geometry of the opened gap, from the inner upper lip
        to the moved inner lower lip."""
        lm = self.landmarks
        h, w = self.image.shape[:2]
        jaw_w = lm[16, 0] - lm[0, 0]
        self.upper_inner_y = float(lm[61:64, 1].mean())
        self.lip_line_y = self.upper_inner_y - 3.0
        ramp = 1.6 * JAW_OPEN_PX
        chin_y = float(lm[8, 1])
        jaw_cx, jaw_sx = float(lm[[8, 51, 57], 0].mean()), 0.28 * jaw_w
        self.jaw_roi = _clip_roi((self.lip_line_y - 2, chin_y + 26),
                                 (jaw_cx - 3 * jaw_sx, jaw_cx + 3 * jaw_sx), h, w)
        ys, xs = np.mgrid[self.jaw_roi].astype(np.float64)
        drop = (JAW_OPEN_PX * smoothstep((ys - self.lip_line_y) / ramp)
                * (1.0 - smoothstep((ys - chin_y - 3.0) / 20.0))
                * np.exp(-0.5 * ((xs - jaw_cx) / jaw_sx) ** 2))
        self.jaw_field = np.stack([np.zeros_like(drop), drop], axis=-1).astype(np.float32)
        self.mouth_center_x = float(lm[60:68, 0].mean())
        self.inner_lower_y = float(lm[65:68, 1].mean())
        self.inner_mouth_half_w = 0.5 * float(lm[64, 0] - lm[60, 0])

    def _set_up_identity_masks(self) -> None:
        """Skin (face and neck) and hair masks, and the skin colour, for
        identity changes."""
        lm = self.landmarks
        h, w = self.image.shape[:2]
        jaw_w = lm[16, 0] - lm[0, 0]
        chin_y = float(lm[8, 1])
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
        base = self._blinked(source, closed, blink)
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


