"""DCGN learns the shot and order structure of generated data; averaging cannot.

A tiny version of the comparison in docs/dcgn_learning.md: generated
YouTube-8M records (generate_data.py) whose labels partly depend on the
order of shots and on the arrangement of frames inside a shot, DCGN and
FrameLevelLogisticModel (the paper's average pooling) trained with the same
steps, batch, optimizer and learning rate on the same batches.

The pair test goes further than a GAP comparison: it renders videos twice
from the same frames, once with a planted arrangement and once with its
counterpart (alternating vs. split, A before B vs. B before A). The two
videos have exactly the same frame average and different labels, so any
frame-averaging model scores them alike; a model of the structure must
score the right one higher.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import eval_util
import common
import configs
import generate_data
import losses
import readers
import training

# Runs the programs in subprocesses or trains models: the full suite only.
pytestmark = pytest.mark.slow

SEED = 0
NUM_CLASSES = 40
FEATURE_SIZES = (24, 8)
MAX_FRAMES = 120
NUM_TRAIN = 1500
NUM_VALIDATE = 300
STEPS = 800
BATCH_SIZE = 32
LEARNING_RATE = 0.01
DCGN = configs.DCGNConfig(dcgn_levels=5, dcgn_filters=64, dcgn_kernel=3)
PAIRS = 120
TIE = 1e-4  # score differences below this are summation-order rounding


def load_split(data_dir, split):
    reader = readers.YT8MFrameFeatureReader(
        num_classes=NUM_CLASSES, feature_sizes=FEATURE_SIZES, max_frames=MAX_FRAMES
    )
    pattern = os.path.join(data_dir, "frame", split + "*.tfrecord")
    parts = [
        {key: batch[key].numpy() for key in ("video_matrix", "num_frames", "labels")}
        for batch in reader.dataset(pattern, 512)
    ]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def as_batch(data, index):
    return {key: tf.constant(data[key][index]) for key in data}


def train(model, data, seed):
    """STEPS of train.py's step (Adam, clipped) over shuffled epochs."""
    step = training.make_train_step(
        model,
        keras.optimizers.Adam(LEARNING_RATE),
        losses.CrossEntropyLoss(),
        BATCH_SIZE,
    )

    rng = np.random.default_rng(seed)
    order, position = rng.permutation(len(data["labels"])), 0
    for _ in range(STEPS):
        if position + BATCH_SIZE > len(order):
            order, position = rng.permutation(len(order)), 0
        step(as_batch(data, order[position : position + BATCH_SIZE]))
        position += BATCH_SIZE
    return model


def predict(model, data):
    predict_fn = tf.function(
        lambda batch: model(batch)["predictions"], reduce_retracing=True
    )
    size = len(data["num_frames"])
    return np.concatenate(
        [
            predict_fn(as_batch(data, np.arange(start, min(start + 256, size))))
            for start in range(0, size, 256)
        ]
    )


def trained(name, body, data):
    keras.utils.set_random_seed(SEED)
    config = configs.ModelConfig(
        model=name,
        frame_features=True,
        feature_names=("rgb", "audio"),
        feature_sizes=FEATURE_SIZES,
        max_frames=MAX_FRAMES,
        num_classes=NUM_CLASSES,
        body=body,
    )
    return train(common.build_model(config), data, SEED)


def run_experiment(data_dir):
    """Generates the data, trains both models; the fixture's value."""
    summary = generate_data.generate(
        data_dir,
        num_train=NUM_TRAIN,
        num_validate=NUM_VALIDATE,
        num_test=0,
        num_shards=1,
        num_classes=NUM_CLASSES,
        feature_sizes=FEATURE_SIZES,
        max_frames=MAX_FRAMES,
        levels=("frame",),
        write_truth=False,
        seed=SEED,
    )
    train_data = load_split(data_dir, "train")
    return {
        "summary": summary,
        "validate": load_split(data_dir, "validate"),
        "averaging": trained("FrameLevelLogisticModel", None, train_data),
        "dcgn": trained("DCGNModel", DCGN, train_data),
    }


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return run_experiment(str(tmp_path_factory.mktemp("generated")))


