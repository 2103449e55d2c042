"""Bad input through train.py, eval.py and inference.py: each case must end
with exit status 1 and a one-line message that names the file, flag or record
and says what to do, never a Python traceback.

Reader-level checks live in test_readers.py, and the unknown model, the
missing data and another model's train_dir are in test_programs.py; these are
the rest, as a user meets them. The programs start TensorFlow, which takes
seconds, so one fixture runs every case concurrently and each test checks its
own case's result.
"""

import concurrent.futures
import json
import os
import shutil
import socket

import numpy as np
import pytest
import tensorflow as tf

from program_testing import run_program, write_tiny_data

# Runs the programs in subprocesses or trains models: the full suite only.
pytestmark = pytest.mark.slow

NUM_CLASSES = 40
FRAME_FLAGS = [
    "--frame_features",
    "--model=FrameLevelLogisticModel",
    "--feature_sizes=8,4",
    "--max_frames=40",
    f"--num_classes={NUM_CLASSES}",
    "--batch_size=4",
    "--max_steps=2",
]
VIDEO_FLAGS = [
    "--model=LogisticModel",
    "--feature_sizes=8,4",
    f"--num_classes={NUM_CLASSES}",
    "--batch_size=4",
    "--max_steps=2",
]


def replaced(flags, **values):
    """`flags` with --name=value replaced for each name in `values`."""
    names = {f"--{name}=" for name in values}
    kept = [flag for flag in flags if flag.split("=")[0] + "=" not in names]
    return kept + [f"--{name}={value}" for name, value in values.items()]


def frame_record(video_id, labels, num_frames, sizes=(8, 4), audio_frames=None):
    rng = np.random.default_rng(len(video_id))
    counts = (num_frames, num_frames if audio_frames is None else audio_frames)
    lists = {
        name: tf.train.FeatureList(
            feature=[
                tf.train.Feature(
                    bytes_list=tf.train.BytesList(
                        value=[rng.integers(0, 256, size, np.uint8).tobytes()]
                    )
                )
                for _ in range(count)
            ]
        )
        for name, size, count in zip(("rgb", "audio"), sizes, counts)
    }
    if isinstance(video_id, str):
        video_id = video_id.encode()
    return tf.train.SequenceExample(
        context=tf.train.Features(
            feature={
                "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[video_id])),
                "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=labels)),
            }
        ),
        feature_lists=tf.train.FeatureLists(feature_list=lists),
    ).SerializeToString()


def video_record(video_id, labels, rgb, audio):
    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "id": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[video_id.encode()])
                ),
                "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=labels)),
                "mean_rgb": floats(rgb),
                "mean_audio": floats(audio),
            }
        )
    ).SerializeToString()


