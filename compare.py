"""Trains and evaluates several models on the same data and budget: Table 2.

    python compare.py --output_dir=runs/compare \
        --train_data_pattern='data/frame/train*.tfrecord' \
        --eval_data_pattern='data/frame/validate*.tfrecord' \
        --max_steps=2000 --eval_every_steps=250 --batch_size=64 \
        -- --frame_features --num_classes=40 --lstm_cells=128 --dcgn_filters=128

Every model runs train.py and eval.py as subprocesses, so its numbers are
exactly what eval.py reports. Training goes in chunks of --eval_every_steps
(train.py resumes from its checkpoint), and after each chunk
`eval.py --run_once` gives one point of the eval-GAP-against-steps curve.

--models is a comma-separated list of entries `[Label=]ModelClass[:flag=value
...]`, for example `DCGN 16 shots=DCGNModel:dcgn_pooling=attention:dcgn_shots=16`.
The flag=value pairs are train.py flags for that model only; the flags after
`--` (or in --train_flags) go to every model. Labels may not hold `,`, `:` or
`=`.

Writes under --output_dir: one train_dir per model (<slug>/), results.json
(final metrics and the eval curve of every model), results.md (the table),
gap_hit1.png and gap_vs_steps.png. A model is finished once its
<slug>/result.json exists (written atomically); a rerun skips finished models
and continues an unfinished one from its last checkpoint.
`--replot_from=results.json` remakes the table and plots from the JSON alone
(compare_report.py).

This module imports no TensorFlow: what needs it runs in the subprocesses.
Its flags are defined when it runs as a program (define_flags), so tests can
import it beside modules with flags of the same names.
"""

import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import time

from absl import flags

import atomic_files
import cli
import compare_report
import configs
import model_flags
import tfrecord_files
import train_flags
from cli import UsageError

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.abspath(__file__))
RESULT_FILE = "result.json"
RESULTS_JSON = compare_report.RESULTS_JSON
# train.py's own epoch limit must never end a chunk early: the budget here is
# in steps, and every chunk restarts the input pipeline anyway.
UNLIMITED_EPOCHS = 1000000

DEFAULT_MODELS = ",".join(
    [
        "Average pooling=FrameLevelLogisticModel",
        "LSTM=LstmModel",
        "GRU=GruModel",
        "DBoF=DbofModel",
        "DCGN average pooling=DCGNModel:dcgn_pooling=average",
        "DCGN attention pooling=DCGNModel:dcgn_pooling=attention",
    ]
)


def define_flags(flag_values=FLAGS):
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string(
        "models",
        DEFAULT_MODELS,
        "Comma-separated entries [Label=]ModelClass[:flag=value...]; the flags "
        "apply to that entry only.",
        **fv,
    )
    flags.DEFINE_string(
        "output_dir", "", "Where the train_dirs, results and plots go.", **fv
    )
    flags.DEFINE_string(
        "train_data_pattern", "", "Glob(s) of the training TFRecords.", **fv
    )
    flags.DEFINE_string(
        "eval_data_pattern", "", "Glob(s) of the evaluation TFRecords.", **fv
    )
    flags.DEFINE_integer(
        "max_steps",
        None,
        "Training steps per model (or give --num_epochs).",
        **fv,
    )
    flags.DEFINE_float(
        "num_epochs",
        None,
        "Training budget in passes over the training data, turned into steps "
        "from the record count; used when --max_steps is not given.",
        **fv,
    )
    flags.DEFINE_integer(
        "batch_size", 64, "Training batch size, the same for every model.", **fv
    )
    flags.DEFINE_integer("eval_batch_size", 256, "Evaluation batch size.", **fv)
    flags.DEFINE_integer(
        "eval_every_steps",
        100,
        "Evaluate after every this many training steps.",
        **fv,
    )
    flags.DEFINE_string(
        "train_flags",
        "",
        "Extra train.py flags for every model, as one shell-quoted string "
        "(the same as giving them after `--`).",
        **fv,
    )
    flags.DEFINE_string(
        "eval_flags", "", "Extra eval.py flags, one shell-quoted string.", **fv
    )
    flags.DEFINE_string(
        "replot_from",
        "",
        "A results.json: remake the table and plots from it and stop (no training). "
        "They are written to --output_dir, by default next to a run's "
        "results.json, or to runs/replot/<name>/ for another file (such as "
        "docs/comparison-synth.json).",
        **fv,
    )
    flags.DEFINE_string("title", "", "Heading of the Markdown table.", **fv)


# ------------------------------------------------------------------ entries


