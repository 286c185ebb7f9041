"""Which settings make the STA attention focus? One row per configuration.

    python tools/attention_study.py --cache_dir=data/cache/synthetic_32 \\
        --steps=150 --eval_every=50 --out=results/attention_study.jsonl \\
        --config "eq2_shared:" \\
        --config "per_location_gain100:attention_weights=per_location,attention_score_gain=100"

Each `--config NAME:key=value,...` trains `networks.build_model(variant, ...)`
with those model options (plus `variant=` and `lr=` keys) on the cache's train
partition through the project's own tf.data pipeline (augmentation on), with
the paper's objective (MSE, Adam, batch 16), for `--steps` steps from the same
seed. Every `--eval_every` steps it measures on the dev partition:

- dev CCC (raw 4 fps predictions, faces only, all dev recordings concatenated);
- the attention's region shares (`recola_sta.attention_analysis`): mass/area
  of mouth, eyes, brows, ... on frames 2..T;
- the gradient that reaches the attention scores on a few training batches
  (`score_gradient_stats`): how strongly, and how consistently from batch to
  batch, a gradient step on the scores would move attention into the mouth.

Each evaluation is appended to `--out` as one JSON line; the last one per
configuration is printed as a table. Training time excludes evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import numpy as np


def parse_config(text: str) -> tuple[str, dict]:
    """`NAME:key=value,...` -> (name, options); values parsed as JSON if they can be."""
    name, _, rest = text.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return name.strip(), options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache_dir", required=True)
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--eval_every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--gradient_batches", type=int, default=8)
    parser.add_argument("--out", default="results/attention_study.jsonl")
    parser.add_argument("--fresh_cache_dir", default=None,
                        help="Also report the region ratios on this cache's dev partition "
                             "(recordings from a corpus seed never trained on).")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras

    from recola_sta import cache, metrics
    from recola_sta.analysis import attention_analysis
    from recola_sta.model import networks
    from recola_sta.training import pipeline

    manifest = cache.read_manifest(args.cache_dir)
    dev = attention_analysis.load_partition(args.cache_dir, manifest, "dev")
    mouth_mask = attention_analysis.median_mouth_mask(dev, manifest.face.size)
    fresh = None
    if args.fresh_cache_dir:
        fresh = attention_analysis.load_partition(
            args.fresh_cache_dir, cache.read_manifest(args.fresh_cache_dir), "dev")
    grad_batches = list(
        pipeline.train_dataset(args.cache_dir, batch_size=args.batch_size, augment=False,
                               shuffle=True, seed=1234).take(args.gradient_batches)
        .as_numpy_iterator()
    )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for text in args.config:
        name, options = parse_config(text)
        variant = options.pop("variant", "3d_cnn_sta")
        lr = float(options.pop("lr", 1e-4))
        keras.utils.set_random_seed(args.seed)
        model = networks.build_model(variant, size=manifest.face.size, **options)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="mean_squared_error")
        train = pipeline.train_dataset(args.cache_dir, batch_size=args.batch_size, augment=True,
                                       shuffle=True, seed=args.seed).repeat()
        iterator = iter(train)
        train_seconds, step = 0.0, 0
        while step < args.steps:
            chunk = min(args.eval_every, args.steps - step)
            start = time.time()
            for _ in range(chunk):
                x, y, w = next(iterator)
                model.train_on_batch(x, y, sample_weight=w)
            train_seconds += time.time() - start
            step += chunk
            preds, maps = attention_analysis.predict_partition(model, dev)
            gold = np.concatenate([r.targets["valence"] for r in dev.values()])
            found = np.concatenate([r.found for r in dev.values()])
            ccc = metrics.ccc(gold[found], preds[found])
            row = {"config": name, "variant": variant, "options": options, "lr": lr,
                   "step": step, "train_seconds": round(train_seconds, 1),
                   "dev_ccc_raw_4fps": round(float(ccc), 4)}
            if maps is not None:
                report = attention_analysis.region_report(dev, maps, model.input_shape[1])
                row["regions"] = {k: round(v["ratio"], 3) for k, v in report["regions"].items()}
                row["map_p1_p99"] = report["map_percentiles_x_uniform"]
                row["gradient"] = attention_analysis.score_gradient_stats(
                    model, grad_batches, mouth_mask)
                if fresh is not None:
                    _, fresh_maps = attention_analysis.predict_partition(model, fresh)
                    fresh_report = attention_analysis.region_report(
                        fresh, fresh_maps, model.input_shape[1])
                    row["fresh_regions"] = {k: round(v["ratio"], 3)
                                            for k, v in fresh_report["regions"].items()}
            rows.append(row)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)

    print(f"\n{'config':<32} {'steps':>5} {'train s':>7} {'dev CCC':>7} {'mouth':>6} "
          f"{'eyes':>5} {'brows':>5} {'drive':>8} {'t':>6} {'fresh mouth':>11}")
    last = {}
    for row in rows:
        last[row["config"]] = row
    for row in last.values():
        reg = row.get("regions", {})
        grad = row.get("gradient", {})
        print(f"{row['config']:<32} {row['step']:>5} {row['train_seconds']:>7.0f} "
              f"{row['dev_ccc_raw_4fps']:>7.3f} {reg.get('mouth', float('nan')):>6.2f} "
              f"{reg.get('eyes', float('nan')):>5.2f} {reg.get('brows', float('nan')):>5.2f} "
              f"{grad.get('mouth_drive_mean', float('nan')):>8.1e} "
              f"{grad.get('mouth_drive_t', float('nan')):>6.1f} "
              f"{row.get('fresh_regions', {}).get('mouth', float('nan')):>11.2f}")


if __name__ == "__main__":
    main()
