"""Evaluates checkpoints of a train.py run: GAP, Hit@1, PERR, mAP, loss.

    python eval.py --train_dir=runs/dcgn \
        --eval_data_pattern='data/frame/validate*.tfrecord' --run_once

The model is rebuilt from train_dir/model_config.json, so no model flag is
repeated; a model flag given here is refused (it would be ignored). Without
--run_once it evaluates each new checkpoint as training
writes it, until stopped.
"""

import cli  # first: it quiets TensorFlow's C++ log before TensorFlow loads

import json
import os

from absl import flags
import tensorflow as tf

import atomic_files
import common

FLAGS = flags.FLAGS
cli.define_program_flags(FLAGS)
cli.define_prediction_flags(FLAGS, batch_size=1024, num_readers=8)
flags.adopt_module_key_flags(cli)

flags.DEFINE_string("eval_data_pattern", "", "Glob of the evaluation TFRecord files.")
flags.DEFINE_bool("run_once", False, "Evaluate the latest checkpoint and stop.")
flags.DEFINE_string(
    "label_loss",
    "CrossEntropyLoss",
    "The loss reported as Avg_Loss. Not given: the loss the model was trained "
    "with (train_dir/model_config.json), as the starter's eval did by sharing "
    "train.py's flags.",
)
flags.DEFINE_string(
    "eval_results_file", "", "Also write the metrics to this JSON file."
)
flags.DEFINE_integer(
    "eval_timeout_secs",
    None,
    "Without --run_once: stop after waiting this long for a "
    "new checkpoint (default: wait forever).",
)


def evaluate_checkpoint(
    config, model, reader, data, checkpoint_path, loss_name, writer
):
    """Evaluates the model with the weights already restored from checkpoint_path.

    data: (inspected, record count) of the evaluation files, found once for
    every checkpoint (common.inspect_data, RecordFiles.count).
    """
    inspected, count = data
    dataset = common.explained_batches(
        common.make_dataset(
            config, FLAGS.eval_data_pattern, FLAGS.batch_size, reader, inspected
        ),
        FLAGS.eval_data_pattern,
    )
    metrics = common.evaluate(
        model,
        dataset,
        loss_name,
        FLAGS.top_k,
        common.data_progress(reader, inspected[0], count),
    )
    metrics["step"] = cli.checkpoint_step(checkpoint_path)
    cli.say(common.format_metrics(metrics, metrics["step"]))
    # Beside training's events, so TensorBoard shows eval GAP against steps.
    tag = "eval_segments" if FLAGS.segment_labels else "eval"
    with writer.as_default(step=metrics["step"]):
        for name in ("gap", "hit_at_one", "perr", "map", "loss"):
            tf.summary.scalar(f"{tag}/{name}", metrics[name])
    writer.flush()
    if FLAGS.eval_results_file:
        atomic_files.atomic_write(
            FLAGS.eval_results_file,
            json.dumps(metrics, indent=2, sort_keys=True) + "\n",
        )
    return metrics


def main(unused_argv):
    if not FLAGS.eval_data_pattern:
        raise cli.UsageError("--eval_data_pattern is required.")
    cli.check_positive(FLAGS, "batch_size", "top_k")
    if FLAGS.eval_results_file:
        common.check_writable(
            os.path.dirname(os.path.abspath(FLAGS.eval_results_file)),
            "the directory of --eval_results_file",
        )
    config = common.load_model_config(FLAGS.train_dir)
    loss_name = FLAGS.label_loss
    saved = common.load_optimization_config(FLAGS.train_dir)
    if saved is not None and not FLAGS["label_loss"].present:
        loss_name = saved.label_loss
    model = common.build_model(config)
    reader = common.program_reader(
        config, "rated" if FLAGS.segment_labels else None, FLAGS.segment_size
    )
    inspected = common.inspect_data(config, reader, FLAGS.eval_data_pattern)
    data = inspected, None if reader.segment_mode else reader.files.count(inspected[0])
    writer = tf.summary.create_file_writer(os.path.join(FLAGS.train_dir, "eval"))
    if FLAGS.run_once:
        latest = common.restore_latest(model, FLAGS.train_dir)
        evaluate_checkpoint(config, model, reader, data, latest, loss_name, writer)
        return
    if common.named_latest_checkpoint(FLAGS.train_dir) is None:
        cli.say(
            f"waiting for train.py to write a checkpoint in {FLAGS.train_dir} "
            "(--run_once evaluates the latest one and stops)"
        )
    evaluated = 0
    for checkpoint_path in common.new_checkpoints(
        FLAGS.train_dir, timeout=FLAGS.eval_timeout_secs
    ):
        try:
            common.restore(model, checkpoint_path)
        except common.CheckpointGone:
            # train.py rotated it away between its listing and the restore.
            newer = common.named_latest_checkpoint(FLAGS.train_dir)
            cli.say(
                f"{os.path.basename(checkpoint_path)} was removed by train.py's "
                "rotation; going on with "
                + (
                    os.path.basename(newer)
                    if newer not in (None, checkpoint_path)
                    else "the next checkpoint"
                )
            )
            continue
        evaluate_checkpoint(
            config, model, reader, data, checkpoint_path, loss_name, writer
        )
        evaluated += 1
    if not evaluated:
        raise cli.UsageError(
            f"no checkpoint appeared in {FLAGS.train_dir} within "
            f"--eval_timeout_secs={FLAGS.eval_timeout_secs}."
        )
    cli.say(f"no new checkpoint for {FLAGS.eval_timeout_secs} s; stopping.")


if __name__ == "__main__":
    cli.run(main, unknown_flag_hint=cli.MODEL_FLAG_HINT)
