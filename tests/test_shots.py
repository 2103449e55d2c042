"""shots.py: the shot stage, stored and computed, through common.make_dataset."""

import os

import numpy as np
import pytest
import tensorflow as tf
import threadpoolctl

import cli
import common
import configs
import precompute_shots
import readers
from test_readers import FRAME, _collect, _raw_records, _write


def dcgn_config(dcgn_shots, dcgn_kts_penalty=0.0, max_frames=300):
    return configs.ModelConfig(
        model="DCGNModel",
        frame_features=True,
        feature_names=configs.FRAME_FEATURE_NAMES,
        feature_sizes=configs.FEATURE_SIZES,
        max_frames=max_frames,
        num_classes=configs.NUM_CLASSES,
        body=configs.DCGNConfig(
            dcgn_levels=2,
            dcgn_shots=dcgn_shots,
            dcgn_kts_penalty=dcgn_kts_penalty,
        ),
    )


def batches(pattern, config, batch_size=4):
    return common.make_dataset(config, pattern, batch_size)


def _check_boundaries(bounds, num_frames, num_shots):
    assert bounds.shape == (len(num_frames), num_shots + 1)
    assert bounds.dtype == np.int32
    assert np.all(bounds[:, 0] == 0)
    assert np.all(np.diff(bounds, axis=1) >= 0)
    np.testing.assert_array_equal(bounds[:, -1], num_frames)


def test_shots_from_stored_context_feature(tmp_path):
    stored = []
    records = []
    for i, (_, r) in enumerate(_raw_records(FRAME)):
        seq = tf.train.SequenceExample.FromString(r)
        n = len(seq.feature_lists.feature_list["rgb"].feature)
        bounds = [0, 10 + i, 60, 100 + i, n]
        seq.context.feature["shot_boundaries"].int64_list.value.extend(bounds)
        stored.append(bounds)
        records.append(seq)
    pattern = _write(tmp_path / "s.tfrecord", records)
    ds = batches(pattern, dcgn_config(4), batch_size=3)
    assert ds.element_spec["shot_boundaries"].shape.as_list() == [None, 5]
    got = _collect(ds)
    np.testing.assert_array_equal(got["shot_boundaries"], np.array(stored))
    _check_boundaries(got["shot_boundaries"], got["num_frames"], 4)
    # A shorter max_frames cuts the stored boundaries to the kept frames.
    got = _collect(batches(pattern, dcgn_config(4, max_frames=80)))
    np.testing.assert_array_equal(
        got["shot_boundaries"], np.array([[0, 10 + i, 60, 80, 80] for i in range(4)])
    )
    with pytest.raises(readers.ReaderError) as err:
        batches(pattern, dcgn_config(8), batch_size=2)
    assert "4 shots" in str(err.value) and "--dcgn_shots=4" in str(err.value)


def test_the_reader_alone_yields_no_shots():
    config = dcgn_config(3)
    reader = common.make_reader(config)
    assert "shot_boundaries" not in reader.dataset(FRAME, 2).element_spec
    assert "shot_boundaries" in common.make_dataset(config, FRAME, 2).element_spec


def test_shots_computed_and_precomputed_agree(tmp_path):
    config = dcgn_config(3, 0.5, max_frames=150)
    computed = _collect(batches(FRAME, config))
    _check_boundaries(computed["shot_boundaries"], computed["num_frames"], 3)
    written, videos = precompute_shots.add_shot_boundaries_to_records(
        FRAME, str(tmp_path / "out"), 3, dcgn_kts_penalty=0.5, max_frames=150
    )
    assert videos == len(computed["video_ids"])
    assert sorted(os.path.basename(p) for p in written) == sorted(
        os.path.basename(p) for p in tf.io.gfile.glob(FRAME)
    )
    # Everything but the new context features is unchanged.
    for (_, before), (_, after) in zip(
        _raw_records(FRAME), _raw_records(str(tmp_path / "out" / "*"))
    ):
        a = tf.train.SequenceExample.FromString(after)
        assert a.context.feature["shot_kts_penalty"].float_list.value == [0.5]
        del a.context.feature["shot_boundaries"]
        del a.context.feature["shot_kts_penalty"]
        assert a == tf.train.SequenceExample.FromString(before)
    copies = str(tmp_path / "out" / "*.tfrecord")
    stored = _collect(batches(copies, config))
    np.testing.assert_array_equal(
        stored["shot_boundaries"], computed["shot_boundaries"]
    )
    np.testing.assert_array_equal(stored["video_matrix"], computed["video_matrix"])
    # Shots of another penalty would differ from what the model computes.
    with pytest.raises(readers.ReaderError) as err:
        batches(copies, dcgn_config(3, 1.0, max_frames=150))
    assert "--dcgn_kts_penalty" in str(err.value)
    assert "precompute_shots.py --dcgn_kts_penalty=1" in str(err.value)


def test_precompute_shares_skips_and_workers(tmp_path):
    """Two machines' shares cover every file once; a rerun skips what is
    written; two worker processes write what one does."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    raw = [r for _, r in _raw_records(FRAME)]
    for i in range(4):
        _write(inputs / f"train{i}.tfrecord", raw[i : i + 1])
    pattern = str(inputs / "*.tfrecord")
    out = tmp_path / "out"
    shares = [
        precompute_shots.add_shot_boundaries_to_records(
            pattern, str(out), 3, shard_index=i, num_shards=2
        )[0]
        for i in range(2)
    ]
    assert [sorted(os.path.basename(p) for p in s) for s in shares] == [
        ["train0.tfrecord", "train2.tfrecord"],
        ["train1.tfrecord", "train3.tfrecord"],
    ]
    assert precompute_shots.add_shot_boundaries_to_records(pattern, str(out), 3) == (
        [],
        0,
    )
    parallel = tmp_path / "parallel"
    written, videos = precompute_shots.add_shot_boundaries_to_records(
        pattern, str(parallel), 3, num_workers=2
    )
    assert (len(written), videos) == (4, 4)
    for i in range(4):
        name = f"train{i}.tfrecord"
        # Compared as messages: a context map's serialised order may differ.
        one, two = (
            [
                tf.train.SequenceExample.FromString(r)
                for _, r in _raw_records(str(d / name))
            ]
            for d in (out, parallel)
        )
        assert one == two
    with pytest.raises(cli.UsageError, match="--shard_index=2"):
        precompute_shots.add_shot_boundaries_to_records(
            pattern, str(out), 3, shard_index=2, num_shards=2
        )


def test_shots_in_the_pipeline_hold_numpy_blas_to_one_thread():
    batches(FRAME, dcgn_config(4))
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert blas and all(i["num_threads"] == 1 for i in blas)
