"""What train.py, eval.py, inference.py and compare.py all do.

Choose the distribution strategy, save and read back the model config that
sits beside the checkpoints, build the model and the reader from it,
restore, predict batch by batch, evaluate, export, and turn bad input into a
clear message instead of a traceback.
"""

import json
import os
import shutil
import sys
import tempfile
import time

from absl import flags
from absl import logging
import tensorflow as tf

import atomic_files
import eval_util
import frame_level_models
import losses
import models
import readers
import video_level_models

flags.DEFINE_string(
    "train_dir",
    "/tmp/yt8m_model/",
    "The directory that holds checkpoints, the model config and the exported model.",
)
flags.DEFINE_bool(
    "skip_corrupt_files",
    False,
    "Skip data files that fail to read (with a warning that "
    "counts them) instead of stopping.",
)
flags.DEFINE_bool(
    "dequantize_in_model",
    False,
    "Ship uint8 frames from the input pipeline and dequantise them inside "
    "the compiled step: a quarter of the host-to-device traffic, same results.",
)

MODEL_CONFIG_FILE = "model_config.json"
EXPORT_DIR = "export"


class UsageError(Exception):
    """A problem the user can fix; the programs print it without a traceback."""


def run(main):
    """absl's app.run for our programs: clear one-line errors, exit status 1."""

    def guarded(argv):
        # TensorFlow's own INFO lines (saver, tracing) drown our progress lines.
        tf.get_logger().setLevel("WARNING")
        try:
            main(argv)
        except (UsageError, readers.ReaderError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        except tf.errors.OpError as error:
            print(f"error: {describe_tf_error(error)}", file=sys.stderr)
            sys.exit(1)

    from absl import app  # pylint: disable=g-import-not-at-top

    app.run(guarded)


def describe_tf_error(error):
    """A TensorFlow runtime error's message without the graph dump."""
    message = error.message.split("\n\t [[")[0].strip()
    if isinstance(error, tf.errors.DataLossError):
        message += (
            " (a data file is corrupt or truncated: rerun with "
            "--skip_corrupt_files to skip such files)"
        )
    return message


# ---------------------------------------------------------------- strategy


def choose_strategy(name="auto"):
    """The tf.distribute strategy for `name` (auto picks from the devices).

    auto: MultiWorkerMirroredStrategy when TF_CONFIG names several workers,
    MirroredStrategy with several local GPUs, else the default strategy.
    """
    if name == "auto":
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        if workers > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise UsageError(
        f"--distribution_strategy={name!r}: use auto, default, "
        "mirrored or multi_worker."
    )


def is_chief(strategy):
    """Whether this process writes checkpoints and summaries for the cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


# ------------------------------------------------------------ model config


def model_config(
    model_name,
    frame_features,
    feature_names,
    feature_sizes,
    max_frames,
    num_classes,
    flag_values,
):
    """The JSON-able description of everything that shapes a model.

    Saved beside the checkpoints, so eval.py and inference.py rebuild the same
    model and reader without repeating any flag.
    """
    cls = find_model_class(model_name)
    if cls.frame_level != frame_features:
        raise UsageError(
            f"--model={model_name} is a "
            f"{'frame' if cls.frame_level else 'video'}-level model: "
            f"{'add' if cls.frame_level else 'drop'} --frame_features."
        )
    names = [name.strip() for name in feature_names.split(",") if name.strip()]
    sizes = [int(size) for size in feature_sizes.split(",") if size.strip()]
    if len(names) != len(sizes):
        raise UsageError(
            f"--feature_names has {len(names)} names but "
            f"--feature_sizes has {len(sizes)} sizes."
        )
    hyperparameters = {
        name: flag_values[name]
        for name in models.init_parameter_names(cls)
        if name in flag_values
    }
    hyperparameters["num_classes"] = num_classes
    return {
        "model": model_name,
        "frame_features": frame_features,
        "feature_names": names,
        "feature_sizes": sizes,
        "max_frames": max_frames,
        "num_classes": num_classes,
        "hyperparameters": hyperparameters,
    }


def find_model_class(name):
    return models.find_model_class(name, [frame_level_models, video_level_models])


def save_model_config(train_dir, config):
    atomic_files.atomic_write(
        os.path.join(train_dir, MODEL_CONFIG_FILE),
        json.dumps(config, indent=2, sort_keys=True) + "\n",
    )


def load_model_config(train_dir):
    path = os.path.join(train_dir, MODEL_CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise UsageError(
            f"{path} not found: --train_dir must be a directory that train.py wrote to."
        )
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def config_differences(saved, wanted):
    """Keys whose values differ between two model configs, for a clear error."""
    flat = lambda c: {
        **{k: v for k, v in c.items() if k != "hyperparameters"},
        **c.get("hyperparameters", {}),
    }
    saved, wanted = flat(saved), flat(wanted)
    return sorted(
        key for key in set(saved) | set(wanted) if saved.get(key) != wanted.get(key)
    )


def build_model(config):
    """The model described by `config`, with every weight created."""
    cls = find_model_class(config["model"])
    model = models.construct(cls, config["hyperparameters"])
    return model.build_for(
        sum(config["feature_sizes"]), config["max_frames"], config["frame_features"]
    )


def make_reader(config):
    return readers.get_reader(
        config["frame_features"],
        num_classes=config["num_classes"],
        feature_names=config["feature_names"],
        feature_sizes=config["feature_sizes"],
        max_frames=config["max_frames"],
        skip_corrupt_files=flags.FLAGS.skip_corrupt_files,
        dequantize=not flags.FLAGS.dequantize_in_model,
    )


# ------------------------------------------------------------- checkpoints


def make_checkpoint(model, optimizer=None):
    """The tf.train.Checkpoint of a model (and its optimizer, when training).

    The model's variables are tracked by their position in model.variables
    (fixed by the model's code), not through the model object: Keras 3 hides
    layers kept in Python lists (LstmModel's layers, DCGN's levels) from
    tf.train.Checkpoint's object graph, so they would silently not restore,
    and auto-generated layer names differ between processes.
    """
    variables = {f"{index:05d}": v for index, v in enumerate(model.variables)}
    if optimizer is None:
        return tf.train.Checkpoint(model_variables=variables)
    return tf.train.Checkpoint(model_variables=variables, optimizer=optimizer)


def restore(model, checkpoint_path):
    """Loads the model's weights from a training checkpoint (model built)."""
    status = make_checkpoint(model).restore(checkpoint_path)
    # Every model variable must get a value; the optimizer's may stay behind.
    status.expect_partial().assert_existing_objects_matched()
    return model


def checkpoint_step(checkpoint_path):
    """The global step a checkpoint was written at (its file suffix)."""
    return int(checkpoint_path.rsplit("-", 1)[-1])


# ------------------------------------------------------ prediction, metrics


def explained_batches(dataset, data_pattern):
    """Iterates `dataset`; a TensorFlow error while reading becomes a
    ReaderError that names the file or record (readers.explain_data_error).

    Only the reading is guarded: errors of the model's own step keep their
    TensorFlow message.
    """
    iterator = iter(dataset)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as error:
            raise readers.explain_data_error(error, data_pattern) from None
        yield batch


def predict_batches(model, dataset):
    """Yields (batch as numpy, predictions [B, C] numpy) over `dataset`."""

    @tf.function(reduce_retracing=True)
    def predict(batch):
        return model(batch, training=False)["predictions"]

    for batch in dataset:
        predictions = predict(batch)
        yield {key: value.numpy() for key, value in batch.items()}, predictions.numpy()


def evaluate(model, dataset, loss_name="CrossEntropyLoss", top_k=20):
    """GAP, Hit@1, PERR, mAP and loss of `model` over every record once."""
    loss_fn = losses.get_loss(loss_name)
    metrics = eval_util.EvaluationMetrics(model.num_classes, top_k)
    start = time.time()
    for batch, predictions in predict_batches(model, dataset):
        loss = loss_fn.per_example_loss(predictions, batch["labels"]).numpy()
        metrics.accumulate(predictions, batch["labels"], loss)
    results = metrics.get()
    seconds = time.time() - start
    return {
        "gap": float(results["gap"]),
        "hit_at_one": float(results["avg_hit_at_one"]),
        "perr": float(results["avg_perr"]),
        "map": float(results["map"]),
        "loss": float(results["avg_loss"]),
        "num_examples": int(results["num_examples"]),
        "examples_per_second": results["num_examples"] / max(seconds, 1e-9),
    }


def format_metrics(metrics, step=None):
    """The starter's eval line."""
    prefix = f"step {step} | " if step is not None else ""
    return (
        f"{prefix}examples {metrics['num_examples']} | "
        f"Avg_Hit@1: {metrics['hit_at_one']:.3f} | "
        f"Avg_PERR: {metrics['perr']:.3f} | MAP: {metrics['map']:.3f} | "
        f"GAP: {metrics['gap']:.3f} | Avg_Loss: {metrics['loss']:.6f}"
    )


# ------------------------------------------------------------------ export


class ServingModule(tf.Module):
    """Serialized records in (the readers' format), top-k classes out."""

    def __init__(self, model, reader, top_k):
        super().__init__()
        self.model = model
        self._reader = reader
        self._top_k = min(top_k, model.num_classes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="serialized")])
    def serve(self, serialized):
        batch = self._reader.parse_serialized(serialized)
        predictions = self.model(batch, training=False)["predictions"]
        scores, classes = tf.math.top_k(predictions, k=self._top_k)
        return {
            "video_ids": batch["video_ids"],
            "classes": classes,
            "scores": scores,
            "predictions": predictions,
        }


def export_saved_model(model, reader, export_dir, top_k=20):
    """Writes a SavedModel to `export_dir`, complete or not at all."""
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".tmp-export-")
    module = ServingModule(model, reader, top_k)
    tf.saved_model.save(module, staging, signatures={"serving_default": module.serve})
    if os.path.exists(export_dir):
        shutil.rmtree(export_dir)
    os.replace(staging, export_dir)
    return export_dir


def check_writable(directory, what):
    """Fails at start, not after hours, when `directory` cannot be written."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".tmp-check-"):
            pass
    except OSError as error:
        raise UsageError(
            f"{what} {directory!r} is not writable: {error.strerror}."
        ) from None
    free = shutil.disk_usage(directory).free
    if free < 64 << 20:
        raise UsageError(f"{what} {directory!r} has only {free >> 20} MiB free.")


def log_metrics_line(line):
    logging.info(line)
    print(line, flush=True)
