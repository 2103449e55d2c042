"""What train.py, eval.py and inference.py share (with TensorFlow).

Choose the distribution strategy, read and write the model config that sits
beside the checkpoints, build the model and its dataset from that config,
restore, predict batch by batch, evaluate, export.
"""

import contextlib
import dataclasses
import glob
import json
import os
import shutil
import tempfile
import time

from absl import flags
import tensorflow as tf

import atomic_files
import cli
import configs
import eval_util
import frame_level_models
import losses
import reader_errors
import readers
import shots
import video_level_models
from cli import UsageError

MODEL_CONFIG_FILE = "model_config.json"
EXPORT_DIR = "export"


# ---------------------------------------------------------------- strategy


def choose_strategy(name="auto", num_gpu=None):
    """The tf.distribute strategy for `name` (auto picks from the devices).

    auto: MultiWorkerMirroredStrategy when TF_CONFIG names several workers,
    MirroredStrategy with several local GPUs, else the default strategy.
    num_gpu: the most local GPUs to use (the starter's --num_gpu); None: all.
    """
    if num_gpu is not None:
        gpus = tf.config.list_physical_devices("GPU")
        tf.config.set_visible_devices(gpus[:num_gpu], "GPU")
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


def build_model(config):
    """The model `config` describes, with every weight created.

    configs.MODELS names the models; each is the class of that name in the
    module of its level.
    """
    module = frame_level_models if config.frame_features else video_level_models
    return getattr(module, config.model)(config).build_weights()


def save_model_config(train_dir, config, optimization=None):
    """Writes model_config.json: the model's config, and under "training" the
    configs.OptimizationConfig of its run."""
    values = config.as_dict()
    if optimization is not None:
        values["training"] = dataclasses.asdict(optimization)
    atomic_files.atomic_write(
        os.path.join(train_dir, MODEL_CONFIG_FILE),
        json.dumps(values, indent=2, sort_keys=True) + "\n",
    )


