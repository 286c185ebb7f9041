"""Several targets in one model (--target=valence,arousal): the flag, the
pipeline's per-target labels and weights, the summed loss, the per-target
metrics, per-target post-processing and the export metadata."""

from __future__ import annotations

import json
import types

import keras
import numpy as np
import pytest

from recola_sta import cache, metrics
from recola_sta.evaluation import postprocess
from recola_sta.inference import export
from recola_sta.model import networks
from recola_sta.training import pipeline, run_folder, train
from recola_sta.cache import shards
from recola_sta.model import losses
from recola_sta.targets import parse_targets
from recola_sta.faces.settings import FaceSettings

S = 16


@pytest.mark.parametrize("text", ["valence,valence", "", "valence,", "va-lence", "attention",
                                  "valence,,arousal"])
def test_bad_target_flag_is_an_error_naming_it(text, tmp_path):
    with pytest.raises(ValueError, match="--target"):
        parse_targets(text)
    with pytest.raises(ValueError, match="--target"):
        train.TrainConfig(corpus_dir=str(tmp_path), target=text).validate()


def test_target_flag_parses_one_name_or_a_list(tmp_path):
    assert parse_targets("valence") == ("valence",)
    assert parse_targets(" valence , arousal") == ("valence", "arousal")
    config = train.TrainConfig(corpus_dir=str(tmp_path), target="valence,arousal")
    config.validate()
    assert config.targets == ("valence", "arousal")


def test_resume_with_another_target_is_refused(tmp_path):
    first = train.TrainConfig(corpus_dir=str(tmp_path), run_dir=str(tmp_path / "run"))
    run_folder.write_config(first, tmp_path / "run")
    other = train.TrainConfig(**{**first.__dict__, "target": "valence,arousal"})
    with pytest.raises(ValueError, match=r"--target: 'valence' -> 'valence,arousal'"):
        run_folder.write_config(other, tmp_path / "run")


def _two_target_cache(root):
    """One recording of 8 samples: sample 1 has no face, sample 2 no arousal,
    sample 3 no valence."""
    n = 8
    found = np.ones(n, bool)
    found[1] = False
    valence = np.linspace(-0.5, 0.5, n).astype(np.float32)
    arousal = np.linspace(0.4, -0.4, n).astype(np.float32)
    arousal[2] = np.nan
    valence[3] = np.nan
    crops = np.full((n, S, S, 3), 90, np.uint8)
    track = types.SimpleNamespace(times=np.arange(n) * 0.25, crops=crops, found=found)
    entries = []
    for name, partition in (("train_1", "train"), ("dev_1", "dev")):
        shard = cache.shard_path(partition, name)
        shards.write_shard(root / shard, track, {"valence": valence, "arousal": arousal})
        entries.append(cache.CacheEntry(name=name, partition=partition, shard=shard,
                                        num_samples=n, found_rate=float(found.mean()),
                                        video=f"{name}.mp4", targets=["valence", "arousal"]))
    cache.write_manifest(root, cache.Manifest(corpus_root="corpus", corpus_kind="synthetic",
                                              face=FaceSettings(size=S), fps=4.0, entries=entries))
    return root, valence, arousal