def counterfactual_pairs(kind, count):
    """Videos rendered twice from the same frames with a planted rule flipped.

    kind "within": the rule's two-event segment alternating vs. split;
    kind "order": the rule's two pure shots swapped. Returns (batch_a,
    batch_b, labels_a, labels_b, classes): batch_a holds the arrangement the
    video was planned with, classes the rule's class (or classes) per pair.
    """
    world = generate_data.make_world(NUM_CLASSES, 16, sum(FEATURE_SIZES), SEED)
    videos = {"a": [], "b": []}
    labels = {"a": [], "b": []}
    classes = []
    index = 0
    while len(classes) < count:
        # The test split's streams: videos the models never trained on.
        plan_rng, _, _ = generate_data.video_rngs(SEED, "test", index)
        plan = generate_data.plan_video(world, plan_rng, 60, MAX_FRAMES)
        segments = [
            i
            for i, segment in enumerate(plan.segments)
            if segment.rule >= 0 and world.rules[segment.rule].kind == kind
        ]
        if segments:
            rule = world.rules[plan.segments[segments[0]].rule]
            if kind == "within":
                first = segments[0]
                flipped = plan.with_arrangement(
                    first, not plan.segments[first].alternating
                )
            else:
                same_rule = [
                    i
                    for i in segments
                    if plan.segments[i].rule == plan.segments[segments[0]].rule
                ]
                flipped = plan.with_swapped(*same_rule[:2])
            for key, version in (("a", plan), ("b", flipped)):
                _, noise_rng, _ = generate_data.video_rngs(SEED, "test", index)
                frames = generate_data.render(world, version, noise_rng)
                videos[key].append(
                    generate_data.dequantize(generate_data.quantize(frames))
                )
                multi_hot = np.zeros(NUM_CLASSES, np.float32)
                multi_hot[generate_data.oracle_labels(world, version.shots())] = 1
                labels[key].append(multi_hot)
            classes.append(rule.classes)
        index += 1

    def batch(frames):
        matrix = np.zeros((len(frames), MAX_FRAMES, frames[0].shape[1]), np.float32)
        for i, f in enumerate(frames):
            matrix[i, : len(f)] = f
        return {
            "video_matrix": matrix,
            "num_frames": np.array([len(f) for f in frames], np.int32),
        }

    return (
        batch(videos["a"]),
        batch(videos["b"]),
        np.stack(labels["a"]),
        np.stack(labels["b"]),
        classes,
    )


def pair_accuracy(model, kind):
    """Share of flipped labels the model ranks right; and the score gaps.

    For every pair and every class of its rule whose label differs between
    the two arrangements, right means the labelled video scores higher; a
    tie (within float rounding) counts one half, as a coin toss would.
    """
    batch_a, batch_b, labels_a, labels_b, classes = counterfactual_pairs(kind, PAIRS)
    scores_a, scores_b = predict(model, batch_a), predict(model, batch_b)
    right, gaps = [], []
    for i, rule_classes in enumerate(classes):
        for c in rule_classes:
            if labels_a[i, c] != labels_b[i, c]:
                sign = 1.0 if labels_a[i, c] > labels_b[i, c] else -1.0
                gaps.append(sign * (scores_a[i, c] - scores_b[i, c]))
                right.append(0.5 if abs(gaps[-1]) < TIE else float(gaps[-1] > 0))
    return float(np.mean(right)), np.array(gaps)


def gap_of(model, data):
    return eval_util.calculate_gap(predict(model, data), data["labels"])


def test_dcgn_beats_frame_averaging_under_the_same_budget(experiment):
    validate = experiment["validate"]
    dcgn = gap_of(experiment["dcgn"], validate)
    averaging = gap_of(experiment["averaging"], validate)
    print(
        f"GAP: DCGN {dcgn:.3f}, averaging {averaging:.3f}, "
        f"bag oracle {experiment['summary']['bag_oracle_gap']:.3f}"
    )
    # Seeds 0-5 offline: DCGN leads by 0.10 to 0.18.
    assert dcgn > averaging + 0.05


@pytest.mark.parametrize("kind", ["within", "order"])
def test_dcgn_tells_apart_arrangements_averaging_cannot(experiment, kind):
    averaging, averaging_gaps = pair_accuracy(experiment["averaging"], kind)
    dcgn, _ = pair_accuracy(experiment["dcgn"], kind)
    print(f"{kind}: right in {dcgn:.2f} of flipped labels, averaging {averaging:.2f}")
    # The pairs hold the same frames: averaging scores them alike (up to
    # summation order), so it can be right by no more than chance.
    assert np.abs(averaging_gaps).max() < TIE
    # Seeds 0-5 offline: within 0.58 to 0.70, order 0.82 to 0.87.
    assert dcgn > {"within": 0.55, "order": 0.7}[kind]
