"""Face alignment (paper section 3.1).

The paper detects the face in each frame with dlib, finds the landmarks, and
"mapped the detected landmark points to pre-defined pixel locations in order to
normalize the eye and nose coordinates between adjacent frames". Here
`FaceAligner` runs dlib's HOG frontal face detector on a copy of the frame
rescaled so that a face a third of the frame height is at least 80 px (large
frames are reduced for speed, small ones enlarged), retries once at twice
that scale where it finds nothing, keeps one face per video (chosen by a
rule, `face=`, then followed from frame to frame), fits dlib's 68-point shape
predictor at full resolution, and warps the frame with the least-squares
similarity transform that maps the two eye centres and the nose tip onto a
fixed template in a `size x size` crop. Between full detections (every
`redetect_every`-th sample), the face is tracked: the landmarks are fitted in
a box derived from the previous sample's landmarks, and the detector runs
again early where that fit drifts or the box leaves the frame.

Videos (`video`), live sources (`live`) and the alignment of whole videos
(`tracking`) are modules of their own; dlib's models and the point and box
geometry are in `detection`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import cv2
import dlib
import numpy as np

from recola_sta.faces.settings import DEFAULT_REDETECT_EVERY, DEFAULT_TEMPLATE, FaceSettings
from recola_sta.faces.detection import (
    _area, _centre, _inside_share, _iou, _jump, _load_detector, _load_predictor, _side,
    default_predictor_path, key_points, similarity_transform)



# Detection scale. dlib's HOG detector scans an 80 px window: on the
# astronaut photo the smallest box it reports is 73 px and faces whose box
# would be under ~60 px are missed. The scale is chosen so that a face of
# typical size, 1 / TYPICAL_FACE_SHARE of the frame height, is at least
# MIN_DETECT_FACE_PX at the scale the detector sees (FaceAligner.detection_scale).
MIN_DETECT_FACE_PX = 80
TYPICAL_FACE_SHARE = 3
_CV2_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
               270: cv2.ROTATE_90_COUNTERCLOCKWISE}

# Detection boxes overlapping the tracked face by at least this IoU are taken
# as the same face; otherwise the nearest box centre wins.
_MIN_TRACK_IOU = 1e-6
# A box continues a tracked face (the subject or a bystander) only if its
# centre lies within this many box sides of that face's last box; beyond, the
# face is lost (a camera cut, the person left) and the rule picks again.
_MAX_TRACK_JUMP = 1.0
# Bystanders (other faces) are remembered this many frames after they were
# last seen, so that the subject leaving does not hand the track to them.
_BYSTANDER_MEMORY = 8
# Without a tracked face, detections scoring below this share of the best
# detection's score are ignored (see FaceAligner._choose).
_MIN_RELATIVE_SCORE = 0.5

# A tracked fit is rejected (and the detector run on that sample) where the
# box derived from the new landmarks moved more than this many box sides
# from the box the fit started in, or its side differs by more than this
# factor from that box's or the last detection's: the landmarks did not
# lock onto a face there.
_MAX_TRACK_SHIFT = 0.25
_MAX_TRACK_SCALE = 1.3
# ... or where refitting in the box derived from the fitted landmarks moves
# them by more than this share of their RMS radius on average (a fit that
# lost the face keeps sliding; one on a face has converged).
_MAX_REFIT_CHANGE = 0.05
# ... or where less than this share of the derived box lies in the frame.
_MIN_TRACK_INSIDE = 0.8

# Windowed detection (FaceAligner(window=True)): where the previous sample's
# subject is known, the detector scans only the region this many box sides
# around its last box (at the detection scale, cut from the same rescaled
# frame), and the whole frame where that region holds no box continuing the
# subject. The whole frame is scanned anyway every `_FULL_SCAN_EVERY`-th
# detection (faces that entered the frame are seen there, as bystanders)
# and while the last whole-frame scan saw other faces than the subject.
_WINDOW_MARGIN = 0.75
_FULL_SCAN_EVERY = 8
# The window's top-left corner lies on this grid of the rescaled frame: dlib's
# HOG cells are 8 px and its pyramid scales each level by 5/6, so a corner on
# a multiple of 48 gives the same cells as the whole frame on the first two
# pyramid levels (faces up to ~1.4x the 80 px scanning window), and there
# the same detections.
_WINDOW_GRID = 48
# ... and only there: the window's boxes are taken only if none is larger
# than this at the detection scale (halved per `upsample` step). dlib's
# boxes are ~73 px on the first level, ~88 on the second and ~105 on the
# third, which the window resamples differently from the whole frame (a box
# there can move by a pixel or two). A larger face is detected in the whole
# frame, and a subject that large is not looked for in a window at all.
_WINDOW_MAX_SIDE = 96.0


@dataclasses.dataclass(frozen=True)
class FrameFace:
    """What `FaceAligner.process` found in one frame.

    Attributes:
        crop: (size, size, 3) uint8 aligned crop of the chosen face, or None.
        landmarks: (68, 2) float32 landmarks of that face in crop pixels, or None.
        box: [left, top, right, bottom) of the chosen face in frame pixels, or None.
        num_faces: confident detections in the frame (see `FaceAligner._choose`),
            the chosen face included; on a tracked sample (`detected` False)
            the count of the last detection, carried over.
        detected: True where the detector ran on this frame; False where the
            face was tracked from the previous sample (`box` is then the box
            derived from the new landmarks, in the detector's box units).
    """

    crop: np.ndarray | None
    landmarks: np.ndarray | None
    box: np.ndarray | None
    num_faces: int
    detected: bool = True


class FaceAligner:
    """Detects, tracks and aligns one face per video with dlib.

    Detection runs on a copy of the frame scaled by `detection_scale`: frames
    wider than `detect_width` are reduced to that width (for speed), but never
    so far that a face a third of the frame height falls below 80 px, and
    small frames are enlarged until it reaches 80 px. Where a frame gives no
    face at that scale, detection is retried once with one more upsampling
    step (twice the scale) before the frame is marked missing.

    Args:
        size: side of the square output crop, pixels.
        upsample: times dlib's detector upsamples the scaled image, 0 to
            `MAX_UPSAMPLE`; each step halves the smallest detectable face and
            costs about 4x the time and memory.
        detect_width: frames wider than this are reduced towards this width
            for face detection only (landmarks and the warp use the full
            frame); 0 or None: no reduction.
        predictor_path: dlib 68-landmark model; default: the one shipped by
            the `face-recognition-models` package.
        template: three (x, y) positions, as fractions of `size`, for the
            image-left eye centre, image-right eye centre and nose tip.
        face: which face of a frame is the subject when none is tracked yet
            (or the tracked one was lost): "largest", "left"most, "right"most,
            or nearest the frame's "center"; see `_choose`.
        redetect_every: run the detector on every this-many-th sample of a
            tracked face (1: on every sample). On the samples between, the 68
            landmarks are fitted in a box derived from the previous sample's
            landmarks (the detection box's position and size relative to the
            landmarks, as measured at the last detection), then refitted in the
            box those landmarks give; the two fits cost about as much as a
            detection alone (a detected sample: detection plus one fit). The
            detector runs anyway on a sample after one
            without a face, and where the tracked fit looks wrong (the box
            derived from the new landmarks moved more than a quarter of its
            side or changed size by more than 30 %, the refit moved them by
            more than 5 % of their radius, or the box leaves the frame).
            Faces that enter the frame between detections are seen at the
            next detection.
        rotate: turn every frame this many degrees clockwise (one of
            `ROTATIONS`) before detection, landmarks and the warp, for videos
            whose faces lie on their side without a rotation tag (a tagged
            clip is turned upright by OpenCV already). Boxes and sizes are
            then in the turned frame's pixels.
        window: where the previous sample's subject is known and the last
            whole-frame scan saw no other face, detect in a window
            `_WINDOW_MARGIN` box sides around the subject's last box (the same
            pixels at the same scale, so the same detections), falling back to
            the whole frame where the window holds no box continuing the
            subject or a box over `_WINDOW_MAX_SIDE` (a face that large is
            detected in the whole frame); the whole frame is scanned anyway every
            `_FULL_SCAN_EVERY`-th detection. `num_faces` of a windowed sample
            counts the window's faces (faces that enter the frame are counted
            at the next whole-frame scan, as with tracking). False: the whole
            frame every time.

    Raises:
        ValueError: bad size, upsample, detect_width, template, face,
            redetect_every or rotate.
        FileNotFoundError: the predictor file does not exist.
    """

    def __init__(
        self,
        size: int = 96,
        *,
        upsample: int = 0,
        detect_width: int | None = 320,
        predictor_path: str | os.PathLike | None = None,
        template: Sequence[Sequence[float]] = DEFAULT_TEMPLATE,
        face: str = "largest",
        redetect_every: int = DEFAULT_REDETECT_EVERY,
        rotate: int = 0,
        window: bool = True,
    ):
        try:
            template = tuple(tuple(float(v) for v in point) for point in template)
        except (TypeError, ValueError):
            raise ValueError(f"template must be three (x, y) fractions. Received: "
                             f"template={template!r}") from None
        # The one check of each setting (FaceSettings), whoever builds the aligner.
        FaceSettings(size=size, upsample=upsample, detect_width=detect_width or 0,
                     predictor_path=None if predictor_path is None else str(predictor_path),
                     face=face, redetect_every=redetect_every, rotate=rotate,
                     template=template).check()
        template = np.asarray(template, np.float64)
        self.size = int(size)
        self.upsample = int(upsample)
        self.detect_width = int(detect_width or 0)
        self.predictor_path = str(predictor_path or default_predictor_path())
        self.template = template
        self.face = face
        self.redetect_every = int(redetect_every)
        self.rotate = int(rotate)
        self.window = bool(window)
        self._predictor = _load_predictor(self.predictor_path)
        self._detector = _load_detector()
        self._last_box: np.ndarray | None = None
        # Other faces seen recently: [box, frames since seen].
        self._bystanders: list[tuple[np.ndarray, int]] = []
        self._reset_tracking()

    @classmethod
    def from_settings(cls, settings: FaceSettings) -> FaceAligner:
        """An aligner with these face settings (`FaceSettings.aligner_kwargs`,
        the arguments worker processes get too)."""
        return cls(**settings.aligner_kwargs())

    def _reset_tracking(self) -> None:
        # Landmarks (frame pixels) of the previous sample's face; None where
        # that sample had none (the next sample runs the detector).
        self._track_points: np.ndarray | None = None
        # Detection box relative to its landmarks, from the last detection:
        # (centre offset, half sides), in units of the landmarks' RMS radius.
        self._box_model: tuple[np.ndarray, np.ndarray] | None = None
        self._since_detection = 0
        self._detected_faces = 0
        self._detected_side = 1.0
        # Windowed detection: detections since the last whole-frame scan, and
        # the faces that scan saw.
        self._since_full_scan = 0
        self._full_scan_faces = 0

    def settings(self) -> dict:
        """The arguments that change which faces are found and how they are
        cropped, JSON-serialisable (recorded in preprocess.json and in an
        exported model's recola_sta.json, where predict rebuilds the aligner
        from them)."""
        return {
            "size": self.size,
            "upsample": self.upsample,
            "detect_width": self.detect_width,
            "face": self.face,
            "template": self.template.tolist(),
            "redetect_every": self.redetect_every,
            "rotate": self.rotate,
        }

    def kwargs(self) -> dict:
        """The constructor's arguments that rebuild this aligner (a worker
        process builds its own from them: `tracking.iter_samples_chunked`)."""
        return {**self.settings(), "predictor_path": self.predictor_path,
                "window": self.window}

    def upright(self, rgb: np.ndarray) -> np.ndarray:
        """`rgb` turned by `rotate` degrees clockwise (itself for 0)."""
        return rotated(rgb, self.rotate)

    @property
    def template_points(self) -> np.ndarray:
        """(3, 2) template positions in crop pixel coordinates (pixel centres
        at integers, as OpenCV and dlib use)."""
        return self.template * self.size - 0.5

    def reset(self) -> None:
        """Forgets the tracked face and the bystanders; call between videos."""
        self._last_box = None
        self._bystanders = []
        self._reset_tracking()

    def detection_scale(self, width: int, height: int) -> float:
        """Factor by which a `width` x `height` frame is scaled for detection.

        `detect_width / width` for frames wider than `detect_width` (1 for the
        others, or with `detect_width` 0), raised where needed so that a face
        of 1 / TYPICAL_FACE_SHARE of the frame height measures at least
        MIN_DETECT_FACE_PX at the detector's scale: 0.5 for 640x480 (as with
        the fixed 320 px width), 1/3 for 1280x720 (427x240 instead of
        320x180), 5/3 for 176x144.
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"Frame size must be positive. Received: {width}x{height}")
        # The rule and its numbers are explained once: docs/faces.md#detection-scale.
        scale = min(1.0, self.detect_width / width) if self.detect_width else 1.0
        return max(scale, MIN_DETECT_FACE_PX * TYPICAL_FACE_SHARE / height)

    def detect(self, rgb: np.ndarray, *, retry: bool = True,
               near: np.ndarray | None = None) -> tuple[list[np.ndarray], list[float]]:
        """All face boxes [left, top, right, bottom) in full-frame pixels, and
        the detector's confidence score of each.

        Detection runs at `detection_scale`; with `retry`, a frame without a
        face there is scanned once more with one more upsampling step. With
        `near` (a box in frame pixels), only the window `_WINDOW_MARGIN` box
        sides around it is scanned, cut from the same rescaled frame (so a
        face inside it gives the detection the whole frame would).
        """
        rgb = _check_rgb(rgb)
        h, w = rgb.shape[:2]
        scale = self.detection_scale(w, h)
        small = rgb
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1
                               else cv2.INTER_LINEAR)
        sx, sy = small.shape[1] / w, small.shape[0] / h
        x0 = y0 = 0
        if near is not None:
            x0, y0, x1, y1 = _window(near, _WINDOW_MARGIN, sx, sy, small.shape[1],
                                     small.shape[0])
            small = np.ascontiguousarray(small[y0:y1, x0:x1])
        rects, scores, _ = self._detector.run(small, self.upsample, 0.0)
        if not len(rects) and retry:
            rects, scores, _ = self._detector.run(small, self.upsample + 1, 0.0)
        boxes = [
            np.array([(r.left() + x0) / sx, (r.top() + y0) / sy, (r.right() + 1 + x0) / sx,
                      (r.bottom() + 1 + y0) / sy])
            for r in rects
        ]
        return boxes, [float(s) for s in scores]

    def _pick(self, candidates: list[np.ndarray], width: int, height: int) -> np.ndarray:
        """The subject among `candidates` by the `face` rule."""
        if self.face == "left":
            return min(candidates, key=lambda b: _centre(b)[0])
        if self.face == "right":
            return max(candidates, key=lambda b: _centre(b)[0])
        if self.face == "center":
            middle = np.array([width / 2, height / 2])
            return min(candidates, key=lambda b: float(np.linalg.norm(_centre(b) - middle)))
        return max(candidates, key=_area)

    def _choose(self, boxes: list[np.ndarray], scores: list[float], width: int,
                height: int) -> tuple[np.ndarray | None, int]:
        """The subject's box in this frame (or None) and the number of faces.

        Faces are the detections scoring at least half the best score: HOG
        false positives (a badge, a helmet) are often large but weak.

        A tracked subject is continued by the detection, whatever its score
        (a turning head scores low), whose centre lies within one box side of
        the subject's last box and nearer to it than to any bystander's; among
        several, the one overlapping most (IoU), else the nearest. Otherwise
        (no subject yet, or it was lost) the `face` rule picks among the faces
        that do not continue a bystander, i.e. another face seen in the last
        frames: when the subject leaves, the track is not handed to the person
        beside them; when it comes back, the rule finds it again. A frame
        without the subject keeps its last box for the next frame.
        """
        confident = []
        if boxes:
            best = max(scores)
            confident = [b for b, s in zip(boxes, scores) if s >= _MIN_RELATIVE_SCORE * best]
        chosen = self._continued_subject(boxes)
        if chosen is None:
            free = [b for b in confident if self._owner(b) is None]
            if free:
                chosen = self._pick(free, width, height)
        self._remember_bystanders([b for b in confident if b is not chosen])
        if chosen is not None:
            self._last_box = chosen
        return chosen, len(confident)

    def _owner(self, box: np.ndarray) -> int | None:
        """Index of the known face (0: subject, 1+: bystanders) `box`
        continues, or None: the nearest known face within `_MAX_TRACK_JUMP`
        box sides."""
        bystanders = [b for b, _ in self._bystanders]
        known = ([self._last_box] if self._last_box is not None else []) + bystanders
        offset = 0 if self._last_box is not None else 1
        if not known:
            return None
        jumps = [_jump(box, k) for k in known]
        k = int(np.argmin(jumps))
        return k + offset if jumps[k] <= _MAX_TRACK_JUMP else None

    def _continued_subject(self, boxes: list[np.ndarray]) -> np.ndarray | None:
        """The box among `boxes` (any score) that continues the tracked
        subject: of those it owns, the one overlapping its last box most, else
        the nearest; None without a tracked subject or such a box."""
        if self._last_box is None:
            return None
        mine = [b for b in boxes if self._owner(b) == 0]
        if not mine:
            return None
        ious = [_iou(b, self._last_box) for b in mine]
        if max(ious) >= _MIN_TRACK_IOU:
            return mine[int(np.argmax(ious))]
        return min(mine, key=lambda b: _jump(b, self._last_box))

    def _remember_bystanders(self, others: list[np.ndarray]) -> None:
        """Records the other faces of this frame as bystanders, and keeps the
        unseen ones (those no face of this frame continues) for up to
        `_BYSTANDER_MEMORY` frames."""
        kept = [(b, age + 1) for b, age in self._bystanders
                if age + 1 < _BYSTANDER_MEMORY and not any(_jump(o, b) <= _MAX_TRACK_JUMP
                                                          for o in others)]
        self._bystanders = [(b, 0) for b in others] + kept

    def _fit(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        rect = dlib.rectangle(int(round(box[0])), int(round(box[1])),
                              int(round(box[2])) - 1, int(round(box[3])) - 1)
        shape = self._predictor(rgb, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def _locate(self, rgb: np.ndarray) -> tuple[np.ndarray | None, int]:
        """The subject's box (or None) and the number of faces: in the window
        around the subject's last box where `window` allows and it holds a
        box continuing the subject, else in the whole frame."""
        h, w = rgb.shape[:2]
        if (self.window and self._last_box is not None and self._full_scan_faces <= 1
                and not self._bystanders and self._since_full_scan + 1 < _FULL_SCAN_EVERY
                and self._window_sees([self._last_box], w, h)):
            boxes, scores = self.detect(rgb, retry=False, near=self._last_box)
            if any(self._owner(b) == 0 for b in boxes) and self._window_sees(boxes, w, h):
                self._since_full_scan += 1
                return self._choose(boxes, scores, w, h)
        boxes, scores = self.detect(rgb)
        chosen, num_faces = self._choose(boxes, scores, w, h)
        self._since_full_scan = 0
        self._full_scan_faces = num_faces
        return chosen, num_faces

    def _window_sees(self, boxes: list[np.ndarray], width: int, height: int) -> bool:
        """Whether every box (frame pixels) is small enough at the detection
        scale for the pyramid levels on which the window sees the whole
        frame's cells (`_WINDOW_MAX_SIDE`)."""
        limit = _WINDOW_MAX_SIDE / 2 ** self.upsample / self.detection_scale(width, height)
        return all(_side(b) <= limit * 1.001 for b in boxes)  # rounding of the scale

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """68 landmarks (x, y) of the tracked face, or None without a face.

        Updates the tracked face (as `process`, tracking between detections).
        Landmarks are fitted on the full-resolution frame even when detection
        ran on a rescaled copy.
        """
        return self._find(self.upright(_check_rgb(rgb)))[0]

    def transform(self, landmarks: np.ndarray) -> np.ndarray:
        """(2, 3) similarity matrix mapping the frame onto the crop."""
        return similarity_transform(key_points(landmarks), self.template_points)

    def align(self, rgb: np.ndarray) -> np.ndarray | None:
        """Aligned (size, size, 3) uint8 RGB crop of the tracked face, or None."""
        aligned = self.align_with_landmarks(rgb)
        return None if aligned is None else aligned[0]

    def align_with_landmarks(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The aligned crop and the face's 68 landmarks in crop pixels, or None.

        The landmarks are the frame's landmarks mapped by the same similarity
        transform as the pixels, as (x, y) float32 in the crop's pixel
        coordinates (pixel centres at integers), so region masks drawn from
        them (`recola_sta.regions`) lie on the crop's features.
        """
        found = self.process(rgb)
        return None if found.crop is None else (found.crop, found.landmarks)

    def process(self, rgb: np.ndarray) -> FrameFace:
        """Detects (or tracks), chooses and aligns the subject's face in one frame.

        Updates the tracked face. Returns the crop and crop-pixel landmarks
        (as `align_with_landmarks`), the chosen box in frame pixels, the
        number of faces in the frame and whether the detector ran (see
        `redetect_every`). The frame is first turned by `rotate`; the crop,
        box and landmarks are those of the turned frame.
        """
        rgb = self.upright(_check_rgb(rgb))
        pts, box, num_faces, detected = self._find(rgb)
        if pts is None:
            return FrameFace(None, None, None, num_faces, detected)
        matrix = self.transform(pts)
        crop = cv2.warpAffine(rgb, matrix, (self.size, self.size),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        in_crop = pts @ matrix[:, :2].T + matrix[:, 2]
        return FrameFace(crop, in_crop.astype(np.float32), box, num_faces, detected)

    # Tracking between detections.

    def _find(self, rgb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, int, bool]:
        """Landmarks (frame pixels), box, number of faces and whether the
        detector ran, for the subject in this frame: tracked from the
        previous sample where allowed, else detected."""
        followed = self._follow(rgb)
        if followed is not None:
            return (*followed, self._detected_faces, False)
        box, num_faces = self._locate(rgb)
        if box is None:
            self._track_points = None
            return None, None, num_faces, True
        points = self._fit(rgb, box)
        self._start_track(points, box, num_faces)
        return points, box, num_faces, True

    @staticmethod
    def _frame_of(points: np.ndarray) -> tuple[np.ndarray, float]:
        """Centroid and RMS radius of landmarks: the frame in which a
        detection box is described relative to its face."""
        centre = points.mean(0)
        radius = float(np.sqrt(((points - centre) ** 2).sum(1).mean()))
        return centre, max(radius, 1e-6)

    def _start_track(self, points: np.ndarray, box: np.ndarray, num_faces: int) -> None:
        """Records a detection: the box's place relative to its landmarks."""
        centre, radius = self._frame_of(points)
        offset = (_centre(box) - centre) / radius
        half = np.array([box[2] - box[0], box[3] - box[1]]) / (2 * radius)
        self._box_model = (offset, half)
        self._track_points = points
        self._since_detection = 0
        self._detected_faces = num_faces
        self._detected_side = _side(box)

    def _box_from(self, points: np.ndarray) -> np.ndarray:
        """The box the detector would give for a face with these landmarks."""
        offset, half = self._box_model
        centre, radius = self._frame_of(points)
        mid = centre + offset * radius
        return np.concatenate([mid - half * radius, mid + half * radius])

    def _follow(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Landmarks and box of the tracked face without the detector, or None
        where this sample must run it (see `redetect_every`)."""
        if (self._track_points is None or self._box_model is None
                or self._since_detection + 1 >= self.redetect_every):
            return None
        h, w = rgb.shape[:2]
        guess = self._box_from(self._track_points)
        if _inside_share(guess, w, h) < _MIN_TRACK_INSIDE:
            return None
        points = self._fit(rgb, guess)
        box = self._box_from(points)
        # Refitted in the box its own landmarks give: a face holds still
        # (the fit has converged onto it), a fit that lost the face moves on.
        again = self._fit(rgb, box)
        _, radius = self._frame_of(again)
        change = float(np.linalg.norm(again - points, axis=1).mean()) / radius
        points, box = again, self._box_from(again)
        if self._lost(guess, box, change, w, h):
            return None
        self._track_points = points
        self._last_box = box
        self._since_detection += 1
        return points, box

    def _lost(self, guess: np.ndarray, box: np.ndarray, change: float, width: int,
              height: int) -> bool:
        """Whether a tracked fit lost the face: the refit moved the landmarks
        by more than `_MAX_REFIT_CHANGE` of their radius (`change`), or the
        box they give (`box`) moved more than `_MAX_TRACK_SHIFT` sides from
        the box the fit started in (`guess`), changed size by more than
        `_MAX_TRACK_SCALE` from it or from the last detection's, or lies less
        than `_MIN_TRACK_INSIDE` in the frame."""
        ratio = _side(box) / _side(guess)
        return (change > _MAX_REFIT_CHANGE
                or _jump(box, guess) > _MAX_TRACK_SHIFT
                or not 1 / _MAX_TRACK_SCALE <= ratio <= _MAX_TRACK_SCALE
                or not 1 / _MAX_TRACK_SCALE <= _side(box) / self._detected_side
                <= _MAX_TRACK_SCALE
                or _inside_share(box, width, height) < _MIN_TRACK_INSIDE)


def rotated(rgb: np.ndarray, degrees: int) -> np.ndarray:
    """`rgb` turned `degrees` (one of `ROTATIONS`) clockwise."""
    degrees %= 360
    return rgb if degrees == 0 else cv2.rotate(rgb, _CV2_ROTATE[degrees])


def _window(box: np.ndarray, margin: float, sx: float, sy: float, width: int,
            height: int) -> tuple[int, int, int, int]:
    """[x0, y0, x1, y1) in the rescaled frame (`width` x `height`, scaled by
    `sx`, `sy` from the frame) of `box` grown by `margin` of its side on
    every side, the top-left corner moved up-left onto `_WINDOW_GRID`,
    clipped to the frame."""
    grow = margin * _side(box)
    x0 = max(0, int(np.floor((box[0] - grow) * sx)) // _WINDOW_GRID * _WINDOW_GRID)
    y0 = max(0, int(np.floor((box[1] - grow) * sy)) // _WINDOW_GRID * _WINDOW_GRID)
    x1 = min(width, int(np.ceil((box[2] + grow) * sx)))
    y1 = min(height, int(np.ceil((box[3] + grow) * sy)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
            or rgb.shape[2] != 3:
        raise ValueError(
            "Expected an RGB uint8 image of shape (H, W, 3). Received: "
            f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}"
        )
    return np.ascontiguousarray(rgb)