def slugify(label):
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return slug or "model"


def parse_models(text):
    """The --models entries as dicts: label, slug, model, overrides."""
    entries = []
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        head, *pairs = raw.split(":")
        label, _, model = head.rpartition("=")
        model = model.strip()
        if not model:
            raise UsageError(f"--models entry {raw!r} names no model class.")
        overrides = {}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            key = key.strip().lstrip("-")
            if not key:
                raise UsageError(f"--models entry {raw!r}: {pair!r} is not flag=value.")
            if key in RESERVED_FLAGS:
                raise UsageError(
                    f"--models entry {raw!r}: {key!r} is set by compare.py; "
                    f"use {RESERVED_FLAGS[key]}."
                )
            overrides[key] = value.strip() if eq else "true"
        if not label.strip():
            label = " ".join([model] + [f"{k}={v}" for k, v in overrides.items()])
        entries.append(
            {
                "label": label.strip(),
                "slug": slugify(label),
                "model": model,
                "overrides": overrides,
            }
        )
    if not entries:
        raise UsageError("--models is empty.")
    seen = {}
    for entry in entries:
        if entry["slug"] in seen:
            raise UsageError(
                f"--models: {seen[entry['slug']]!r} and {entry['label']!r} would "
                f"share the train_dir {entry['slug']!r}; give them distinct labels "
                "(Label=ModelClass:...)."
            )
        seen[entry["slug"]] = entry["label"]
    return entries


def flag_name(arg):
    """'--lstm_cells=64' -> 'lstm_cells'; '--noflag' -> 'flag' or 'noflag'."""
    return arg.lstrip("-").split("=", 1)[0]


# Set by compare.py itself for every model, so not accepted as extra flags.
RESERVED_FLAGS = {
    "train_dir": "--output_dir",
    "model": "--models",
    "train_data_pattern": "--train_data_pattern",
    "batch_size": "--batch_size",
    "max_steps": "--max_steps",
    "num_epochs": "--num_epochs",
    "save_checkpoint_steps": "--eval_every_steps",
    "start_new_model": "a new --output_dir",
    "export_model": "nothing (the last chunk exports)",
}


def train_flag_values():
    """A private copy of train.py's flags (model and training), for checks."""
    flag_values = flags.FlagValues()
    model_flags.define(flag_values)
    train_flags.define(flag_values)
    return flag_values


def check_flag_args(args, where):
    """Refuses arguments that train.py would refuse, before any training."""
    for arg in args:
        if not arg.startswith("-"):
            raise UsageError(f"{where}: {arg!r} is not a --flag.")
        name = flag_name(arg)
        if name in RESERVED_FLAGS:
            raise UsageError(
                f"{where}: {arg!r} is set by compare.py; use {RESERVED_FLAGS[name]}."
            )
    try:
        train_flag_values()(["train.py", *args])
    except flags.Error as error:
        raise UsageError(f"{where}: {error} (not a train.py flag or value).") from None


def check_entries(entries):
    for entry in entries:
        entry["frame_level"] = configs.model_family(
            entry["model"], "--models"
        ).frame_level
        check_flag_args(
            [f"--{key}={value}" for key, value in entry["overrides"].items()],
            f"--models entry {entry['label']!r}",
        )


# --------------------------------------------------------------- running


