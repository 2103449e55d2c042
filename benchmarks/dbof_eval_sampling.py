"""How much the starter's random frame sampling at evaluation moves DBoF's GAP.

The starter's DbofModel samples --iterations random frames at evaluation as
in training; this port samples evenly spaced frames at evaluation so that a
checkpoint always scores the same. This trains a DbofModel on real frames
(YouTube-8M frame-level records: the 2018 sample's 5-class task, or any
pattern) and evaluates one checkpoint both ways: deterministic once, random
--repeats times (mean and spread).

    .venv/bin/python benchmarks/dbof_eval_sampling.py \\
        --data_pattern='tests/data/frame2018/*.tfrecord'
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import common  # noqa: E402
import configs  # noqa: E402
import losses  # noqa: E402
import tfrecord_files  # noqa: E402
import training  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_pattern", default="tests/data/frame2018/*.tfrecord")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    files = tfrecord_files.match_files(args.data_pattern)
    # Every fourth file evaluates, the rest train.
    train_files = [f for i, f in enumerate(files) if i % 4]
    eval_files = files[::4]
    config = configs.ModelConfig(
        model="DbofModel",
        frame_features=True,
        feature_names=("rgb", "audio"),
        feature_sizes=(1024, 128),
        max_frames=300,
        num_classes=3862,
        body=configs.DbofConfig(dbof_cluster_size=1024, dbof_hidden_size=256),
    )
    keras.utils.set_random_seed(0)
    model = common.build_model(config)
    reader = common.make_reader(config)
    step = training.make_train_step(
        model, keras.optimizers.Adam(1e-3), losses.CrossEntropyLoss(), 16
    )
    batches = iter(
        reader.dataset(",".join(train_files), 16, training=True, num_epochs=None)
    )
    for _ in range(args.steps):
        step(next(batches))

    def evaluate():
        return common.evaluate(model, reader.dataset(",".join(eval_files), 64))["gap"]

    deterministic = evaluate()
    evenly_spaced = model.sample_frames
    # The starter's evaluation: the training sampler, with batch norm in
    # inference mode.
    model.sample_frames = lambda f, n, training: evenly_spaced(f, n, True)
    random = []
    for repeat in range(args.repeats):
        # Each evaluation traces anew; another seed gives other frames.
        tf.random.set_seed(1 + repeat)
        random.append(evaluate())
    print(
        f"{len(train_files)} training files, {len(eval_files)} evaluation files, "
        f"{args.steps} steps of 16 videos"
    )
    print(f"evaluation GAP, evenly spaced frames: {deterministic:.4f}")
    print(
        f"evaluation GAP, random frames (starter), {args.repeats} runs: mean "
        f"{statistics.mean(random):.4f}, min {min(random):.4f}, max {max(random):.4f}"
    )


if __name__ == "__main__":
    main()