def load_optimization_config(train_dir):
    """The OptimizationConfig saved in model_config.json; None without one."""
    path = os.path.join(train_dir, MODEL_CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        saved = json.load(f).get("training")
    if saved is None:
        return None
    fields = {field.name for field in dataclasses.fields(configs.OptimizationConfig)}
    return configs.OptimizationConfig(
        **{name: value for name, value in saved.items() if name in fields}
    )


def load_model_config(train_dir):
    path = os.path.join(train_dir, MODEL_CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise UsageError(
            f"{path} not found: --train_dir must be a directory that train.py wrote to."
        )
    with tf.io.gfile.GFile(path) as f:
        values = json.load(f)
    try:
        return configs.ModelConfig.from_dict(values)
    except (KeyError, TypeError) as error:
        raise UsageError(
            f"{path} is not a model config of this version of train.py ({error!r}); "
            "train again with --start_new_model."
        ) from None


def make_reader(config, **options):
    """The reader of the records `config` reads; options are the readers'
    own (skip_corrupt_files, dequantize, compression_type, segment_mode,
    segment_size)."""
    shape = ("num_classes", "feature_names", "feature_sizes", "max_frames")
    return readers.get_reader(
        config.frame_features,
        **{name: getattr(config, name) for name in shape},
        **options,
    )


def program_reader(config, segment_mode=None, segment_size=configs.SEGMENT_SIZE):
    """make_reader with the flags every program shares (cli.define_program_flags).

    segment_mode: None (videos), "rated" or "every" (segments.py).
    """
    return make_reader(
        config,
        segment_mode=segment_mode,
        segment_size=segment_size,
        skip_corrupt_files=flags.FLAGS.skip_corrupt_files,
        dequantize=not flags.FLAGS.dequantize_in_model,
        compression_type=flags.FLAGS.compression_type,
    )


def inspect_data(config, reader, data_pattern):
    """(files, RecordSchema) of data_pattern as the model of `config` reads it.

    The reader's schema, carrying the records' stored shots when the model
    reads shots (shots.py); a ReaderError when the first record does not fit.
    """
    files, schema = reader.inspect(data_pattern)
    if config.dcgn_shots:
        schema = shots.schema_with_stored_shots(
            schema,
            *reader.files.first_record(files),
            config.dcgn_shots,
            config.dcgn_kts_penalty,
        )
    return files, schema


def make_dataset(
    config, data_pattern, batch_size, reader=None, inspected=None, **dataset_options
):
    """Batches of `data_pattern` as the model of `config` needs them: the
    reader's, then the shot stage's when the model reads shots.

    inspected: what inspect_data returned, when the caller has it; the other
    dataset_options are readers' dataset() options (training, num_epochs,
    num_readers, ...).
    """
    reader = reader or make_reader(config)
    inspected = inspected or inspect_data(config, reader, data_pattern)
    batches = reader.dataset(
        data_pattern, batch_size, inspected=inspected, **dataset_options
    )
    if not config.dcgn_shots:
        return batches
    return shots.add_shot_boundaries(
        batches,
        config.dcgn_shots,
        config.dcgn_kts_penalty,
        config.max_frames,
        deterministic=not dataset_options.get("training", False),
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


class CheckpointGone(UsageError):
    """The checkpoint's files were removed (train.py's rotation) before it was read."""

    def __init__(self, checkpoint_path):
        super().__init__(
            f"{os.path.basename(checkpoint_path)} was removed (by train.py's "
            "rotation of checkpoints) before it could be read."
        )
        self.checkpoint_path = checkpoint_path


def checkpoint_exists(checkpoint_path):
    """Both the index and the data of a checkpoint are there."""
    return tf.io.gfile.exists(checkpoint_path + ".index") and bool(
        tf.io.gfile.glob(checkpoint_path + ".data-*")
    )


@contextlib.contextmanager
def pinned_checkpoint(checkpoint_path):
    """The checkpoint, hard-linked into a private directory while it is read.

    train.py's rotation deletes old checkpoints at any moment; links keep the
    files whole until the restore is done (a restore that loses its data
    file half-way fails and prints a screen of warnings). Where links cannot
    be made (another file system, gs://), the checkpoint is read in place.
    Raises CheckpointGone when its files are already gone.
    """
    if not checkpoint_exists(checkpoint_path):
        raise CheckpointGone(checkpoint_path)
    if "://" in checkpoint_path:
        yield checkpoint_path
        return
    private = None
    try:
        private = tempfile.mkdtemp(
            dir=os.path.dirname(checkpoint_path), prefix=".tmp-restore-"
        )
        for name in glob.glob(glob.escape(checkpoint_path) + ".*"):
            os.link(name, os.path.join(private, os.path.basename(name)))
        path = os.path.join(private, os.path.basename(checkpoint_path))
    except FileNotFoundError:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
        raise CheckpointGone(checkpoint_path) from None
    except OSError:  # no links here (read-only directory, another file system)
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
        private, path = None, checkpoint_path
    try:
        yield path
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def restore(model, checkpoint_path):
    """Loads the model's weights from a training checkpoint (model built).

    Raises CheckpointGone when its files are gone, as train.py's rotation
    deletes them beside a running eval.py.
    """
    with pinned_checkpoint(checkpoint_path) as path:
        try:
            status = make_checkpoint(model).restore(path)
        except tf.errors.OpError:
            if not checkpoint_exists(path):
                raise CheckpointGone(checkpoint_path) from None
            raise
    status.expect_partial().assert_existing_objects_matched()
    return model


# ------------------------------------------------------ prediction, metrics


def explained_batches(dataset, data_pattern):
    """Iterates `dataset`; a TensorFlow error while reading becomes a
    ReaderError that names the file or record (reader_errors).

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
            raise reader_errors.explain_data_error(error, data_pattern) from None
        yield batch


def predict_batches(model, dataset, progress=None):
    """Yields (batch as numpy, predictions [B, C] numpy) over `dataset`,
    counting the examples on `progress` (a cli.Progress) when given."""

    @tf.function(reduce_retracing=True)
    def predict(batch):
        return model(batch, training=False)["predictions"]

    done = 0
    for batch in dataset:
        predictions = predict(batch).numpy()
        if progress is not None:
            done += len(predictions)
            progress.update(done)
        yield {key: value.numpy() for key, value in batch.items()}, predictions
    if progress is not None:
        progress.update(done, last=True)


def data_progress(reader, files, count=None):
    """The cli.Progress of one pass over `files`: videos out of the record
    count (`count`, when the caller has it), or rated or every segment
    (their count would take a full read)."""
    if reader.segment_mode:
        return cli.Progress(None, "segments")
    return cli.Progress(count or reader.files.count(files), "videos")


def named_latest_checkpoint(train_dir):
    """The checkpoint train_dir's state file names last, whether or not its
    files are still there (restore says CheckpointGone when they are not).

    tf.train.latest_checkpoint checks the files too, but logs an ERROR line
    when they are gone, which a checkpoint rotated away is not.
    """
    state = tf.train.get_checkpoint_state(train_dir)
    if state is None or not state.model_checkpoint_path:
        return None
    # Already joined with train_dir: joining again doubled a relative one.
    return state.model_checkpoint_path


def new_checkpoints(train_dir, timeout=None, poll_secs=1.0):
    """Yields each checkpoint train.py names as latest, as it appears.

    Stops after `timeout` seconds without a new one (None: never).
    """
    last, waited_since = None, time.time()
    while True:
        latest = named_latest_checkpoint(train_dir)
        if latest is not None and latest != last:
            last = latest
            yield latest
            waited_since = time.time()
            continue
        if timeout is not None and time.time() - waited_since > timeout:
            return
        time.sleep(poll_secs)


def restore_latest(model, train_dir, attempts=5):
    """Restores train_dir's latest checkpoint (the next latest if it vanishes).

    Returns the path of the checkpoint restored.
    """
    gone = None
    for _ in range(attempts):
        latest = named_latest_checkpoint(train_dir)
        if latest is None:
            raise UsageError(f"no checkpoint in {train_dir}.")
        if gone is not None and latest == gone.checkpoint_path:
            raise UsageError(
                f"the latest checkpoint that {train_dir}/checkpoint names, "
                f"{os.path.basename(latest)}, has no files: they were deleted. "
                "Train again, or put them back."
            )
        try:
            restore(model, latest)
            return latest
        except CheckpointGone as error:
            gone = error
            cli.say(f"{gone} Going on with the latest one.")
    raise UsageError(
        f"every checkpoint of {train_dir} was removed before it could be read "
        f"({attempts} tries): is a train.py keeping very few of them?"
    )


def restored_model(train_dir):
    """(config, model) of train_dir, with its latest checkpoint's weights."""
    config = load_model_config(train_dir)
    model = build_model(config)
    restore_latest(model, train_dir)
    return config, model


def model_predictions(
    config,
    model,
    data_pattern,
    batch_size,
    segment_mode=None,
    segment_size=configs.SEGMENT_SIZE,
):
    """Yields (batch, predictions) of `model` over data_pattern, as numpy.

    segment_mode as in program_reader: None scores videos, "every" scores
    each segment_size-frame segment (ids "<video id>:<start frame>").
    """
    reader = program_reader(config, segment_mode, segment_size)
    inspected = inspect_data(config, reader, data_pattern)
    dataset = explained_batches(
        make_dataset(config, data_pattern, batch_size, reader, inspected),
        data_pattern,
    )
    yield from predict_batches(model, dataset, data_progress(reader, inspected[0]))


def evaluate(model, dataset, loss_name="CrossEntropyLoss", top_k=20, progress=None):
    """GAP, Hit@1, PERR, mAP and loss of `model` over every record once."""
    loss_fn = losses.get_loss(loss_name)
    metrics = eval_util.EvaluationMetrics(model.num_classes, top_k)
    start = time.time()
    for batch, predictions in predict_batches(model, dataset, progress):
        if "label_weights" in batch:
            # Segments: only the rated (segment, class) pairs count, as the
            # starter counted them (unrated predictions become 0).
            predictions = predictions * batch["label_weights"]
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

    def __init__(self, model, reader, schema, top_k):
        super().__init__()
        self.model = model
        self._reader = reader
        self._schema = schema.for_serving()
        self._top_k = min(top_k, model.num_classes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="serialized")])
    def serve(self, serialized):
        batch = self._reader.parse(serialized, self._schema)
        predictions = self.model(batch, training=False)["predictions"]
        scores, classes = tf.math.top_k(predictions, k=self._top_k)
        return {
            "video_ids": batch["video_ids"],
            "classes": classes,
            "scores": scores,
            "predictions": predictions,
        }


def export_saved_model(model, reader, schema, export_dir, top_k=20):
    """Writes a SavedModel to `export_dir`, complete or not at all.

    schema: the record_schema.RecordSchema of the training records (the exported
    model reads either id key and computes shots itself).
    """
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".tmp-export-")
    module = ServingModule(model, reader, schema, top_k)
    try:
        tf.saved_model.save(
            module, staging, signatures={"serving_default": module.serve}
        )
    except Exception as error:
        shutil.rmtree(staging, ignore_errors=True)
        if atomic_files.is_disk_full(error):
            raise atomic_files.disk_full(
                parent,
                f"the export {os.path.basename(export_dir)}",
                kept_checkpoints(os.path.dirname(parent)),
            ) from None
        raise
    if os.path.exists(export_dir):
        shutil.rmtree(export_dir)
    os.replace(staging, export_dir)
    return export_dir


def kept_checkpoints(train_dir):
    """What a failed write in train_dir leaves: its last good checkpoint."""
    latest = tf.train.latest_checkpoint(train_dir)
    if latest is None:
        return "no checkpoint had been written yet."
    return f"the last good checkpoint, {os.path.basename(latest)}, is intact."


def check_writable(directory, what, min_free=64 << 20):
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
    if free < min_free:
        raise UsageError(f"{what} {directory!r} has only {free >> 20} MiB free.")