def child_env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def write_json(path, value):
    atomic_files.atomic_write(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def run_program(program, args, log_path):
    """Runs a project program, its output appended to log_path."""
    command = [sys.executable, os.path.join(ROOT, program), *args]
    with open(log_path, "a") as log:
        log.write(f"\n$ {shlex.join(command)}\n")
        log.flush()
        result = subprocess.run(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=child_env(),
        )
    if result.returncode != 0:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise UsageError(
            f"{program} failed (exit {result.returncode}); its log is "
            f"{log_path}:\n{tail}"
        )


class Progress:
    """Counts chunks over all models; ETA from this run's elapsed time."""

    def __init__(self, total_chunks):
        self.total = total_chunks
        self.done = 0
        self.work_done = 0
        self.start = time.time()

    def skip(self, chunks):
        self.total -= chunks

    def finish(self):
        self.done += 1
        self.work_done += 1

    def line(self):
        elapsed = time.time() - self.start
        remaining = max(self.total - self.done, 0)
        eta = (
            cli.format_duration(elapsed / self.work_done * remaining)
            if self.work_done
            else "?"
        )
        return f"elapsed {cli.format_duration(elapsed)}, ETA {eta}"


def chunk_targets(max_steps, every):
    every = max(1, every)
    targets = list(range(every, max_steps, every))
    return targets + [max_steps]


def settings_fingerprint(entry, settings):
    """What must match for an earlier result of this entry to be reused."""
    keys = (
        "train_data_pattern",
        "eval_data_pattern",
        "batch_size",
        "eval_batch_size",
        "max_steps",
        "eval_every_steps",
        "train_flags",
        "eval_flags",
    )
    return {
        "model": entry["model"],
        "overrides": entry["overrides"],
        **{key: settings[key] for key in keys},
    }


def train_and_evaluate(entry, settings, index, count, progress):
    """Runs (or resumes) one entry; returns its result dict."""
    train_dir = os.path.join(settings["output_dir"], entry["slug"])
    eval_dir = os.path.join(train_dir, "eval")
    result_path = os.path.join(train_dir, RESULT_FILE)
    log_path = os.path.join(settings["output_dir"], "logs", entry["slug"] + ".log")
    os.makedirs(eval_dir, exist_ok=True)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    fingerprint = settings_fingerprint(entry, settings)
    targets = chunk_targets(settings["max_steps"], settings["eval_every_steps"])
    name = f"[{index}/{count}] {entry['label']}"

    if os.path.exists(result_path):
        result = read_json(result_path)
        differences = sorted(
            key
            for key in set(fingerprint) | set(result.get("fingerprint", {}))
            if fingerprint.get(key) != result.get("fingerprint", {}).get(key)
        )
        if differences:
            raise UsageError(
                f"{train_dir} holds a finished run with other settings "
                f"({', '.join(differences)}); use another --output_dir."
            )
        progress.skip(len(targets))
        print(
            f"{name}: skipped, finished earlier (GAP {result['final']['gap']:.4f}, "
            f"{result_path})",
            flush=True,
        )
        return result

    chunks_path = os.path.join(train_dir, "chunks.json")
    chunks = read_json(chunks_path) if os.path.exists(chunks_path) else []
    step = cli.latest_checkpoint_step(train_dir)
    if step:
        print(f"{name}: resuming from the checkpoint at step {step}", flush=True)
    train_args = [
        f"--train_dir={train_dir}",
        f"--model={entry['model']}",
        f"--train_data_pattern={settings['train_data_pattern']}",
        f"--batch_size={settings['batch_size']}",
        f"--num_epochs={UNLIMITED_EPOCHS}",
        f"--save_checkpoint_steps={settings['eval_every_steps']}",
        *(["--frame_features"] if entry["frame_level"] else []),
        *settings["train_flags"],
        *[f"--{key}={value}" for key, value in entry["overrides"].items()],
    ]
    eval_args = [
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={settings['eval_data_pattern']}",
        f"--batch_size={settings['eval_batch_size']}",
        "--run_once",
        *settings["eval_flags"],
    ]
    for number, target in enumerate(targets, 1):
        eval_path = os.path.join(eval_dir, f"step_{target}.json")
        if step >= target and os.path.exists(eval_path):
            progress.skip(1)
            continue
        what = f"steps {step}->{target}" if step < target else f"evaluating step {step}"
        print(
            f"{name}: chunk {number}/{len(targets)}, {what} ({progress.line()})",
            flush=True,
        )
        if step < target:
            start = time.time()
            # Only the last chunk's model is worth a SavedModel.
            export = "--export_model" if target == targets[-1] else "--noexport_model"
            run_program(
                "train.py", [*train_args, f"--max_steps={target}", export], log_path
            )
            seconds = time.time() - start
            reached = cli.latest_checkpoint_step(train_dir)
            if reached < target:
                raise UsageError(
                    f"train.py stopped at step {reached} before {target}; see "
                    f"{log_path}."
                )
            summary = read_json(os.path.join(train_dir, "training_summary.json"))
            chunks.append({**summary, "seconds": seconds})
            write_json(chunks_path, chunks)
            step = reached
        run_program(
            "eval.py", [*eval_args, f"--eval_results_file={eval_path}"], log_path
        )
        metrics = read_json(eval_path)
        progress.finish()
        print(
            f"{name}: step {metrics['step']}: GAP {metrics['gap']:.4f}, "
            f"Hit@1 {metrics['hit_at_one']:.4f}, loss {metrics['loss']:.4f}",
            flush=True,
        )

    curve = [read_json(os.path.join(eval_dir, f"step_{t}.json")) for t in targets]
    summary = read_json(os.path.join(train_dir, "training_summary.json"))
    result = {
        "label": entry["label"],
        "slug": entry["slug"],
        "model": entry["model"],
        "overrides": entry["overrides"],
        "train_dir": train_dir,
        "fingerprint": fingerprint,
        "final": curve[-1],
        "curve": curve,
        "parameters": summary["parameters"],
        "train_examples_per_second": steady_rate(chunks, settings["batch_size"]),
        "inference_examples_per_second": curve[-1]["examples_per_second"],
        "train_seconds": sum(chunk["seconds"] for chunk in chunks),
    }
    write_json(result_path, result)
    return result


def steady_rate(chunks, batch_size):
    """Examples/s over all chunks, each chunk's traced first step left out."""
    examples = seconds = 0.0
    for chunk in chunks:
        if chunk.get("examples_per_second"):
            counted = (chunk["steps"] - 1) * batch_size
            examples += counted
            seconds += counted / chunk["examples_per_second"]
    return examples / seconds if seconds else None


def resolve_budget(train_files):
    if FLAGS.max_steps is not None:
        if FLAGS.max_steps < 1:
            raise UsageError("--max_steps must be at least 1.")
        return FLAGS.max_steps, None
    if FLAGS.num_epochs is None:
        raise UsageError("give the training budget: --max_steps or --num_epochs.")
    records = tfrecord_files.count_records(train_files)
    steps = int(records * FLAGS.num_epochs // FLAGS.batch_size)
    if steps < 1:
        raise UsageError(
            f"--num_epochs={FLAGS.num_epochs} of {records} videos is not one "
            f"batch of --batch_size={FLAGS.batch_size}."
        )
    return steps, records


def main(argv):
    if FLAGS.replot_from:
        compare_report.replot(FLAGS.replot_from, FLAGS.output_dir)
        return
    if not FLAGS.output_dir:
        raise UsageError("--output_dir is required.")
    if FLAGS.eval_every_steps < 1:
        raise UsageError("--eval_every_steps must be at least 1.")
    entries = parse_models(FLAGS.models)
    for flag in ("train_data_pattern", "eval_data_pattern"):
        if not FLAGS[flag].value:
            raise UsageError(f"--{flag} is required.")
    train_files = tfrecord_files.match_files(
        FLAGS.train_data_pattern, "train_data_pattern"
    )
    tfrecord_files.match_files(FLAGS.eval_data_pattern, "eval_data_pattern")
    shared_train_flags = shlex.split(FLAGS.train_flags) + list(argv[1:])
    eval_flags = shlex.split(FLAGS.eval_flags)
    check_flag_args(shared_train_flags, "--train_flags (or after --)")
    check_entries(entries)
    max_steps, records = resolve_budget(train_files)
    if records is None and "://" not in FLAGS.train_data_pattern:
        records = tfrecord_files.count_records(train_files)

    settings = {
        "output_dir": os.path.abspath(FLAGS.output_dir),
        "train_data_pattern": FLAGS.train_data_pattern,
        "eval_data_pattern": FLAGS.eval_data_pattern,
        "num_train_records": records,
        "batch_size": FLAGS.batch_size,
        "eval_batch_size": FLAGS.eval_batch_size,
        "max_steps": max_steps,
        "num_epochs": FLAGS.num_epochs,
        "eval_every_steps": FLAGS.eval_every_steps,
        "train_flags": shared_train_flags,
        "eval_flags": eval_flags,
        "title": FLAGS.title,
        "command": shlex.join(["python", "compare.py", *sys.argv[1:]]),
    }
    os.makedirs(settings["output_dir"], exist_ok=True)
    print(
        f"comparing {len(entries)} models, {max_steps} steps of batch "
        f"{FLAGS.batch_size} each, eval every {FLAGS.eval_every_steps} steps; "
        f"output in {settings['output_dir']}",
        flush=True,
    )
    chunks_per_model = len(chunk_targets(max_steps, FLAGS.eval_every_steps))
    progress = Progress(chunks_per_model * len(entries))
    model_results = []
    for index, entry in enumerate(entries, 1):
        model_results.append(
            train_and_evaluate(entry, settings, index, len(entries), progress)
        )
    results = {
        "settings": settings,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "models": model_results,
    }
    write_json(os.path.join(settings["output_dir"], RESULTS_JSON), results)
    compare_report.write_outputs(results, settings["output_dir"])
    print(compare_report.markdown_table(results))
    print(
        f"done in {cli.format_duration(time.time() - progress.start)}; see "
        f"{os.path.join(settings['output_dir'], compare_report.RESULTS_MD)}"
    )


if __name__ == "__main__":
    define_flags()
    cli.run(main)