def write_records(path, records, compression_type=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(str(path), compression_type) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def make_cases(root):
    """{name: (program, args, expected substrings of stderr)}; writes the data."""
    data = root / "data"
    write_tiny_data(
        data,
        seed=7,
        num_train=16,
        num_validate=8,
        num_test=0,
    )
    frames = f"{data}/frame/train*.tfrecord"
    trained = root / "trained"
    run_program(
        "train.py",
        f"--train_dir={trained}",
        f"--train_data_pattern={frames}",
        *FRAME_FLAGS,
    )

    empty = write_records(root / "empty" / "train0.tfrecord", [])
    shards = sorted(tf.io.gfile.glob(frames))
    truncated_dir = root / "truncated"
    truncated_dir.mkdir()
    shutil.copy(shards[0], truncated_dir)
    truncated = str(truncated_dir / os.path.basename(shards[1]))
    content = open(shards[1], "rb").read()
    open(truncated, "wb").write(content[: len(content) - 100])
    flipped_dir = root / "flipped"
    flipped_dir.mkdir()
    flipped = str(flipped_dir / "validate.tfrecord")
    content = bytearray(open(f"{data}/frame/validate0000.tfrecord", "rb").read())
    content[-200] ^= 0xFF  # inside the last record's payload: framing intact
    open(flipped, "wb").write(bytes(content))
    not_records = root / "notes.txt"
    not_records.write_text("video,labels\nabc,1 2 3\n" * 20)

    good = frame_record("good0", [1, 2], 20)
    bad_label = write_records(
        root / "bad_label" / "train.tfrecord",
        [
            good,
            frame_record("good1", [3], 25),
            frame_record("good2", [4], 19),
            frame_record("vid_label99", [5, 99], 22),
        ],
    )
    no_frames = write_records(
        root / "no_frames" / "train.tfrecord",
        [
            good,
            frame_record("vid_empty", [3], 0),
            frame_record("good1", [4], 30),
            frame_record("good2", [5], 18),
        ],
    )
    unequal = write_records(
        root / "unequal" / "train.tfrecord",
        [good, frame_record("vid_unequal", [3], 30, audio_frames=20), good, good],
    )
    gzipped = write_records(
        root / "gzip" / "train.tfrecord",
        [good] * 8,
        compression_type="GZIP",
    )
    not_utf8 = write_records(
        root / "not_utf8" / "test.tfrecord",
        [frame_record("fine", [], 10), frame_record(b"bad\xff\xfeid", [], 10)],
    )
    locked = root / "locked"
    locked.mkdir()
    (locked / "train.lock").write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "token": "t"})
    )
    waiting = root / "waiting"
    waiting.mkdir()
    shutil.copy(trained / "model_config.json", waiting)
    rgb, audio = [0.1] * 8, [0.2] * 4
    not_finite = write_records(
        root / "not_finite" / "train.tfrecord",
        [
            video_record("v_ok", [1], rgb, audio),
            video_record("v_nan", [2], [0.1] * 7 + [float("nan")], audio),
            video_record("v_inf", [3], rgb, [0.2] * 3 + [float("inf")]),
            video_record("v_ok2", [4], rgb, audio),
        ],
    )

    def train(train_dir, pattern, flags=FRAME_FLAGS, *extra):
        return (
            "train.py",
            [f"--train_dir={root / train_dir}", f"--train_data_pattern={pattern}"]
            + list(flags)
            + list(extra),
        )

    return {
        "no_data_pattern": (
            *train("a", ""),
            ["--train_data_pattern is required"],
        ),
        "only_empty_files": (
            *train("b", empty),
            ["hold no records", empty],
        ),
        "eval_pattern_matches_nothing": (
            "eval.py",
            [
                f"--train_dir={trained}",
                f"--eval_data_pattern={root}/nowhere/*.tfrecord",
                "--run_once",
            ],
            ["No file matches", "nowhere", "--eval_data_pattern"],
        ),
        "truncated_shard": (
            *train("c", f"{truncated_dir}/*"),
            ["Corrupt or truncated", truncated, "--skip_corrupt_files"],
        ),
        "truncated_shard_skipped": (
            *train("c2", f"{truncated_dir}/*", FRAME_FLAGS, "--skip_corrupt_files"),
            ["skipping 1 of 2 files that are corrupt or truncated", truncated],
        ),
        "corrupt_record_in_eval": (
            "eval.py",
            [
                f"--train_dir={trained}",
                f"--eval_data_pattern={flipped}",
                "--run_once",
            ],
            ["Corrupt or truncated", flipped, "--skip_corrupt_files"],
        ),
        "inference_on_a_text_file": (
            "inference.py",
            [
                f"--saved_model_dir={trained}/export/step_2",
                f"--input_data_pattern={not_records}",
                f"--output_file={root / 'out.csv'}",
            ],
            ["Corrupt or truncated", str(not_records)],
        ),
        "wrong_feature_names": (
            *train("d", frames, FRAME_FLAGS, "--feature_names=rgb,sound"),
            ["sound not found", "audio, rgb", "--feature_names"],
        ),
        "wrong_feature_sizes": (
            *train("e", frames, replaced(FRAME_FLAGS, feature_sizes="8,6")),
            ["expected 6", "--feature_sizes=8,4"],
        ),
        "video_level_files_to_frame_model": (
            *train("f", f"{data}/video/train*"),
            ["is a video-level record", "--frame_features"],
        ),
        "video_level_files_to_inference_of_frame_model": (
            "inference.py",
            [
                f"--train_dir={trained}",
                f"--input_data_pattern={data}/video/validate*",
                f"--output_file={root / 'out.csv'}",
            ],
            ["is a video-level record", "--frame_features"],
        ),
        "label_out_of_range_in_a_later_record": (
            *train("g", bad_label),
            ["vid_label99", "99", "--num_classes"],
        ),
        "video_without_frames": (
            *train("h", no_frames),
            ["vid_empty", "no frames", no_frames],
        ),
        "nan_and_inf_features": (
            *train("i", not_finite, VIDEO_FLAGS),
            ["NaN or infinite", "v_nan", "v_inf", not_finite],
        ),
        "train_dir_of_other_feature_flags": (
            *train(
                "trained",
                frames,
                replaced(FRAME_FLAGS, feature_sizes="12", feature_names="rgb_audio"),
            ),
            ["other settings", "feature_names", "feature_sizes", "--start_new_model"],
        ),
        "frame_counts_differ_between_features": (
            *train("j", unequal),
            ["vid_unequal", "frame counts differ", "counts 30/20", unequal],
        ),
        "gzip_files_without_the_flag": (
            *train("k", gzipped),
            ["gzip-compressed", "--compression_type=GZIP", gzipped],
        ),
        "gzip_files_are_not_skipped_as_corrupt": (
            *train("k2", gzipped, FRAME_FLAGS, "--skip_corrupt_files"),
            ["gzip-compressed", "--compression_type=GZIP"],
        ),
        "gzip_flag_on_plain_files": (
            *train("k3", frames, FRAME_FLAGS, "--compression_type=GZIP"),
            ["not gzip-compressed", "drop that flag"],
        ),
        "a_directory_as_the_data_pattern": (
            *train("l", f"{data}/frame"),
            ["matches only directories", "--train_data_pattern", "frame/*.tfrecord"],
        ),
        "resume_with_another_batch_size": (
            *train("trained", frames, replaced(FRAME_FLAGS, batch_size=8, max_steps=4)),
            [
                "--batch_size: 4 in the run so far, 8 now",
                "--allow_changed_settings",
                "--start_new_model",
            ],
        ),
        "a_batch_larger_than_the_data": (
            *train("m", frames, replaced(FRAME_FLAGS, batch_size=1024)),
            ["no training step can run", "--batch_size=1024", "Lower --batch_size"],
        ),
        "a_second_trainer_on_one_train_dir": (
            *train("locked", frames),
            ["in use by train.py", f"pid {os.getpid()} on {socket.gethostname()}"],
        ),
        "an_id_that_is_not_utf8": (
            "inference.py",
            [
                f"--train_dir={trained}",
                f"--input_data_pattern={not_utf8}",
                f"--output_file={root / 'not_utf8.csv'}",
            ],
            ["not UTF-8", "bad\\xff\\xfeid", "fix the id"],
        ),
        "eval_waits_for_a_checkpoint_that_never_comes": (
            "eval.py",
            [
                f"--train_dir={waiting}",
                f"--eval_data_pattern={frames}",
                "--eval_timeout_secs=1",
            ],
            ["no checkpoint appeared", "--eval_timeout_secs=1"],
        ),
        "eval_of_a_dir_train_never_wrote": (
            "eval.py",
            [
                f"--train_dir={root / 'data'}",
                f"--eval_data_pattern={frames}",
                "--run_once",
            ],
            ["model_config.json not found", "--train_dir"],
        ),
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    cases = make_cases(root)

    def run(name):
        program, args, _ = cases[name]
        return name, run_program(program, *args, check=False)

    # Each run is mostly TensorFlow starting up; a few at a time overlap that.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = dict(pool.map(run, cases))
    return {
        "root": root,
        **{name: (outcomes[name], cases[name][2]) for name in cases},
    }


CASE_NAMES = [
    "no_data_pattern",
    "only_empty_files",
    "eval_pattern_matches_nothing",
    "truncated_shard",
    "corrupt_record_in_eval",
    "inference_on_a_text_file",
    "wrong_feature_names",
    "wrong_feature_sizes",
    "video_level_files_to_frame_model",
    "video_level_files_to_inference_of_frame_model",
    "label_out_of_range_in_a_later_record",
    "video_without_frames",
    "nan_and_inf_features",
    "train_dir_of_other_feature_flags",
    "eval_of_a_dir_train_never_wrote",
    "frame_counts_differ_between_features",
    "gzip_files_without_the_flag",
    "gzip_files_are_not_skipped_as_corrupt",
    "gzip_flag_on_plain_files",
    "a_directory_as_the_data_pattern",
    "resume_with_another_batch_size",
    "a_batch_larger_than_the_data",
    "a_second_trainer_on_one_train_dir",
    "an_id_that_is_not_utf8",
    "eval_waits_for_a_checkpoint_that_never_comes",
]


def test_skip_corrupt_files_trains_on_the_rest_with_a_warning_that_counts(results):
    result, expected = results["truncated_shard_skipped"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training step 2" in result.stdout
    warning = next(line for line in result.stderr.splitlines() if expected[0] in line)
    assert expected[1] in warning


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_refused_clearly(results, name):
    result, expected = results[name]
    assert result.returncode == 1, f"{name}: {result.stdout}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    # One line, the project's: no log line repeating it, no TensorFlow
    # internals in it.
    assert result.stderr.splitlines() == errors, result.stderr[-3000:]
    for internal in ("function_node", "[Op:", "{{node"):
        assert internal not in errors[0], errors[0]
    for text in expected:
        assert text in errors[0], f"{text!r} not in {errors[0]!r}"


def test_a_refused_start_writes_nothing(results):
    root = results["root"]
    # A failed start must not leave a config that refuses the corrected rerun.
    for train_dir in ("k", "l", "locked"):
        assert not (root / train_dir / "model_config.json").exists()
    # A train.py that fails (on data, or with more batch than data) leaves
    # no train_dir behind: no config, no events file.
    for train_dir in ("b", "c", "h", "i", "j", "k", "k2", "k3", "l", "m"):
        assert not (root / train_dir).exists(), sorted(os.listdir(root / train_dir))
    assert not (root / "not_utf8.csv").exists()
    assert "waiting for train.py to write a checkpoint" in (
        results["eval_waits_for_a_checkpoint_that_never_comes"][0].stdout
    )


def test_every_case_is_checked(results):
    assert sorted(results) == sorted(CASE_NAMES + ["truncated_shard_skipped", "root"])
