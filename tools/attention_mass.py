"""Where does a trained STA model look? Share of attention mass per face region.

    python tools/attention_mass.py --run_dir=runs/synthetic_3d_cnn_sta

For every dev sample with a face, the attention map of the trained model
(spatial softmax, sums to 1 per frame) is summed inside face regions of the
aligned crop: the mouth (where the synthetic valence signal lives), the eyes
and brows (where the synthetic nuisance motion lives), and the rest. Each
region's box comes from dlib's landmarks of the aligned crops themselves
(median over the dev samples, with a margin), so it follows the alignment
template. The share of attention is printed beside the region's share of the
crop area: attention that ignores position would give equal numbers.
The first frame of each clip is reported apart: it has no previous hidden
state and gets uniform attention by construction (BUILD_NOTES.md, Model).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np


def region_boxes(crops: np.ndarray, margin: float = 0.08) -> dict[str, tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) boxes of mouth and eyes+brows from landmarks of the crops."""
    import cv2
    import dlib

    from recola_sta import faces

    size = crops.shape[1]
    predictor = dlib.shape_predictor(faces.default_predictor_path())
    scale = 4  # dlib's predictor is more reliable on larger faces
    points = []
    for crop in crops[:: max(1, len(crops) // 60)]:
        big = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        shape = predictor(big, dlib.rectangle(0, 0, big.shape[1] - 1, big.shape[0] - 1))
        points.append([(p.x / scale, p.y / scale) for p in shape.parts()])
    pts = np.median(np.asarray(points), axis=0)
    pad = margin * size

    def box(idx):
        sel = pts[list(idx)]
        y0, x0 = np.floor(sel.min(0)[::-1] - pad).astype(int)
        y1, x1 = np.ceil(sel.max(0)[::-1] + pad).astype(int)
        return max(0, y0), min(size, y1), max(0, x0), min(size, x1)

    return {"mouth": box(range(48, 68)), "eyes_brows": box([*range(17, 27), *range(36, 48)])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--partition", default="dev")
    args = parser.parse_args()

    import keras

    from recola_sta import cache, clips, layers, models  # noqa: F401

    run_dir = pathlib.Path(args.run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    model = keras.models.load_model(run_dir / "best.keras", compile=False)
    attention = models.attention_model(model)
    frames = config["frames"]
    manifest = cache.read_manifest(config["cache_dir"])
    maps, crops, first = [], [], []
    for entry in manifest.partition(args.partition):
        rec = cache.load_entry(config["cache_dir"], entry)
        batch = clips.split_into_clips(rec.crops, frames).astype(np.float32) / 255.0
        att = np.asarray(attention.predict(batch, verbose=0)).reshape((-1,) + rec.crops.shape[1:3])
        att = att[: len(rec.crops)]
        keep = rec.found
        maps.append(att[keep])
        crops.append(rec.crops[keep])
        first.append((np.arange(len(rec.crops)) % frames == 0)[keep])
    maps, crops, first = np.concatenate(maps), np.concatenate(crops), np.concatenate(first)
    size = crops.shape[1]
    boxes = region_boxes(crops)
    mask = {}
    for name, (y0, y1, x0, x1) in boxes.items():
        m = np.zeros((size, size), bool)
        m[y0:y1, x0:x1] = True
        mask[name] = m
    mask["eyes_brows"] &= ~mask["mouth"]
    mask["rest"] = ~(mask["mouth"] | mask["eyes_brows"])
    print(f"{len(maps)} {args.partition} samples with a face; crop {size}x{size}; boxes (y0, y1, x0, x1): {boxes}")
    print(f"{'region':<11} {'area share':>10} {'attention (frames 2-16)':>24} {'attention (frame 1)':>20}")
    report = {}
    for name, m in mask.items():
        area = m.mean()
        later = maps[~first][:, m].sum(axis=1)
        firsts = maps[first][:, m].sum(axis=1)
        report[name] = {"area_share": float(area), "attention_share": float(later.mean()),
                        "attention_share_first_frame": float(firsts.mean())}
        print(f"{name:<11} {area:>10.3f} {later.mean():>16.3f} +- {later.std():.3f} {firsts.mean():>20.3f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