def test_pipeline_gives_per_target_labels_and_weights(tmp_path):
    root, valence, arousal = _two_target_cache(tmp_path)
    ds = pipeline.train_dataset(root, target=("valence", "arousal"), frames=8, batch_size=1,
                                augment=False, shuffle=False, deterministic=True)
    _, labels, weights = next(ds.as_numpy_iterator())
    assert labels.shape == (1, 8, 2) and weights.shape == (1, 8, 2)
    expected_w = np.ones((8, 2), np.float32)
    expected_w[1] = 0  # no face: both masked
    expected_w[2, 1] = 0  # no arousal: arousal only
    expected_w[3, 0] = 0  # no valence: valence only
    np.testing.assert_array_equal(weights[0], expected_w)
    np.testing.assert_allclose(labels[0, :, 0], np.nan_to_num(valence))
    np.testing.assert_allclose(labels[0, :, 1], np.nan_to_num(arousal))
    # One target: the single-target shapes, unchanged.
    _, labels, weights = next(pipeline.train_dataset(
        root, target="arousal", frames=8, batch_size=1, augment=False, shuffle=False,
        deterministic=True).as_numpy_iterator())
    assert labels.shape == (1, 8, 1) and weights.shape == (1, 8)
    np.testing.assert_array_equal(weights[0], [1, 0, 0, 1, 1, 1, 1, 1])
    # Evaluation clips pad with weight 0 for every target.
    _, labels, weights = next(pipeline.eval_dataset(
        root, "dev_1", target=["valence", "arousal"], frames=6, batch_size=2).as_numpy_iterator())
    assert labels.shape == (2, 6, 2) and weights.shape == (2, 6, 2)
    assert not weights[1, 2:].any()
    with pytest.raises(ValueError, match="repeat"):
        pipeline.train_dataset(root, target=("valence", "valence"))
    with pytest.raises(ValueError, match="Unknown target 'liking'"):
        pipeline.train_dataset(root, target=("valence", "liking"))


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(3, 5, 2)).astype("float32")
    p = (0.5 * y + rng.normal(size=y.shape)).astype("float32")
    w = (rng.random(size=y.shape) > 0.3).astype("float32")
    return y, p, w


def _np(x):
    return float(keras.ops.convert_to_numpy(x))


def test_summed_loss_is_the_sum_of_the_single_target_losses():
    y, p, w = _batch()
    mse = keras.losses.MeanSquaredError()
    for kind, single in (("mse", mse), ("ccc", losses.CCCLoss())):
        loss = losses.SummedTargetsLoss(kind)
        expected = sum(_np(single(y[..., k:k + 1], p[..., k:k + 1], w[..., k])) for k in range(2))
        assert _np(loss(y, p, w)) == pytest.approx(expected, rel=1e-5), kind
        # K = 1 with (B, T) weights: the single-target loss itself.
        assert _np(loss(y[..., :1], p[..., :1], w[..., 0])) == pytest.approx(
            _np(single(y[..., :1], p[..., :1], w[..., 0])), rel=1e-5), kind
    # A masked frame's label (NaN in the cache, 0 in the pipeline) adds nothing.
    y_nan = np.where(w > 0, y, np.nan).astype("float32")
    assert np.isfinite(_np(losses.SummedTargetsLoss("ccc")(y_nan, p, w)))
    with pytest.raises(ValueError, match="kind"):
        losses.SummedTargetsLoss("mae")


def test_per_target_and_mean_ccc_metrics():
    batches = [_batch(seed) for seed in range(3)]
    per_target = [losses.CCCMetric(target_index=k) for k in range(2)]
    mean = losses.MeanCCCMetric(2)
    for y, p, w in batches:
        for m in (*per_target, mean):
            m.update_state(y, p, w)
    expected = []
    for k in range(2):
        gold = np.concatenate([np.where(w[..., k] > 0, y[..., k], np.nan).ravel()
                               for y, p, w in batches])
        pred = np.concatenate([p[..., k].ravel() for y, p, w in batches])
        expected.append(metrics.ccc(gold, pred))
        assert _np(per_target[k].result()) == pytest.approx(expected[k], abs=1e-4)
    assert _np(mean.result()) == pytest.approx(np.mean(expected), abs=1e-4)
    restored = losses.MeanCCCMetric.from_config(mean.get_config())
    assert restored.num_targets == 2
    assert losses.CCCMetric.from_config(per_target[1].get_config()).target_index == 1
    with pytest.raises(ValueError, match="num_targets"):
        losses.MeanCCCMetric(0)


def test_two_target_model_output():
    model = networks.build_model("2d_cnn", frames=4, size=S, fc_units=4, num_targets=2)
    assert model.output.shape[1:] == (4, 2) and model.layers[-1].name == "targets"
    single = networks.build_model("2d_cnn", frames=4, size=S, fc_units=4)
    assert single.output.shape[1:] == (4, 1) and single.layers[-1].name == "valence"
    with pytest.raises(ValueError, match="num_targets"):
        networks.build_model("2d_cnn", frames=4, size=S, num_targets=0)


