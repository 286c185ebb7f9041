"""The face settings: how faces are detected, chosen, tracked and cropped.

The same settings make the crops of preprocess (the cache), of training and
of predict (from the model's metadata), so their flags are defined here once
for the three CLIs.
"""

from __future__ import annotations

from typing import Any

from recola_sta.faces import alignment as faces


def define_face_flags(defaults: dict[str, Any] | None = None) -> None:
    """Defines --upsample, --detect_width, --predictor_path, --face,
    --redetect_every and --rotate (shared
    by preprocess and train; `defaults` overrides their default values, e.g.
    None for predict, where an unset flag means "as the model was trained")."""
    from absl import flags

    d = {"upsample": 0, "detect_width": 320, "predictor_path": None, "face": "largest",
         "redetect_every": faces.DEFAULT_REDETECT_EVERY, "rotate": 0, **(defaults or {})}
    flags.DEFINE_integer("upsample", d["upsample"], "dlib detector upsampling on top of the "
                         "automatic detection scale, 0-2; each step halves the smallest "
                         "detectable face at 4x the detection time.",
                         lower_bound=0, upper_bound=faces.MAX_UPSAMPLE)
    flags.DEFINE_integer("detect_width", d["detect_width"], "Detect faces on a copy reduced "
                         "towards this width (0: no reduction), but never so far that a face "
                         "a third of the frame height is under 80 px; small frames are "
                         "enlarged. Landmarks use the full frame.", lower_bound=0)
    flags.DEFINE_string("predictor_path", d["predictor_path"], "dlib 68-landmark model; "
                        "default: the one in the face-recognition-models package.")
    flags.DEFINE_integer("redetect_every", d["redetect_every"], "Run the face detector on "
                         "every this-many-th sample of a tracked face (1: every sample); the "
                         "samples between fit the landmarks in a box derived from the previous "
                         "sample's, and detect anyway where that fit drifts.", lower_bound=1)
    flags.DEFINE_enum("face", d["face"], list(faces.FACE_RULES), "Which face is the subject "
                      "where a video shows several: largest, left, right or center (nearest "
                      "the frame centre); it is then followed through the video.")
    flags.DEFINE_integer("rotate", d["rotate"], "Turn every frame this many degrees clockwise "
                         f"({', '.join(map(str, faces.ROTATIONS))}) before face detection: "
                         "for videos filmed sideways without a rotation tag (tagged phone "
                         "clips are turned upright already).")
    flags.register_validator("rotate", lambda v: v is None or v in faces.ROTATIONS,
                             message="--rotate must be one of "
                                     f"{', '.join(map(str, faces.ROTATIONS))}.")
