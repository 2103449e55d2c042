"""Training step time and inference speed of every frame-level model.

Full size by default (batch 32 x 300 frames x 1152 features, 3862 classes,
the paper's Table 1 settings), all models in one run so the ratios compare
like with like on a shared, noisy machine:

    python benchmarks/bench_models.py [--models=LstmModel,DCGNModel] [--steps=3]
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

import configs
import losses
import models
import training

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "models",
    "FrameLevelLogisticModel,DbofModel,LstmModel,"
    "GruModel,DCGNModel,DCGNModel:attention,"
    "DCGNModel:average:32",
    "Models to time; DCGNModel:POOLING:SHOTS picks DCGN's graph pooling and KTS shots.",
)
flags.DEFINE_integer("bench_batch_size", 32, "Videos per step.")
flags.DEFINE_integer("frames", 300, "Frames per video.")
flags.DEFINE_integer("features", 1152, "Features per frame.")
flags.DEFINE_integer("classes", 3862, "Classes.")
flags.DEFINE_integer("steps", 3, "Timed training steps per model.")
flags.DEFINE_bool(
    "jit_compile",
    False,
    "Compile every model's training step with XLA (train.py's flag).",
)


def config_for(spec):
    """The paper's Table 1 settings (the flags' defaults) for `spec`."""
    name, _, variant = spec.partition(":")
    family = configs.model_family(name)
    body = family.body() if family.body else None
    if variant:
        pooling, _, shots = variant.partition(":")
        body = configs.DCGNConfig(dcgn_pooling=pooling, dcgn_shots=int(shots or 0))
    return configs.ModelConfig(
        model=name,
        frame_features=True,
        feature_names=("rgb", "audio"),
        feature_sizes=(FLAGS.features - 128, 128),
        max_frames=FLAGS.frames,
        num_classes=FLAGS.classes,
        body=body,
    )


def random_batch(config):
    rng = np.random.default_rng(0)
    batch = models.dummy_batch(config, FLAGS.bench_batch_size)
    batch["video_matrix"] = tf.constant(
        rng.normal(size=batch["video_matrix"].shape), tf.float32
    )
    batch["num_frames"] = tf.fill([FLAGS.bench_batch_size], FLAGS.frames)
    if config.num_shots:
        edges = np.linspace(0, FLAGS.frames, config.num_shots + 1).astype(np.int32)
        batch["shot_boundaries"] = tf.constant(
            np.tile(edges, (FLAGS.bench_batch_size, 1))
        )
    labels = np.zeros((FLAGS.bench_batch_size, FLAGS.classes), np.float32)
    labels[:, :3] = 1
    batch["labels"] = tf.constant(labels)
    return batch


def time_model(spec):
    config = config_for(spec)
    model = models.build_model(config)
    batch = random_batch(config)
    # train.py's own step: regularisation and summed-gradient clipping included.
    step = training.make_train_step(
        model,
        keras.optimizers.Adam(1e-3),
        losses.CrossEntropyLoss(),
        FLAGS.bench_batch_size,
        jit_compile=FLAGS.jit_compile,
    )

    def train_step():
        return step(batch)[0]

    @tf.function
    def predict():
        return model(batch, training=False)["predictions"]

    train_step()  # trace and warm up
    train_times = []
    for _ in range(FLAGS.steps):
        start = time.perf_counter()
        float(train_step())
        train_times.append(time.perf_counter() - start)
    predict()
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        predict().numpy()
    predict_seconds = (time.perf_counter() - start) / FLAGS.steps
    return {
        "params": model.count_params(),
        "step_s": statistics.median(train_times),
        "infer_videos_s": FLAGS.bench_batch_size / predict_seconds,
    }


def main(unused_argv):
    print(
        f"batch {FLAGS.bench_batch_size} x {FLAGS.frames} frames x "
        f"{FLAGS.features} features, {FLAGS.classes} classes, "
        f"median of {FLAGS.steps} steps, {os.cpu_count()} CPUs, "
        f"XLA {'on' if FLAGS.jit_compile else 'off'}"
    )
    results = {}
    for spec in FLAGS.models.split(","):
        results[spec] = time_model(spec)
        print(
            f"  {spec:28s} {results[spec]['params']:>12,d} params  "
            f"train step {results[spec]['step_s']:7.3f} s  "
            f"inference {results[spec]['infer_videos_s']:8.1f} videos/s",
            flush=True,
        )
    if "LstmModel" in results:
        lstm = results["LstmModel"]["step_s"]
        print("step time relative to LstmModel:")
        for spec, result in results.items():
            print(f"  {spec:28s} {result['step_s'] / lstm:6.3f}x")


if __name__ == "__main__":
    app.run(main)