def test_postprocessing_chains_per_target(tmp_path):
    rng = np.random.default_rng(0)
    gold = [np.sin(np.linspace(0, 6, 200)), np.cos(np.linspace(0, 4, 150))]
    chains = {}
    for target, bias in (("valence", 0.3), ("arousal", -0.2)):
        preds = [0.5 * g + bias + 0.05 * rng.normal(size=g.shape) for g in gold]
        chains[target] = postprocess.PostProcessor.fit(gold, preds, frame_period=0.04)
    path = tmp_path / "postprocess.json"
    postprocess.save_chains(chains, path)
    loaded = postprocess.load_chains(path, ["valence", "arousal"])
    assert list(loaded) == ["valence", "arousal"]
    for target in chains:
        assert loaded[target].params == pytest.approx(chains[target].params)
    assert loaded["valence"].params["bias"] != pytest.approx(loaded["arousal"].params["bias"])
    # A target without a chain (no labeled dev) is left out.
    assert list(postprocess.load_chains(path, ["valence", "arousal", "liking"])) == [
        "valence", "arousal"]
    with pytest.raises(ValueError, match=r"\['arousal'\].*not targets"):
        postprocess.load_chains(path, ["valence"])
    # A single chain's file serves a model of one target, not of two.
    chains["valence"].save(path)
    assert list(postprocess.load_chains(path, ["arousal"])) == ["arousal"]
    with pytest.raises(ValueError, match="one post-processing chain"):
        postprocess.load_chains(path, ["valence", "arousal"])


def test_export_metadata_names_the_targets(tmp_path):
    meta = export.export_metadata(variant="2d_cnn", targets=["valence", "arousal"], fps=4.0,
                                  face=FaceSettings(size=S))
    assert meta["targets"] == ["valence", "arousal"]
    folder = tmp_path / "saved_model"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")
    (folder / export.METADATA_NAME).write_text(json.dumps({**meta, "frames": 4}))
    assert export.read_metadata(folder)["targets"] == ["valence", "arousal"]
    for bad in ({**meta, "targets": ["a", "a"]}, {k: v for k, v in meta.items() if k != "targets"}):
        (folder / export.METADATA_NAME).write_text(json.dumps({**bad, "frames": 4}))
        with pytest.raises(ValueError, match="targets="):
            export.read_metadata(folder)
    assert export.serving_keys(["arousal"]) == ["arousal"]  # one target: a list of one
    assert export.serving_keys(["valence", "arousal"]) == ["valence", "arousal"]


def _recordings(seed: int, video: bool = False) -> list:
    from recola_sta.evaluation import evaluate

    rng = np.random.default_rng(seed)
    times = np.arange(120) * 0.04
    results = []
    for name, partition in (("dev_1", "dev"), ("dev_2", "dev"), ("test_1", "test")):
        gold = np.sin(times + rng.uniform(0, 3))
        results.append(evaluate.RecordingResult(name, partition, times, gold,
                                                gold + rng.normal(0, 0.2, len(times)),
                                                np.ones(len(times), bool)))
    return results


def _header(path) -> list[str]:
    return path.read_text().splitlines()[0].split(",")


