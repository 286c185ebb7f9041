"""The face settings: how faces are detected, chosen, tracked and cropped.

One `FaceSettings` makes the crops of preprocess (the cache), of training and
of predict (from the model's metadata). It is declared here once: each
setting's default, check and flag (`recola_sta.settings`). Each artifact
stores it in one place, as `to_json()`: the cache's manifest (`face`), the
run's config.json (`face`) and the SavedModel's recola_sta.json (`face`);
`from_json` reads it back and checks it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

from recola_sta import settings
from recola_sta.faces.detection import default_predictor_path
from recola_sta.settings import setting

# Template positions of (image-left eye centre, image-right eye centre, nose
# tip) as fractions of the crop side, in continuous pixel coordinates (pixel i
# spans [i, i+1)). Inter-ocular distance 0.30 of the crop; nose tip 0.60
# inter-ocular distances below the eye line, the ratio of dlib's mean face
# shape (0.595), so the least-squares residual is small for typical faces.
# In units of the inter-ocular distance d, dlib's mean shape spans about
# +-1.17 d horizontally (jaw) and -0.38 d (brows) to +1.92 d (chin) around the
# eye midpoint: with d = 0.30 and eyes at 0.36 the whole face, brows to chin,
# lies inside the crop (x 0.15-0.85, y 0.25-0.94).
DEFAULT_TEMPLATE: tuple[tuple[float, float], ...] = (
    (0.35, 0.36),
    (0.65, 0.36),
    (0.50, 0.54),
)

# Each upsampling step doubles the image the detector scans (4x time and
# memory); --upsample=9 took 19 GB. Above 2 the smallest detectable face is
# far below what the landmark model can fit.
MAX_UPSAMPLE = 2
# Rules for which face of a frame is the subject (FaceAligner, --face).
FACE_RULES = ("largest", "left", "right", "center")
# Clockwise turns of each frame before any face work (FaceAligner, --rotate):
# dlib's detector finds upright faces only, and a phone clip filmed sideways
# without a rotation tag stores its faces lying on their side.
ROTATIONS = (0, 90, 180, 270)

# Tracking between detections (FaceAligner(redetect_every=k)): the detector
# (about 11 ms of CPU per 640x480 sample here, against 5 ms per landmark fit)
# runs on every k-th sample; the samples between fit the landmarks twice in
# boxes derived from landmarks instead. With 4 (a detection per second at
# 4 fps) the key points stay within 0.3 px on average of full detection's,
# the crops within 1.4-2 grey levels, and alignment costs 1.48x less CPU
# (docs/faces.md, "Tracking between detections"). The default is 1: the paper
# detects the face in each frame; 4 is the speed option.
DEFAULT_REDETECT_EVERY = 1

# The largest crop a model may ask for: a 1024 px crop is 3 MB per frame;
# larger sizes would be a typo (100000: 28 GiB per crop) and are refused
# before anything is allocated.
MAX_SIZE = 1024
_ROTATIONS = ", ".join(map(str, ROTATIONS))


def _template_ok(template: Sequence[Sequence[float]]) -> bool:
    try:
        points = [tuple(float(v) for v in p) for p in template]
    except (TypeError, ValueError):
        return False
    return (len(points) == 3 and all(len(p) == 2 and all(0 < v < 1 for v in p) for p in points)
            and points[0][0] < points[1][0])


@dataclasses.dataclass(frozen=True)
class FaceSettings:
    """The settings of `faces.FaceAligner` that change the crops.

    Crops are square (`size` px), the eyes and nose tip at the `template`
    positions; the rest says how the subject's face is found (see
    `faces.FaceAligner` for each one's effect).
    """

    size: int = setting(96, help="Side of the aligned face crops, pixels.",
                        lower_bound=16, upper_bound=MAX_SIZE, check=lambda v: v % 8 == 0,
                        expected=f"a multiple of 8 from 16 to {MAX_SIZE}")
    upsample: int = setting(
        0, help="dlib detector upsampling on top of the automatic detection scale, 0-2; each "
                "step halves the smallest detectable face at 4x the detection time.",
        lower_bound=0, upper_bound=MAX_UPSAMPLE,
        check=lambda v: not isinstance(v, bool) and int(v) == v,
        expected=f"0 to {MAX_UPSAMPLE} (each step: 4x detection time and memory)")
    detect_width: int = setting(
        320, help="Detect faces on a copy reduced towards this width (0: no reduction), but "
                  "never so far that a face a third of the frame height is under 80 px; small "
                  "frames are enlarged. Landmarks use the full frame.", lower_bound=0,
        check=lambda v: v == 0 or v >= 80, expected="0 (no reduction) or at least 80")
    predictor_path: str | None = setting(
        None, help="dlib 68-landmark model; default: the one in the face-recognition-models "
                   "package.")
    redetect_every: int = setting(
        DEFAULT_REDETECT_EVERY,
        help="Run the face detector on every this-many-th sample of a tracked face (1: every "
             "sample); the samples between fit the landmarks in a box derived from the "
             "previous sample's, and detect anyway where that fit drifts.", lower_bound=1,
        check=lambda v: not isinstance(v, bool) and int(v) == v,
        expected="at least 1 (1: detect on every sample)")
    face: str = setting(
        "largest", choices=FACE_RULES,
        help="Which face is the subject where a video shows several: largest, left, right or "
             "center (nearest the frame centre); it is then followed through the video.")
    rotate: int = setting(
        0, help=f"Turn every frame this many degrees clockwise ({_ROTATIONS}) before face "
                "detection: for videos filmed sideways without a rotation tag (tagged phone "
                "clips are turned upright already).",
        check=lambda v: not isinstance(v, bool) and v in ROTATIONS,
        expected=f"one of {_ROTATIONS} (degrees clockwise)")
    template: tuple[tuple[float, float], ...] = setting(
        tuple(tuple(p) for p in DEFAULT_TEMPLATE), flag=False,
        help="Image-left eye, image-right eye and nose tip, as fractions of the crop.",
        check=_template_ok,
        expected="three (x, y) fractions in (0, 1), the image-left eye left of the other")

    def check(self) -> FaceSettings:
        """Returns self; raises ValueError naming the flag of a bad setting."""
        settings.check(self)
        return self

    def aligner_kwargs(self) -> dict[str, Any]:
        """The `faces.FaceAligner` keyword arguments, the packaged landmark
        model resolved to its path (worker processes get these)."""
        kwargs = dataclasses.asdict(self)
        kwargs["predictor_path"] = str(self.predictor_path
                                       or default_predictor_path())
        return kwargs

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON object (the template as lists)."""
        data = dataclasses.asdict(self)
        data["template"] = [list(p) for p in self.template]
        return data

    @classmethod
    def from_json(cls, data: Any, source: str | os.PathLike) -> FaceSettings:
        """Reads `to_json()`'s object back and checks it.

        Raises:
            ValueError: not an object with exactly these settings, or a bad
                value; the message names `source` (the file it came from).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, Mapping) or set(data) != names:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"{source}: the face settings must be an object with exactly "
                             f"{sorted(names)}; got {got}.")
        values = dict(data)
        try:
            values["template"] = tuple(tuple(float(v) for v in p) for p in data["template"])
        except (TypeError, ValueError):
            pass  # the check below names it
        try:
            return cls(**values).check()
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    def differences(self, other: FaceSettings) -> dict[str, tuple[Any, Any]]:
        """The settings that differ: name -> (self's, other's)."""
        return {f.name: (getattr(self, f.name), getattr(other, f.name))
                for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(other, f.name)}


def define_flags(defaults: dict[str, Any] | None = None, skip: Sequence[str] = (),
                 flag_values=None) -> None:
    """Defines the face flags (--size, --upsample, --detect_width,
    --predictor_path, --redetect_every, --face, --rotate) for a CLI that
    does not nest `FaceSettings` in its own settings (predict: `defaults`
    None, unset meaning "as the model was trained"; `skip` the flags it
    takes from elsewhere), in `flag_values` where given (`cli.call`), else
    in absl's global FLAGS."""
    settings.define_flags(FaceSettings, defaults, skip, flag_values=flag_values)


def from_flags(flag_values, recorded: FaceSettings | None = None) -> FaceSettings:
    """The face settings of parsed flags; flags left unset (None) take the
    `recorded` value (predict: the model's)."""
    base = recorded or FaceSettings()
    values = {f.name: getattr(flag_values, f.name)
              for f in dataclasses.fields(FaceSettings)
              if f.name in flag_values and getattr(flag_values, f.name) is not None}
    return dataclasses.replace(base, **values).check()
