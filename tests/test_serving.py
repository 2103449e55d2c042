"""The exported SavedModel, loaded in a fresh process, predicts what eval.py
and inference.py predict from the checkpoint, for every model.

The models are built and exported here with the functions the programs use
(common.build_model, common.export_saved_model, common.predict_batches over
the reader's dataset); train.py -> export -> inference.py end to end is in
test_programs.py. A second Python process, which never built the models,
loads each export with tf.saved_model.load and feeds it the raw records.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from absl import flags

import common
import model_flags
import tfrecord_files
from program_testing import write_tiny_data

# Runs the programs in subprocesses or trains models: the full suite only.
pytestmark = pytest.mark.slow

NUM_CLASSES = 12
TOP_K = 5
TINY = {
    "num_classes": NUM_CLASSES,
    "moe_num_mixtures": 2,
    "iterations": 6,
    "dbof_cluster_size": 8,
    "dbof_hidden_size": 8,
    "lstm_cells": 8,
    "lstm_layers": 2,
    "dcgn_levels": 2,
    "dcgn_filters": 8,
    "dcgn_kernel": 3,
    "max_frames": 40,
}
MODELS = {
    "FrameLevelLogisticModel": ("FrameLevelLogisticModel", True, {}),
    "DbofModel": ("DbofModel", True, {}),
    "LstmModel": ("LstmModel", True, {}),
    "GruModel": ("GruModel", True, {}),
    "DCGN_average": ("DCGNModel", True, {"dcgn_pooling": "average"}),
    "DCGN_attention": ("DCGNModel", True, {"dcgn_pooling": "attention"}),
    "DCGN_average_shots": (
        "DCGNModel",
        True,
        {"dcgn_pooling": "average", "dcgn_shots": 4},
    ),
    "DCGN_attention_shots": (
        "DCGNModel",
        True,
        {"dcgn_pooling": "attention", "dcgn_shots": 4},
    ),
    "LogisticModel": ("LogisticModel", False, {}),
    "MoeModel": ("MoeModel", False, {}),
}

# Runs in a fresh interpreter: only TensorFlow and the SavedModels, none of
# this project's modules, as a serving system would.
LOADER = r"""
import json, sys
import numpy as np
import tensorflow as tf

jobs = json.load(open(sys.argv[1]))
report = {}
for name, job in jobs.items():
    serve = tf.saved_model.load(job["export"]).signatures["serving_default"]
    records = list(tf.data.TFRecordDataset(job["files"]).batch(7))
    outputs = [serve(serialized=batch) for batch in records]
    result = {
        key: np.concatenate([o[key].numpy() for o in outputs]).tolist()
        for key in ("classes", "scores")
    }
    result["video_ids"] = [
        v.decode() for o in outputs for v in o["video_ids"].numpy()
    ]
    errors = {}
    for case, serialized in job["malformed"].items():
        try:
            serve(serialized=tf.constant([bytes.fromhex(serialized)]))
            errors[case] = None
        except tf.errors.InvalidArgumentError as error:
            errors[case] = error.message
    result["errors"] = errors
    report[name] = result
json.dump(report, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    write_tiny_data(
        directory,
        seed=11,
        num_train=0,
        num_validate=0,
        num_test=9,
        num_classes=NUM_CLASSES,
        num_distractor_events=4,
    )
    return directory


def malformed_records(frame_level):
    """Records a client might send by mistake, hex-encoded for JSON."""
    if frame_level:
        frames = tf.train.FeatureList(
            feature=[tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(5)]))]
            * 3
        )
        wrong_size = tf.train.SequenceExample(
            context=tf.train.Features(
                feature={
                    "id": tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[b"wrong_size"])
                    )
                }
            ),
            feature_lists=tf.train.FeatureLists(
                feature_list={"rgb": frames, "audio": frames}
            ),
        )
    else:
        wrong_size = tf.train.Example(
            features=tf.train.Features(
                feature={
                    "id": tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[b"wrong_size"])
                    ),
                    "mean_rgb": tf.train.Feature(
                        float_list=tf.train.FloatList(value=[0.5] * 5)
                    ),
                    "mean_audio": tf.train.Feature(
                        float_list=tf.train.FloatList(value=[0.5] * 4)
                    ),
                }
            )
        )
    return {
        "not_a_record": b"\x07this is not a protocol buffer".hex(),
        "wrong_feature_size": wrong_size.SerializeToString().hex(),
    }


