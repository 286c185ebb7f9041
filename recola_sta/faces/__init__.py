"""Faces in videos: decoding and live sources, dlib detection and landmarks,
the choice and tracking of the subject, and the alignment of each 4 fps
sample to a fixed template (eyes and nose at fixed pixel positions).

Imports no TensorFlow: worker processes that preprocess or generate corpora
use it. The package's public names are re-exported here, so callers write
`from recola_sta import faces` and `faces.FaceAligner`. Modules: `video`
(decoding at sample times), `live` (cameras and streams), `detection` (dlib's
models, key points, the similarity fit, boxes), `alignment` (`FaceAligner`),
`tracking` (whole videos, sample by sample), `settings` (the face flags) and
`regions` (the facial regions of an aligned crop).
"""

from recola_sta.faces.alignment import (
    MIN_DETECT_FACE_PX, TYPICAL_FACE_SHARE, FaceAligner, FrameFace, rotated)
from recola_sta.faces.detection import (
    LEFT_EYE, NOSE_TIP, NUM_LANDMARKS, RIGHT_EYE, default_predictor_path, key_points,
    similarity_transform)
from recola_sta.faces.settings import (
    DEFAULT_REDETECT_EVERY, DEFAULT_TEMPLATE, FACE_RULES, MAX_UPSAMPLE, ROTATIONS, FaceSettings)
from recola_sta.faces.live import LiveSource, is_live_source, live_frames
from recola_sta.faces.tracking import FaceTrack, Sample, iter_samples, rotation_hint, track_video
from recola_sta.faces.video import (
    TruncatedVideoError, VideoError, VideoInfo, iter_frames_at, prefetched, probe_video,
    sample_times, sampled_frames)

__all__ = [
    "DEFAULT_REDETECT_EVERY", "DEFAULT_TEMPLATE", "FACE_RULES", "LEFT_EYE", "MAX_UPSAMPLE",
    "MIN_DETECT_FACE_PX", "NOSE_TIP", "NUM_LANDMARKS", "RIGHT_EYE", "ROTATIONS", "TYPICAL_FACE_SHARE", "FaceAligner",
    "FaceSettings", "FaceTrack", "FrameFace", "LiveSource", "Sample", "TruncatedVideoError", "VideoError",
    "VideoInfo", "default_predictor_path", "is_live_source", "iter_frames_at", "iter_samples",
    "key_points", "live_frames", "prefetched", "probe_video", "rotated", "rotation_hint",
    "sample_times", "sampled_frames", "similarity_transform", "track_video"]
