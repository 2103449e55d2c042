"""readers.py against real YouTube-8M records (tests/data, see its README).

Expected values are decoded here by hand from the record bytes (protobuf +
numpy.frombuffer), independently of the reader's tf.io parsing.
"""

import logging
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

import reader_errors
import quantization
import readers
import tfrecord_files

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
FRAME = os.path.join(DATA, "frame2018", "*.tfrecord")
VIDEO2018 = os.path.join(DATA, "video2018", "*.tfrecord")
VIDEO2017 = os.path.join(DATA, "video2017", "*.tfrecord")
TEST2017 = os.path.join(DATA, "test2017", "*.tfrecord")


def _raw_records(pattern):
    """[(file, serialized)] in sorted file order, read with plain TF I/O."""
    out = []
    for path in sorted(tf.io.gfile.glob(pattern)):
        out.extend((path, r.numpy()) for r in tf.data.TFRecordDataset(path))
    return out


def _dequant(x):
    return x.astype(np.float64) * 4.0 / 255.0 + 4.0 / 512.0 - 2.0


def _hand_frame(serialized, names=("rgb", "audio"), id_key="id"):
    seq = tf.train.SequenceExample.FromString(serialized)
    ctx = seq.context.feature
    feats = [
        np.stack(
            [
                np.frombuffer(f.bytes_list.value[0], np.uint8)
                for f in seq.feature_lists.feature_list[n].feature
            ]
        )
        for n in names
    ]
    return {
        "id": ctx[id_key].bytes_list.value[0],
        "labels": sorted(ctx["labels"].int64_list.value),
        "frames": np.concatenate(feats, axis=1),
    }  # [T, D] uint8


def _hand_video(serialized, id_key):
    ex = tf.train.Example.FromString(serialized)
    f = ex.features.feature
    return {
        "id": f[id_key].bytes_list.value[0],
        "labels": sorted(f["labels"].int64_list.value) if "labels" in f else [],
        "features": np.concatenate(
            [
                np.array(f["mean_rgb"].float_list.value, np.float32),
                np.array(f["mean_audio"].float_list.value, np.float32),
            ]
        ),
    }


