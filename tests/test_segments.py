"""The 2019 segment-level task: segment batches from rated and unrated
records, evaluation on rated pairs, the submission and its mAP@N."""

import dataclasses
import io

import numpy as np
import pytest
import tensorflow as tf

import common
import eval_util
import generate_data
import inference
import quantization
import readers
from model_testing import tiny_config

SIZES = (6, 2)
NUM_CLASSES = 6


def frames_of(num_frames, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(num_frames, sum(SIZES)), dtype=np.uint8)


def record(video_id, frames, ratings=()):
    """A frame-level SequenceExample; ratings: [(class, start, score)]."""
    lists = {}
    edges = np.cumsum((0,) + SIZES)
    for name, lo, hi in zip(("rgb", "audio"), edges[:-1], edges[1:]):
        lists[name] = tf.train.FeatureList(
            feature=[
                tf.train.Feature(bytes_list=tf.train.BytesList(value=[row.tobytes()]))
                for row in frames[:, lo:hi]
            ]
        )
    context = {
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[video_id.encode()]))
    }
    if ratings:
        context.update(generate_data.segment_rating_features(tf, ratings))
    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list=lists),
    ).SerializeToString()


def write(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for serialized in records:
            writer.write(serialized)
    return str(path)


def segment_model(name, **body):
    """A tiny model of `name` for these records (30 frames); body overrides."""
    config = dataclasses.replace(
        tiny_config(name, max_frames=30), feature_sizes=SIZES, num_classes=NUM_CLASSES
    )
    if body:
        config = dataclasses.replace(
            config, body=dataclasses.replace(config.body, **body)
        )
    return common.build_model(config)


def reader(mode, max_frames=30):
    return readers.YT8MFrameFeatureReader(
        num_classes=NUM_CLASSES,
        feature_sizes=SIZES,
        max_frames=max_frames,
        segment_mode=mode,
    )


def collect(dataset):
    batches = list(common.explained_batches(dataset, "test"))
    return {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}


VIDEOS = {
    "a": (23, [(3, 5, 1.0), (4, 5, 0.0), (3, 20, 1.0), (3, 5, 1.0)]),
    "b": (3, [(1, 0, 1.0)]),  # shorter than one segment
    "c": (12, [(2, 10, 0.0), (5, 0, 1.0)]),
}


@pytest.fixture
def rated_file(tmp_path):
    return write(
        tmp_path / "rated.tfrecord",
        [record(v, frames_of(n, i), r) for i, (v, (n, r)) in enumerate(VIDEOS.items())],
    )


def test_rated_segments_value_by_value(rated_file):
    got = collect(reader("rated").dataset(rated_file, batch_size=2))
    assert got["video_ids"].tolist() == [b"a:5", b"a:20", b"b:0", b"c:0", b"c:10"]
    np.testing.assert_array_equal(got["num_frames"], [5, 3, 3, 5, 2])
    labels, weights = np.zeros((5, NUM_CLASSES)), np.zeros((5, NUM_CLASSES))
    for row, (cls, score) in enumerate([(3, 1), (3, 1), (1, 1), (5, 1), (2, 0)]):
        labels[row, cls], weights[row, cls] = score, 1
    weights[0, 4] = 1  # "a:5" is rated for class 4 too, absent
    np.testing.assert_array_equal(got["labels"], labels)
    np.testing.assert_array_equal(got["label_weights"], weights)
    assert got["video_matrix"].shape == (5, 5, sum(SIZES))
    for row, (video, start) in enumerate(
        [("a", 5), ("a", 20), ("b", 0), ("c", 0), ("c", 10)]
    ):
        index = list(VIDEOS).index(video)
        frames = frames_of(VIDEOS[video][0], index)[start : start + 5]
        expected = np.zeros((5, sum(SIZES)), np.float32)
        expected[: len(frames)] = quantization.dequantize(frames)
        np.testing.assert_allclose(got["video_matrix"][row], expected, rtol=1e-6)


def test_every_segment_of_every_video(rated_file):
    got = collect(reader("every").dataset(rated_file, batch_size=4))
    assert got["video_ids"].tolist() == [
        b"a:0", b"a:5", b"a:10", b"a:15", b"a:20", b"b:0", b"c:0", b"c:5", b"c:10"
    ]  # fmt: skip
    np.testing.assert_array_equal(got["num_frames"], [5, 5, 5, 5, 3, 3, 5, 5, 2])
    assert "labels" not in got


def test_a_rating_past_the_last_frame_names_the_record(tmp_path):
    path = write(
        tmp_path / "bad.tfrecord",
        [record("fine", frames_of(10, 0), [(1, 5, 1.0)]),
         record("late", frames_of(10, 1), [(1, 10, 1.0)])],
    )  # fmt: skip
    with pytest.raises(readers.ReaderError) as error:
        collect(reader("rated").dataset(path, batch_size=4))
    message = str(error.value)
    assert "starts past the last frame" in message and "late" in message
    assert "10" in message


def test_records_without_ratings_are_refused_for_segment_eval(tmp_path):
    path = write(tmp_path / "plain.tfrecord", [record("x", frames_of(10, 0))])
    with pytest.raises(readers.ReaderError, match="no segment ratings"):
        reader("rated").dataset(path, batch_size=2)


@pytest.mark.parametrize(
    "model, body",
    [
        ("FrameLevelLogisticModel", None),
        ("LstmModel", None),
        ("DbofModel", None),
        ("DCGNModel", None),
        ("DCGNModel", {"dcgn_shots": 9}),
    ],
)
def test_every_model_scores_segments_as_the_same_frames_padded(rated_file, model, body):
    net = segment_model(model, **(body or {}))
    got = collect(reader("rated").dataset(rated_file, batch_size=8))
    batch = {k: tf.constant(v) for k, v in got.items() if k != "label_weights"}
    segment = net(batch, training=False)["predictions"].numpy()
    padded = dict(batch)
    padded["video_matrix"] = tf.pad(batch["video_matrix"], [[0, 0], [0, 25], [0, 0]])
    whole = net(padded, training=False)["predictions"].numpy()
    assert segment.shape == (5, NUM_CLASSES) and np.all(np.isfinite(segment))
    np.testing.assert_allclose(segment, whole, rtol=1e-5, atol=1e-6)


def reference_gap(predictions, labels, top_k=20):
    """Pooled top-k GAP by a plain loop."""
    pairs = []
    for row, label in zip(predictions, labels):
        top = sorted(range(len(row)), key=lambda c: (-row[c], c))[:top_k]
        pairs += [(row[c], label[c] > 0) for c in top]
    pairs.sort(key=lambda p: -p[0])
    found, total = 0, 0.0
    for rank, (_, positive) in enumerate(pairs, 1):
        if positive:
            found += 1
            total += found / rank
    return total / max(1, int(np.sum(labels > 0)))


def test_segment_evaluation_counts_only_rated_pairs(rated_file):
    model = segment_model("FrameLevelLogisticModel")
    dataset = reader("rated").dataset(rated_file, batch_size=2)
    metrics = common.evaluate(model, dataset)
    got = collect(reader("rated").dataset(rated_file, batch_size=2))
    rows = []
    for i in range(len(got["video_ids"])):
        one = {
            k: tf.constant(got[k][i : i + 1])
            for k in ("video_ids", "video_matrix", "num_frames")
        }
        rows.append(model(one, training=False)["predictions"].numpy()[0])
    masked = np.stack(rows) * got["label_weights"]
    assert metrics["num_examples"] == 5
    assert metrics["gap"] == pytest.approx(
        reference_gap(masked, got["labels"]), abs=1e-9
    )
    assert metrics["gap"] == pytest.approx(
        eval_util.calculate_gap(masked, got["labels"]), abs=1e-12
    )


def test_map_at_n_of_a_hand_ranked_submission():
    rated = {
        ("v:0", 1): 1.0, ("v:5", 1): 0.0, ("w:0", 1): 1.0, ("w:5", 1): 1.0,
        ("v:0", 2): 0.0, ("w:5", 2): 1.0,
        ("v:5", 3): 0.0,  # class 3 has no positive
    }  # fmt: skip
    submission = {
        # ranked: w:0 (+), x:0 (unrated, skipped), v:5 (-), v:0 (+); w:5 missed
        1: ["w:0", "x:0", "v:5", "v:0"],
        2: ["v:0", "w:5"],  # - then +
        3: ["v:5"],
    }
    # class 1: (1/1 + 2/3) / 3 positives; class 2: (1/2) / 1
    expected = {1: (1 + 2 / 3) / 3, 2: 0.5}
    mean_ap, aps = eval_util.segment_map_at_n(submission, rated)
    assert aps == pytest.approx(expected)
    assert mean_ap == pytest.approx((expected[1] + expected[2]) / 2)
    # top_n=2 keeps w:0 and x:0 of class 1: 1/3; class 2 unchanged.
    mean_ap, aps = eval_util.segment_map_at_n(submission, rated, top_n=2)
    assert aps == pytest.approx({1: 1 / 3, 2: 0.5})


def test_segment_csv_keeps_the_best_per_class_within_bounds():
    ids = [f"v:{5 * i}".encode() for i in range(6)]
    scores = np.array(
        [[0.9, 0.1, 0.5], [0.2, 0.8, 0.5], [0.7, 0.3, 0.5],
         [0.1, 0.95, 0.1], [0.9, 0.2, 0.4], [0.3, 0.6, 0.9]],
        np.float32,
    )  # fmt: skip
    batches = [(ids[:4], scores[:4]), (ids[4:], scores[4:])]
    out = io.StringIO()
    scored = inference.write_segment_csv(
        iter(batches), out, np.array([0, 2]), top_k=1, max_pred=2
    )
    assert scored == 6
    # Each segment offers its best of classes 0 and 2; class 1 is not listed.
    # Class 0 offers: v:0 .9, v:5 .2, v:10 .7, v:15 .1, v:20 .9; v:25 offers 2.
    # The best two, equal scores in input order: v:0, v:20.
    # Class 2 offers: v:5? no (.2 < .5: offers 2 .5), v:25 .9.
    assert out.getvalue().splitlines() == [
        "Class,Segments",
        "0,v:0 v:20",
        "2,v:25 v:5",
    ]


def test_video_csv_rows_are_the_starters_bytes():
    # The starter's format_lines, written out: top_k by score, "%i %g" pairs.
    rng = np.random.default_rng(4)
    predictions = rng.random((5, 50)).astype(np.float32)
    classes, scores = eval_util.top_k_indices(predictions, 20)
    for video_id, row, row_classes, row_scores in zip(
        [b"abc", b"x1", b"Zz9", b"q", b"12"], predictions, classes, scores
    ):
        top = sorted(np.argpartition(row, -20)[-20:], key=lambda c: -row[c])
        starter = (
            video_id.decode()
            + ","
            + " ".join("%i %g" % (c, row[c]) for c in top)
            + "\n"
        )
        assert inference.format_row(video_id, row_classes, row_scores) == starter
