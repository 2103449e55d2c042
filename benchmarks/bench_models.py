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
flags.DEFINE_integer("steps", 5, "Timed training steps per model.")
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
    if config.dcgn_shots:
        edges = np.linspace(0, FLAGS.frames, config.dcgn_shots + 1).astype(np.int32)
        batch["shot_boundaries"] = tf.constant(
            np.tile(edges, (FLAGS.bench_batch_size, 1))
        )
    labels = np.zeros((FLAGS.bench_batch_size, FLAGS.classes), np.float32)
    labels[:, :3] = 1
    batch["labels"] = tf.constant(labels)
    return batch


class TimedModel:
    """One model with train.py's step on a fixed random batch."""

    def __init__(self, spec):
        config = config_for(spec)
        self.model = common.build_model(config)
        self.batch = random_batch(config)
        # train.py's own step: regularisation and summed-gradient clipping
        # included.
        self.step = training.make_train_step(
            self.model,
            keras.optimizers.Adam(1e-3),
            losses.CrossEntropyLoss(),
            FLAGS.bench_batch_size,
            jit_compile=FLAGS.jit_compile,
        )
        self.predict = tf.function(
            lambda batch: self.model(batch, training=False)["predictions"]
        )
        self.train_step()  # trace and warm up
        self.predict(self.batch)
        self.step_times = []

    def train_step(self):
        start = time.perf_counter()
        float(self.step(self.batch)[0])
        return time.perf_counter() - start

    def inference_videos_per_second(self):
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            self.predict(self.batch).numpy()
        return FLAGS.bench_batch_size * FLAGS.steps / (time.perf_counter() - start)


def main(unused_argv):
    print(
        f"batch {FLAGS.bench_batch_size} x {FLAGS.frames} frames x "
        f"{FLAGS.features} features, {FLAGS.classes} classes, "
        f"{FLAGS.steps} rounds of one step per model, {os.cpu_count()} CPUs, "
        f"XLA {'on' if FLAGS.jit_compile else 'off'}"
    )
    timed = {spec: TimedModel(spec) for spec in FLAGS.models.split(",")}
    # Round-robin, so that every model's steps meet the same interference
    # from whatever else the machine is doing.
    for _ in range(FLAGS.steps):
        for model in timed.values():
            model.step_times.append(model.train_step())
    lstm = timed.get("LstmModel")
    print(
        "| model | parameters | step s (median) | step s (min) | "
        "/ LSTM (median) | / LSTM (min) | inference videos/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec, model in timed.items():
        median, low = statistics.median(model.step_times), min(model.step_times)
        versus = (
            f"{median / statistics.median(lstm.step_times):.3f}x | "
            f"{low / min(lstm.step_times):.3f}x"
            if lstm
            else " | "
        )
        print(
            f"| {spec} | {model.model.count_params():,d} | {median:.3f} | "
            f"{low:.3f} | {versus} | {model.inference_videos_per_second():.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