@pytest.fixture(scope="module")
def served(data_dir, tmp_path_factory):
    """{name: (checkpoint-path predictions [N, C], ids, fresh-process report)}."""
    root = tmp_path_factory.mktemp("exports")
    expected, jobs = {}, {}
    for name, (model_name, frame_level, extra) in MODELS.items():
        tf.keras.utils.set_random_seed(1)
        flag_values = flags.FlagValues()
        model_flags.define(flag_values)
        flag_values(
            ["train.py", f"--model={model_name}", "--feature_sizes=8,4"]
            + [f"--{key}={value}" for key, value in {**TINY, **extra}.items()]
        )
        config = model_flags.model_config(flag_values)
        assert config.frame_features == frame_level
        model = common.build_model(config)
        reader = common.make_reader(config)
        pattern = f"{data_dir}/{'frame' if frame_level else 'video'}/test*"
        _, schema = reader.inspect(pattern)
        dataset = common.make_dataset(config, pattern, 4, reader)
        ids, predictions = [], []
        for batch, batch_predictions in common.predict_batches(model, dataset):
            ids.extend(v.decode() for v in batch["video_ids"])
            predictions.append(batch_predictions)
        expected[name] = (np.concatenate(predictions), ids)
        export = common.export_saved_model(
            model, reader, schema, str(root / name / "export" / "step_1"), TOP_K
        )
        jobs[name] = {
            "export": export,
            "files": tfrecord_files.match_files(pattern),
            "malformed": malformed_records(frame_level),
        }
    (root / "jobs.json").write_text(json.dumps(jobs))
    (root / "loader.py").write_text(LOADER)
    subprocess.run(
        [
            sys.executable,
            str(root / "loader.py"),
            root / "jobs.json",
            root / "out.json",
        ],
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=str(root),
        timeout=600,
    )
    report = json.loads((root / "out.json").read_text())
    return {name: (*expected[name], report[name], jobs[name]) for name in MODELS}


@pytest.mark.parametrize("name", list(MODELS))
def test_saved_model_gives_the_checkpoints_top_k(served, name):
    predictions, ids, report, _ = served[name]
    assert report["video_ids"] == ids and len(ids) == 9
    classes = np.array(report["classes"])
    scores = np.array(report["scores"])
    assert classes.shape == scores.shape == (9, TOP_K)
    top = np.argsort(-predictions, axis=1, kind="stable")[:, :TOP_K]
    expected_scores = np.take_along_axis(predictions, top, axis=1)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)
    # Classes must agree except where two scores tie within float noise.
    gaps = np.abs(np.diff(np.sort(predictions, axis=1)[:, ::-1][:, : TOP_K + 1]))
    distinct = np.ones_like(classes, bool)
    distinct[:, :-1] &= gaps[:, :-1] > 1e-5
    distinct[:, 1:] &= gaps[:, :-1] > 1e-5
    distinct[:, -1] &= gaps[:, -1] > 1e-5
    assert distinct.mean() > 0.9
    np.testing.assert_array_equal(classes[distinct], top[distinct])


@pytest.mark.parametrize("name", ["DCGN_attention_shots", "LogisticModel"])
def test_malformed_input_to_the_signature_is_a_clear_error(served, name):
    errors = served[name][2]["errors"]
    if MODELS[name][1]:
        assert "Invalid protocol message input" in errors["not_a_record"]
        assert "feature rgb expects 8 bytes per frame" in errors["wrong_feature_size"]
        assert "wrong_size" in errors["wrong_feature_size"]
    else:
        assert "Could not parse example input" in errors["not_a_record"]
        assert "mean_rgb" in errors["wrong_feature_size"]
        assert "Number of float values != expected" in errors["wrong_feature_size"]


def test_saved_model_cli_shows_the_serving_signature(served):
    export = served["DCGN_attention_shots"][3]["export"]
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "saved_model_cli")]
        + ["show", "--all", "--dir", export],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
        check=True,
    )
    text = result.stdout
    signature = text[text.index("signature_def['serving_default']") :]
    assert "inputs['serialized'] tensor_info:" in signature
    assert "dtype: DT_STRING" in signature
    for output, dtype, shape in [
        ("classes", "DT_INT32", f"(-1, {TOP_K})"),
        ("scores", "DT_FLOAT", f"(-1, {TOP_K})"),
        ("predictions", "DT_FLOAT", f"(-1, {NUM_CLASSES})"),
        ("video_ids", "DT_STRING", "(-1)"),
    ]:
        block = signature[signature.index(f"outputs['{output}']") :]
        block = block[: block.index("name:")]
        assert dtype in block and shape in block, block


def test_an_export_reads_files_as_the_checkpoints_do(served, tmp_path):
    """inference.py --saved_model_dir reads through readers.RecordFiles, so
    --compression_type and --skip_corrupt_files apply to it too."""
    import gzip

    import inference
    import readers

    predictions, ids, _, job = served["DCGN_attention_shots"]
    compressed, damaged = tmp_path / "compressed", tmp_path / "damaged"
    for directory in (compressed, damaged):
        directory.mkdir()
    for path in job["files"]:
        with open(path, "rb") as f:
            content = f.read()
        name = os.path.basename(path)
        (compressed / name).write_bytes(gzip.compress(content))
        (damaged / name).write_bytes(content)
    (damaged / "zz_truncated.tfrecord").write_bytes(content[: len(content) // 2])
    for directory, files in (
        (compressed, readers.RecordFiles(compression_type="GZIP")),
        (damaged, readers.RecordFiles(skip_corrupt_files=True)),
    ):
        batches = list(
            inference.saved_model_predictions(job["export"], f"{directory}/*", 4, files)
        )
        assert [v.decode() for batch, _ in batches for v in batch] == ids
        got = np.concatenate([scores for _, scores in batches])
        np.testing.assert_allclose(got, predictions, rtol=1e-5, atol=1e-6)
    with pytest.raises(readers.ReaderError, match="--compression_type=GZIP"):
        list(
            inference.saved_model_predictions(
                job["export"], f"{compressed}/*", 4, readers.RecordFiles()
            )
        )
