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

import common
import losses
import models

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


def model_for(spec):
    name, _, variant = spec.partition(":")
    values = {**FLAGS.flag_values_dict(), "num_classes": FLAGS.classes}
    if variant:
        pooling, _, shots = variant.partition(":")
        values["dcgn_pooling"] = pooling
        values["dcgn_shots"] = int(shots or 0)
    cls = common.find_model_class(name)
    model = models.construct(cls, values)
    return model.build_for(FLAGS.features, FLAGS.frames, True)


def random_batch(num_shots):
    rng = np.random.default_rng(0)
    batch = models.dummy_batch(
        FLAGS.features, FLAGS.frames, True, num_shots, FLAGS.bench_batch_size
    )
    batch["video_matrix"] = tf.constant(
        rng.normal(size=batch["video_matrix"].shape), tf.float32
    )
    batch["num_frames"] = tf.fill([FLAGS.bench_batch_size], FLAGS.frames)
    if num_shots:
        edges = np.linspace(0, FLAGS.frames, num_shots + 1).astype(np.int32)
        batch["shot_boundaries"] = tf.constant(
            np.tile(edges, (FLAGS.bench_batch_size, 1))
        )
    labels = np.zeros((FLAGS.bench_batch_size, FLAGS.classes), np.float32)
    labels[:, :3] = 1
    batch["labels"] = tf.constant(labels)
    return batch


def time_model(spec):
    model = model_for(spec)
    batch = random_batch(model.num_shots)
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = losses.CrossEntropyLoss()

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = loss_fn.calculate_loss(
                model(batch, training=True)["predictions"], batch["labels"]
            )
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

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
        f"median of {FLAGS.steps} steps, {os.cpu_count()} CPUs"
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
