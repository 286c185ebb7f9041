r"""Does a trained STA run use its attention? Dev CCC with the maps replaced.

    python tools/attention_ablation.py \
        --run_dir=results/runs/synthetic_recola_like_3d_cnn_sta_seed0 [--partition=dev]

Loads the run's `best.keras`, predicts every recording of the partition from
its preprocess cache once per mode of `recola_sta.attention_ablation`
(learned maps, uniform maps, each clip's mean map, the partition's mean map)
and prints raw dev RMSE / CC / CCC (4 fps predictions, face gaps
interpolated, resampled to the label grid; no post-processing, so the modes
are compared on the model alone). The table is also written as JSON
(`--out`, default `RUN/attention_ablation.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", required=True, help="a 3d_cnn_sta training run folder")
    parser.add_argument("--partition", default="dev")
    parser.add_argument("--model_file", default="best.keras")
    parser.add_argument("--out", default=None, help="JSON file (RUN/attention_ablation.json)")
    args = parser.parse_args()

    import keras

    from recola_sta import cache, io_utils
    from recola_sta.analysis import attention_ablation, attention_analysis
    from recola_sta.evaluation import evaluate
    from recola_sta.model import layers  # registers the custom layers, for load_model
    from recola_sta.targets import parse_targets

    del layers  # needed for that alone

    run_dir = pathlib.Path(args.run_dir)
    config_path = run_dir / "config.json"
    model_path = run_dir / args.model_file
    for path in (config_path, model_path):
        if not path.is_file():
            sys.exit(f"{path} is missing: --run_dir must be a finished training run.")
    config = json.loads(config_path.read_text())
    model = keras.models.load_model(model_path, compile=False)
    try:
        front, back = attention_ablation.split_at_attention(model)
    except ValueError as error:
        sys.exit(str(error))
    frames, batch = int(config["frames"]), int(config["batch_size"])
    manifest = cache.read_manifest(config["cache_dir"])
    recordings = attention_analysis.load_partition(config["cache_dir"], manifest, args.partition)
    fixed_map = attention_ablation.mean_map(front, recordings, frames, batch)
    rows = []
    for mode in attention_ablation.ABLATIONS:
        start = time.time()
        # Every target the model predicts; the first one is scored.
        targets = parse_targets(config["target"])
        results = evaluate.predict_targets(
            attention_ablation.ablated_predict_fn(front, back, mode, fixed_map),
            config["cache_dir"], [args.partition], targets=targets,
            frames=frames, batch_size=batch, progress=False)[targets[0]]
        score = evaluate.score_results(results, config["convention"], "raw")[args.partition]["all"]
        rows.append({"mode": mode, **{k: float(score[k]) for k in ("rmse", "cc", "ccc")},
                     "seconds": round(time.time() - start, 1)})
    print(f"{run_dir.name}: raw {args.partition} scores with the attention maps replaced")
    print(f"{'maps':16s} {'RMSE':>7s} {'CC':>7s} {'CCC':>7s}")
    for row in rows:
        print(f"{row['mode']:16s} {row['rmse']:7.3f} {row['cc']:7.3f} {row['ccc']:7.3f}")
    out = pathlib.Path(args.out) if args.out else run_dir / "attention_ablation.json"
    io_utils.atomic_write_text(out, json.dumps({"run_dir": str(run_dir),
                                                "partition": args.partition,
                                                "model_file": args.model_file,
                                                "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