def _collect(dataset):
    """Concatenates every batch of a dataset into numpy arrays."""
    batches = [{k: v.numpy() for k, v in b.items()} for b in dataset]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _write(path, records):
    with tf.io.TFRecordWriter(str(path)) as w:
        for r in records:
            w.write(r if isinstance(r, bytes) else r.SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def frame_records():
    return [_hand_frame(r) for _, r in _raw_records(FRAME)]


# ------------------------------------------------------------ frame level ---


def test_frame_eval_matches_bytes_in_order_with_partial_batch(frame_records):
    reader = readers.YT8MFrameFeatureReader()
    ds = reader.dataset(FRAME, batch_size=3)
    spec = ds.element_spec
    assert spec["video_matrix"].shape.as_list() == [None, 300, 1152]
    assert spec["labels"].shape.as_list() == [None, 3862]
    assert spec["num_frames"].dtype == tf.int32
    assert "shot_boundaries" not in spec
    batches = list(ds)
    assert [int(b["num_frames"].shape[0]) for b in batches] == [3, 1]
    got = _collect(batches)
    assert list(got["video_ids"]) == [r["id"] for r in frame_records]
    for i, rec in enumerate(frame_records):
        n = len(rec["frames"])
        assert got["num_frames"][i] == n
        assert list(np.flatnonzero(got["labels"][i])) == rec["labels"]
        assert set(np.unique(got["labels"][i])) <= {0.0, 1.0}
        np.testing.assert_allclose(
            got["video_matrix"][i, :n], _dequant(rec["frames"]), atol=1e-6
        )
        assert np.all(got["video_matrix"][i, n:] == 0.0)
    # Same order again: deterministic.
    again = _collect(reader.dataset(FRAME, batch_size=3))
    assert list(again["video_ids"]) == list(got["video_ids"])
    np.testing.assert_array_equal(again["video_matrix"], got["video_matrix"])


def test_frame_max_frames_truncates(frame_records):
    reader = readers.YT8MFrameFeatureReader(max_frames=136)
    got = _collect(reader.dataset(FRAME, batch_size=8))
    assert got["video_matrix"].shape == (4, 136, 1152)
    for i, rec in enumerate(frame_records):
        n = min(len(rec["frames"]), 136)
        assert got["num_frames"][i] == n
        np.testing.assert_allclose(
            got["video_matrix"][i, :n], _dequant(rec["frames"][:n]), atol=1e-6
        )
        assert np.all(got["video_matrix"][i, n:] == 0.0)
    # 1805 (137 frames) and 2495 (138) are cut, 2072's first (135) is not.
    assert sorted(got["num_frames"]) == [135, 136, 136, 136]


def test_frame_single_feature_and_uint8_output(frame_records):
    reader = readers.YT8MFrameFeatureReader(
        feature_names=("audio",), feature_sizes=(128,), dequantize=False
    )
    got = _collect(reader.dataset(FRAME, batch_size=4))
    assert got["video_matrix"].dtype == np.uint8
    for i, rec in enumerate(frame_records):
        n = len(rec["frames"])
        np.testing.assert_array_equal(
            got["video_matrix"][i, :n], rec["frames"][:, 1024:]
        )
        assert np.all(got["video_matrix"][i, n:] == 0)
    # The float reader's frames are the uint8 ones dequantised, bit for bit
    # (its compiled assembly must not round differently), zero past the end.
    floats = _collect(
        readers.YT8MFrameFeatureReader(
            feature_names=("audio",), feature_sizes=(128,)
        ).dataset(FRAME, batch_size=4)
    )["video_matrix"]
    for i, rec in enumerate(frame_records):
        n = len(rec["frames"])
        np.testing.assert_array_equal(
            floats[i, :n], quantization.dequantize(got["video_matrix"][i, :n])
        )
        assert np.all(floats[i, n:] == 0.0)


def test_frame_training_shapes_static_and_repeats(frame_records):
    reader = readers.YT8MFrameFeatureReader(max_frames=50)
    ds = reader.dataset(
        FRAME,
        batch_size=3,
        training=True,
        num_epochs=2,
        num_readers=2,
        shuffle_buffer=8,
        seed=3,
    )
    spec = ds.element_spec
    assert spec["video_matrix"].shape.as_list() == [3, 50, 1152]
    assert spec["labels"].shape.as_list() == [3, 3862]
    assert spec["video_ids"].shape.as_list() == [3]
    batches = list(ds)
    assert len(batches) == 8 // 3  # 2 epochs x 4 videos, remainder dropped
    ids = np.concatenate([b["video_ids"].numpy() for b in batches])
    assert set(ids) <= {r["id"] for r in frame_records}
    assert all(np.all(b["num_frames"].numpy() == 50) for b in batches)


# ------------------------------------------------------------ video level ---


@pytest.mark.parametrize(
    "pattern,id_key,num_classes",
    [
        (VIDEO2018, "id", 3862),
        (VIDEO2017, "video_id", 4716),
        (TEST2017, "video_id", 4716),
    ],
)
@pytest.mark.parametrize("names", [("rgb", "audio"), ("mean_rgb", "mean_audio")])
def test_video_level_matches_bytes(pattern, id_key, num_classes, names):
    expected = [_hand_video(r, id_key) for _, r in _raw_records(pattern)]
    reader = readers.YT8MAggregatedFeatureReader(
        num_classes=num_classes, feature_names=names
    )
    ds = reader.dataset(pattern, batch_size=8)
    assert ds.element_spec["video_matrix"].shape.as_list() == [None, 1152]
    batches = list(ds)
    assert [int(b["num_frames"].shape[0]) for b in batches] == [8, 8, 4]
    got = _collect(batches)
    assert list(got["video_ids"]) == [e["id"] for e in expected]
    assert np.all(got["num_frames"] == 1)
    np.testing.assert_array_equal(
        got["video_matrix"], np.stack([e["features"] for e in expected])
    )
    for row, e in zip(got["labels"], expected):
        assert list(np.flatnonzero(row)) == e["labels"]
    if pattern == TEST2017:
        assert not got["labels"].any()
    else:
        assert got["labels"].sum() > 20


# --------------------------------------------------- serving, sharding ---


def test_parse_serialized_equals_dataset_both_levels():
    for reader, pattern in [
        (readers.YT8MFrameFeatureReader(max_frames=200), FRAME),
        (readers.YT8MAggregatedFeatureReader(num_classes=4716), VIDEO2017),
    ]:
        from_ds = _collect(reader.dataset(pattern, batch_size=5))
        serialized = [r for _, r in _raw_records(pattern)]
        # A fresh reader with the schema a serving signature gets: either id
        # key, no stored shots.
        fresh = type(reader)(
            num_classes=reader.num_classes, max_frames=reader.max_frames
        )
        _, schema = reader.inspect(pattern)
        serve = tf.function(
            lambda s: fresh.parse(s, schema.for_serving()),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
        out = {k: v.numpy() for k, v in serve(tf.constant(serialized)).items()}
        assert set(out) == set(from_ds)
        for key in out:
            np.testing.assert_array_equal(out[key], from_ds[key], err_msg=key)


def _dataset_ids(reader, pattern, batch, contexts, training):
    seen = []
    for ctx in contexts:
        ds = reader.dataset(
            pattern,
            batch_size=batch,
            training=training,
            num_epochs=1,
            input_context=ctx,
        )
        seen.append([i for b in ds for i in b["video_ids"].numpy()])
    return seen


@pytest.mark.parametrize(
    "pattern,training",
    [(FRAME, False), (FRAME, True), (VIDEO2018, False), (VIDEO2018, True)],
)
def test_input_context_covers_every_record_once(pattern, training):
    # 3 frame files >= 2 pipelines: by file; 1 video-level file: by record.
    reader = (
        readers.YT8MFrameFeatureReader(max_frames=5)
        if pattern == FRAME
        else readers.YT8MAggregatedFeatureReader()
    )
    contexts = [
        tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=i, num_replicas_in_sync=2
        )
        for i in range(2)
    ]
    # Global batch 2 -> 1 per replica, so drop_remainder drops nothing.
    seen = _dataset_ids(reader, pattern, 2, contexts, training)
    all_ids = [r for _, r in _raw_records(pattern)]
    assert all(seen)
    assert sorted(seen[0] + seen[1]) == sorted(
        _hand_video(r, "id")["id"] if pattern == VIDEO2018 else _hand_frame(r)["id"]
        for r in all_ids
    )
    if pattern == FRAME:  # whole files per pipeline
        assert sorted(seen[0]) != sorted(seen[1])


# ------------------------------------------------------------------ errors ---


def test_error_no_file_matches(tmp_path):
    pattern = str(tmp_path / "nothing*.tfrecord")
    with pytest.raises(readers.ReaderError) as err:
        readers.YT8MFrameFeatureReader().dataset(pattern, 2)
    assert pattern in str(err.value) and "data pattern" in str(err.value)


def test_error_wrong_level():
    with pytest.raises(readers.ReaderError) as err:
        readers.YT8MFrameFeatureReader().dataset(VIDEO2018, 2)
    msg = str(err.value)
    assert "video-level" in msg and "--frame_features" in msg
    assert "mean_rgb" in msg and "Drop" in msg
    with pytest.raises(readers.ReaderError) as err:
        readers.YT8MAggregatedFeatureReader().dataset(FRAME, 2)
    msg = str(err.value)
    assert "frame-level" in msg and "Pass --frame_features" in msg


def test_error_missing_feature_lists_present_ones():
    with pytest.raises(readers.ReaderError) as err:
        readers.YT8MFrameFeatureReader(
            feature_names=("rgb", "inception"), feature_sizes=(1024, 2048)
        ).dataset(FRAME, 2)
    msg = str(err.value)
    assert "inception" in msg and "audio, rgb" in msg
    with pytest.raises(readers.ReaderError) as err:
        readers.YT8MAggregatedFeatureReader(
            feature_names=("mean_inception",), feature_sizes=(1024,)
        ).dataset(VIDEO2018, 2)
    assert "mean_audio, mean_rgb" in str(err.value)


def test_error_wrong_feature_size():
    with pytest.raises(readers.ReaderError) as err:
        readers.YT8MFrameFeatureReader(feature_sizes=(1024, 100)).dataset(FRAME, 2)
    msg = str(err.value)
    assert "'audio'" in msg and "128" in msg and "100" in msg
    assert "--feature_sizes=1024,128" in msg
    with pytest.raises(readers.ReaderError) as err:
        readers.YT8MAggregatedFeatureReader(feature_sizes=(1000, 128)).dataset(
            VIDEO2018, 2
        )
    msg = str(err.value)
    assert "mean_rgb" in msg and "1000" in msg and "--feature_sizes=1024,128" in msg


def test_error_wrong_frame_size_in_later_record(tmp_path):
    raw = [r for _, r in _raw_records(FRAME)]
    bad = tf.train.SequenceExample.FromString(raw[1])
    for f in bad.feature_lists.feature_list["audio"].feature:
        f.bytes_list.value[0] = f.bytes_list.value[0][:100]
    pattern = _write(tmp_path / "x.tfrecord", [raw[0], bad])
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        list(readers.YT8MFrameFeatureReader().dataset(pattern, 2))
    explained = str(reader_errors.explain_data_error(err.value, pattern))
    assert "feature audio expects 128" in explained and "100" in explained
    assert (
        "rYHA" in explained
        and "{{node" not in explained
        and "--feature_sizes" in explained
    )


def test_error_label_too_large_first_record_eager():
    with pytest.raises(readers.ReaderError) as err:
        readers.YT8MFrameFeatureReader(num_classes=100).dataset(FRAME, 2)
    msg = str(err.value)
    assert "B7Dh" in msg and "[170]" in msg and "--num_classes" in msg


def test_error_label_too_large_later_record_names_id(tmp_path):
    raw = [r for _, r in _raw_records(VIDEO2018)][:4]
    bad = tf.train.Example.FromString(raw[2])
    bad.features.feature["labels"].int64_list.value.append(3862)
    bad_id = bad.features.feature["id"].bytes_list.value[0].decode()
    pattern = _write(tmp_path / "x.tfrecord", [raw[0], raw[1], bad, raw[3]])
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        list(readers.YT8MAggregatedFeatureReader().dataset(pattern, 4))
    assert bad_id in str(err.value)
    explained = reader_errors.explain_data_error(err.value, pattern)
    assert isinstance(explained, readers.ReaderError)
    assert bad_id in str(explained) and "--num_classes" in str(explained)
    assert "3862" in str(explained) and "{{node" not in str(explained)


def _truncated_copy(tmp_path, name, keep_bytes):
    src = sorted(tf.io.gfile.glob(FRAME))[1]  # clippedtrain2072: 2 records
    data = open(src, "rb").read()
    path = tmp_path / name
    path.write_bytes(data[:keep_bytes])
    return str(path), src


def test_error_truncated_file_named(tmp_path):
    good = tmp_path / "a_good.tfrecord"
    good.write_bytes(open(sorted(tf.io.gfile.glob(FRAME))[0], "rb").read())
    bad, _ = _truncated_copy(tmp_path, "b_bad.tfrecord", 300000)
    pattern = str(tmp_path / "*.tfrecord")
    [(found, reason)] = reader_errors.find_corrupt_files(pattern)
    assert found == bad and "truncated record" in reason
    assert tfrecord_files.check_tfrecord_framing(bad) is not None
    assert tfrecord_files.check_tfrecord_framing(str(good)) is None
    with pytest.raises(tf.errors.DataLossError) as err:
        list(readers.YT8MFrameFeatureReader(max_frames=5).dataset(pattern, 1))
    explained = reader_errors.explain_data_error(err.value, pattern)
    assert bad in str(explained) and str(good) not in str(explained)
    # TensorFlow's internals stay out of the one line the user reads.
    for internal in ("function_node", "[Op:", "name:"):
        assert internal in str(err.value) and internal not in str(explained)
    # A file corrupt from its first record fails while the dataset is built.
    first_bad, _ = _truncated_copy(tmp_path, "c.tfrecord", 1000)
    with pytest.raises(readers.ReaderError) as err:
        readers.YT8MFrameFeatureReader().dataset(first_bad, 1)
    assert first_bad in str(err.value) and "skip_corrupt_files" in str(err.value)


def test_skip_corrupt_files_warns_with_count(tmp_path, caplog):
    raw = _raw_records(FRAME)
    good = tmp_path / "a_good.tfrecord"
    good.write_bytes(open(raw[0][0], "rb").read())
    truncated, _ = _truncated_copy(tmp_path, "b_trunc.tfrecord", 300000)
    # A bit flip inside the second record's payload: framing intact.
    src = sorted(tf.io.gfile.glob(FRAME))[1]
    data = bytearray(open(src, "rb").read())
    data[-5000] ^= 0xFF
    flipped = tmp_path / "c_flip.tfrecord"
    flipped.write_bytes(bytes(data))
    reader = readers.YT8MFrameFeatureReader(max_frames=5, skip_corrupt_files=True)
    with caplog.at_level(logging.WARNING):
        got = _collect(reader.dataset(str(tmp_path / "*.tfrecord"), 2))
    text = caplog.text
    assert "skipping 1 of 3 files" in text and truncated in text
    first_of_2072 = _hand_frame(raw[1][1])["id"]
    # good file + first record of the flipped file (before the bad record).
    assert list(got["video_ids"]) == [_hand_frame(raw[0][1])["id"], first_of_2072]


def test_plain_baseline_pipeline_reads_what_the_reader_reads():
    # benchmarks/bench_readers.py's baseline must do the reader's work, or
    # the ratio it reports means nothing.
    sys.path.insert(
        0, os.path.join(os.path.dirname(os.path.dirname(DATA)), "benchmarks")
    )
    import plain_reader  # noqa: E402

    for dequantize in (True, False):
        ours = _collect(
            readers.YT8MFrameFeatureReader(dequantize=dequantize).dataset(FRAME, 5)
        )
        plain = _collect(
            plain_reader.plain_frame_dataset(
                tfrecord_files.match_files(FRAME), 5, 3862, dequantize=dequantize
            )
        )
        assert ours.keys() == plain.keys()
        for key in ours:
            np.testing.assert_array_equal(ours[key], plain[key], err_msg=key)