def test_one_target_is_a_list_of_one_with_the_single_target_files(tmp_path):
    """evaluate_targets is one path for any number of targets; a run of one
    target keeps its files' single-target layout (evaluation.json without
    `targets` and `mean_ccc`, unsuffixed CSV columns and plot names, one
    chain in postprocess.json), which the report readers read back."""
    from recola_sta.evaluation import evaluate

    one, two = tmp_path / "one", tmp_path / "two"
    report = evaluate.evaluate_targets({"arousal": _recordings(0)}, one, extra={"x": 1})
    stored = json.loads((one / "evaluation.json").read_text())
    assert list(stored) == ["convention", "tune_partition", "postprocess_kept", "postprocess",
                            "raw", "post", "x"]
    assert stored == json.loads(json.dumps(evaluate.evaluation_json(report)))
    assert stored["post"] == report["post"]["arousal"]
    assert isinstance(stored["postprocess_kept"], list)
    assert _header(one / "predictions" / "dev" / "dev_1.csv") == [
        "time", "gold", "raw", "post", "face_found"]
    assert (one / "plots" / "test" / "test_1.png").is_file()
    postprocess.PostProcessor.load(one / postprocess.FILE_NAME)  # one chain
    # The list form is the target "valence", with the same files.
    listed = evaluate.evaluate_predictions(_recordings(0), tmp_path / "listed", extra={"x": 1})
    assert listed == stored
    # Several targets: their own layout, from the same path.
    report = evaluate.evaluate_targets({"valence": _recordings(1), "arousal": _recordings(2)},
                                       two)
    stored = json.loads((two / "evaluation.json").read_text())
    assert list(stored) == ["convention", "tune_partition", "targets", "postprocess_kept",
                            "postprocess", "raw", "post", "mean_ccc"]
    assert stored["mean_ccc"]["post"]["dev"] == pytest.approx(np.mean(
        [stored["post"][t]["dev"]["all"]["ccc"] for t in ("valence", "arousal")]))
    assert _header(two / "predictions" / "dev" / "dev_1.csv")[1:4] == [
        "gold_valence", "raw_valence", "post_valence"]
    assert (two / "plots" / "test" / "test_1_arousal.png").is_file()
    chains = postprocess.load_chains(two / postprocess.FILE_NAME, ["valence", "arousal"])
    assert list(chains) == ["valence", "arousal"]
    # format_report reads either layout on one path.
    lines = evaluate.format_report(json.loads((one / "evaluation.json").read_text())).splitlines()
    assert lines[0].startswith("post-processing kept: ") and "mean CCC" not in "".join(lines)
    assert lines[1].startswith("  dev  raw: RMSE ") and len(lines) == 5
    lines = evaluate.format_report(stored).splitlines()
    assert lines[0].startswith("valence: post-processing kept: ")
    mean = stored["mean_ccc"]
    assert lines[-4:] == [f"{p:>5} {stage:>4}: mean CCC over targets {mean[stage][p]:.3f}"
                          for stage in ("raw", "post") for p in ("dev", "test")]


def test_results_json_and_the_printed_summary_of_one_and_of_several_targets():
    from recola_sta.training import results as run_results

    scores = {"rmse": 0.1, "cc": 0.8, "ccc": 0.7}
    one = run_results.results_json({
        "variant": "2d_cnn", "target": "arousal", "targets": ["arousal"], "best_epoch": 3,
        "dev_raw": {"arousal": scores, "mean_ccc": 0.7},
        "dev_post": {"arousal": {**scores, "ccc": 0.75}, "mean_ccc": 0.75},
        "postprocess_kept": {"arousal": ["bias"]}, "wall_time_s": {}})
    assert one == {"variant": "2d_cnn", "target": "arousal", "best_epoch": 3,
                   "dev_raw": scores, "dev_post": {**scores, "ccc": 0.75},
                   "postprocess_kept": ["bias"], "wall_time_s": {}}
    assert run_results.summary_lines(one) == [
        "Best epoch 3; post-processing kept: bias",
        "dev raw : RMSE 0.100  CC 0.800  CCC 0.700",
        "dev post: RMSE 0.100  CC 0.800  CCC 0.750",
        "dev CCC: 0.750"]
    assert run_results.summary_lines({**one, "dev_post": {}, "postprocess_kept": []}) == [
        "Best epoch 3; post-processing kept: nothing"]
    several = {"target": "valence,arousal", "targets": ["valence", "arousal"], "best_epoch": 2,
               "dev_raw": {"valence": scores, "arousal": {}, "mean_ccc": None},
               "dev_post": {"valence": scores, "arousal": {}, "mean_ccc": None},
               "postprocess_kept": {"valence": [], "arousal": ["scale"]}}
    assert run_results.results_json(several) is several
    assert run_results.summary_lines(several) == [
        "Best epoch 2 (by the mean dev CCC over targets).",
        "valence: post-processing kept: nothing",
        "valence dev raw : RMSE 0.100  CC 0.800  CCC 0.700",
        "valence dev post: RMSE 0.100  CC 0.800  CCC 0.700",
        "arousal: post-processing kept: scale"]
    several["dev_post"]["mean_ccc"] = 0.5
    assert run_results.summary_lines(several)[-1] == "dev CCC (mean over valence, arousal): 0.500"
