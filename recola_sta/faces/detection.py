"""dlib's face detector and 68-point landmark model, and the geometry around
them: the key points of the landmarks (eye centres, nose tip), the
least-squares similarity transform that maps them onto a template, and the
boxes [left, top, right, bottom) the detector gives.
"""

from __future__ import annotations

import functools
import os

import dlib
import numpy as np


# Landmark indices of dlib's 68-point (iBUG 300-W) markup.
NUM_LANDMARKS = 68  # dlib's iBUG 300-W points
RIGHT_EYE = tuple(range(36, 42))  # the subject's right eye: image left
LEFT_EYE = tuple(range(42, 48))   # the subject's left eye: image right
NOSE_TIP = 30


def default_predictor_path() -> str:
    """Path of `shape_predictor_68_face_landmarks.dat` from face-recognition-models."""
    import face_recognition_models  # imported lazily: only needed for the default

    return face_recognition_models.pose_predictor_model_location()


@functools.lru_cache(maxsize=4)
def _load_predictor(path: str) -> dlib.shape_predictor:
    """Loads (once per process and path) a dlib shape predictor."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"dlib shape predictor not found: {path}. Pass predictor_path= "
            "(--predictor_path) pointing at shape_predictor_68_face_landmarks.dat, "
            "or install the face-recognition-models package."
        )
    try:
        return dlib.shape_predictor(path)
    except RuntimeError as e:
        raise ValueError(f"Cannot load dlib shape predictor {path}: {e}") from e


@functools.lru_cache(maxsize=1)
def _load_detector() -> dlib.fhog_object_detector:
    """dlib's HOG frontal face detector, loaded once per process."""
    return dlib.get_frontal_face_detector()


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift).

    Closed-form solution of Umeyama (1991), without reflection, as fitted by
    scikit-image's `SimilarityTransform`.

    Args:
        src: (K, 2) points, K >= 2.
        dst: (K, 2) target points.

    Returns:
        (2, 3) float64 matrix M with dst ~= M @ [src, 1].
    """
    # Imported lazily: it loads SciPy (about 0.5 s), which only the first
    # alignment of a process should pay, not every import of `faces`.
    from skimage.transform import SimilarityTransform

    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(
            f"similarity_transform needs two (K, 2) arrays with K >= 2; "
            f"received src {src.shape}, dst {dst.shape}."
        )
    if ((src - src.mean(0)) ** 2).sum() <= 0:
        raise ValueError("similarity_transform: the source points coincide.")
    fit = SimilarityTransform.from_estimate(src, dst)
    if not fit:
        # The centred dst points are orthogonal to the centred src points
        # (e.g. all dst points coincide): the least-squares fit has scale 0
        # and maps every point onto dst's centroid; scikit-image reports
        # this as a failed estimation.
        return np.hstack([np.zeros((2, 2)), dst.mean(0)[:, None]])
    return np.array(fit.params[:2], np.float64)


def key_points(landmarks: np.ndarray) -> np.ndarray:
    """(3, 2) image-left eye centre, image-right eye centre, nose tip.

    The eye centres are the means of the six contour landmarks of each eye
    (36-41 and 42-47), which are steadier than any single landmark; the nose
    tip is landmark 30.
    """
    landmarks = np.asarray(landmarks, np.float64)
    return np.stack([
        landmarks[list(RIGHT_EYE)].mean(0),
        landmarks[list(LEFT_EYE)].mean(0),
        landmarks[NOSE_TIP],
    ])


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _side(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], box[3] - box[1], 1.0))


def _jump(box: np.ndarray, ref: np.ndarray) -> float:
    """Distance of `box`'s centre from `ref`'s, in sides of `ref`."""
    return float(np.linalg.norm(_centre(box) - _centre(ref))) / _side(ref)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two [left, top, right, bottom) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / (_area(a) + _area(b) - inter))


def _inside_share(box: np.ndarray, width: int, height: int) -> float:
    """Share of `box`'s area inside a `width` x `height` frame."""
    inside = np.array([max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height)])
    if inside[2] <= inside[0] or inside[3] <= inside[1]:
        return 0.0
    return _area(inside) / max(_area(box), 1e-9)
