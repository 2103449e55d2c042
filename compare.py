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
`--replot_from=results.json` remakes the table and plots from the JSON alone.

This module imports no TensorFlow: what needs it runs in the subprocesses.
"""

import datetime
import json
import math
import os
import re
import shlex
import struct
import subprocess
import sys
import time

from absl import app
from absl import flags

import atomic_files

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.abspath(__file__))
RESULT_FILE = "result.json"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
BAR_PNG = "gap_hit1.png"
CURVE_PNG = "gap_vs_steps.png"
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

flags.DEFINE_string(
    "models",
    DEFAULT_MODELS,
    "Comma-separated entries [Label=]ModelClass[:flag=value...]; the flags "
    "apply to that entry only.",
)
flags.DEFINE_string("output_dir", "", "Where the train_dirs, results and plots go.")
flags.DEFINE_string("train_data_pattern", "", "Glob(s) of the training TFRecords.")
flags.DEFINE_string("eval_data_pattern", "", "Glob(s) of the evaluation TFRecords.")
flags.DEFINE_integer(
    "max_steps", None, "Training steps per model (or give --num_epochs)."
)
flags.DEFINE_float(
    "num_epochs",
    None,
    "Training budget in passes over the training data, turned into steps "
    "from the record count; used when --max_steps is not given.",
)
flags.DEFINE_integer("batch_size", 64, "Training batch size, the same for every model.")
flags.DEFINE_integer("eval_batch_size", 256, "Evaluation batch size.")
flags.DEFINE_integer(
    "eval_every_steps", 100, "Evaluate after every this many training steps."
)
flags.DEFINE_string(
    "train_flags",
    "",
    "Extra train.py flags for every model, as one shell-quoted string "
    "(the same as giving them after `--`).",
)
flags.DEFINE_string("eval_flags", "", "Extra eval.py flags, one shell-quoted string.")
flags.DEFINE_string(
    "replot_from",
    "",
    "A results.json: remake the table and plots from it and stop (no training). "
    "They are written next to it, or to --output_dir when given.",
)
flags.DEFINE_string("title", "", "Heading of the Markdown table.")


class UsageError(Exception):
    """Bad flags or data; printed as one line without a traceback."""


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


# Runs in a child process: train.py's flags would clash with this module's
# (--batch_size, --max_steps), and this module stays free of TensorFlow.
DESCRIBE_PROGRAMS = """
import json
from absl import flags
import frame_level_models, models, train, video_level_models
classes = {}
for module in (frame_level_models, video_level_models):
    for name, cls in vars(module).items():
        if (isinstance(cls, type) and issubclass(cls, models.BaseModel)
                and cls.classify is not models.BaseModel.classify):
            classes[name] = {"frame_level": bool(cls.frame_level)}
registered = flags.FLAGS._flags()
print(json.dumps({
    "flags": sorted(registered),
    "bool_flags": sorted(n for n, f in registered.items() if f.boolean),
    "models": classes,
}))
"""

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


def program_facts():
    result = subprocess.run(
        [sys.executable, "-c", DESCRIBE_PROGRAMS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=child_env(),
    )
    if result.returncode != 0:
        raise UsageError(
            "could not load the model definitions:\n" + result.stderr[-2000:]
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_flag_args(args, facts, where):
    known = set(facts["flags"])
    bools = set(facts["bool_flags"])
    for arg in args:
        if not arg.startswith("-"):
            raise UsageError(f"{where}: {arg!r} is not a --flag.")
        name = flag_name(arg)
        if name in RESERVED_FLAGS:
            raise UsageError(
                f"{where}: {arg!r} is set by compare.py; use {RESERVED_FLAGS[name]}."
            )
        if name in known or (name.startswith("no") and name[2:] in bools):
            continue
        raise UsageError(f"{where}: {arg!r} is not a train.py flag.")


def check_entries(entries, facts):
    for entry in entries:
        if entry["model"] not in facts["models"]:
            raise UsageError(
                f"--models: {entry['model']!r} is not a model here; choose one of "
                f"{sorted(facts['models'])}."
            )
        entry["frame_level"] = facts["models"][entry["model"]]["frame_level"]
        for key in entry["overrides"]:
            if key not in facts["flags"]:
                raise UsageError(
                    f"--models entry {entry['label']!r}: {key!r} is not a "
                    "train.py flag."
                )


# --------------------------------------------------------------- the data


def match(pattern, flag):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    files = set()
    for part in pattern.split(","):
        if part.strip():
            files.update(tf.io.gfile.glob(part.strip()))
    if not files:
        raise UsageError(f"--{flag}={pattern!r} matches no file.")
    return sorted(files)


def local_files(pattern, flag):
    """Sorted files of a comma-separated glob (local paths, no TensorFlow)."""
    import glob  # pylint: disable=g-import-not-at-top

    if not pattern:
        raise UsageError(f"--{flag} is required.")
    if "://" in pattern:
        return match(pattern, flag)
    files = set()
    for part in pattern.split(","):
        if part.strip():
            files.update(glob.glob(os.path.expanduser(part.strip())))
    if not files:
        raise UsageError(f"--{flag}={pattern!r} matches no file.")
    return sorted(files)


def count_records(files):
    """TFRecords in `files`, from the length headers (no payload is read)."""
    total = 0
    for path in files:
        with open(path, "rb") as f:
            while True:
                header = f.read(12)
                if not header:
                    break
                if len(header) < 12:
                    raise UsageError(f"{path} is truncated.")
                (length,) = struct.unpack("<Q", header[:8])
                f.seek(length + 4, os.SEEK_CUR)
                total += 1
    return total


# --------------------------------------------------------------- running


def child_env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def write_json(path, value):
    atomic_files.atomic_write(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def latest_step(train_dir):
    """The step of train_dir's latest checkpoint (0 when none), no TensorFlow."""
    path = os.path.join(train_dir, "checkpoint")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        for line in f:
            found = re.match(r'model_checkpoint_path:\s*"(.*)"', line)
            if found:
                return int(found.group(1).rsplit("-", 1)[-1])
    return 0


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


def format_duration(seconds):
    return str(datetime.timedelta(seconds=int(round(seconds))))


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
            format_duration(elapsed / self.work_done * remaining)
            if self.work_done
            else "?"
        )
        return f"elapsed {format_duration(elapsed)}, ETA {eta}"


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
    step = latest_step(train_dir)
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
            reached = latest_step(train_dir)
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


# ------------------------------------------------------------ table, plots


def bold_top2(values, higher_is_better=True):
    """Indices of the two best values, as the paper bolds them."""
    ranked = sorted(
        (i for i, v in enumerate(values) if v is not None and math.isfinite(v)),
        key=lambda i: values[i],
        reverse=higher_is_better,
    )
    return set(ranked[:2])


def fmt_number(value, spec):
    return "n/a" if value is None else format(value, spec)


def markdown_table(results):
    """The paper's Table 2 (GAP, Hit@1 in %, loss) plus PERR, mAP and speeds."""
    models = results["models"]
    columns = [
        ("GAP (%)", [100 * m["final"]["gap"] for m in models], ".2f", True),
        ("Hit@1 (%)", [100 * m["final"]["hit_at_one"] for m in models], ".2f", True),
        ("Loss", [m["final"]["loss"] for m in models], ".3f", False),
        ("PERR (%)", [100 * m["final"]["perr"] for m in models], ".2f", True),
        ("mAP (%)", [100 * m["final"]["map"] for m in models], ".2f", True),
    ]
    header = ["Model", *[c[0] for c in columns]]
    header += ["Parameters", "Train examples/s", "Inference examples/s"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    # With two models or fewer, bolding the best two would bold everything.
    best = [
        bold_top2(values, better) if len(models) > 2 else set()
        for _, values, _, better in columns
    ]
    for i, model in enumerate(models):
        cells = [model["label"]]
        for (_, values, spec, _), top in zip(columns, best):
            text = fmt_number(values[i], spec)
            cells.append(f"**{text}**" if i in top else text)
        cells += [
            f"{model['parameters']:,}",
            fmt_number(model.get("train_examples_per_second"), ".1f"),
            fmt_number(model.get("inference_examples_per_second"), ".1f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(results):
    settings = results["settings"]
    title = settings.get("title") or "Model comparison"
    steps = {m["final"]["step"] for m in results["models"]}
    examples = {m["final"]["num_examples"] for m in results["models"]}
    lines = [
        f"## {title}",
        "",
        f"Trained on `{settings['train_data_pattern']}` "
        f"({settings.get('num_train_records', '?')} videos), evaluated on "
        f"`{settings['eval_data_pattern']}` ({', '.join(map(str, sorted(examples)))} "
        f"videos); {', '.join(map(str, sorted(steps)))} steps of batch "
        f"{settings['batch_size']} per model. "
        f"{'Best two of each metric in bold. ' if len(results['models']) > 2 else ''}"
        "Speeds are on the machine that ran the comparison; inference "
        "examples/s is eval.py's, including input reading.",
        "",
        markdown_table(results),
        "",
        "Per-model settings (besides the shared train flags "
        f"`{shlex.join(settings['train_flags']) or 'none'}`):",
        "",
    ]
    for model in results["models"]:
        overrides = " ".join(f"--{k}={v}" for k, v in model["overrides"].items())
        lines.append(
            f"- {model['label']}: `--model={model['model']}"
            f"{' ' + overrides if overrides else ''}`"
        )
    lines += ["", f"Command: `{settings['command']}`", ""]
    return "\n".join(lines)


def plot(results, directory):
    import matplotlib  # pylint: disable=g-import-not-at-top

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    models = results["models"]
    labels = [m["label"] for m in models]
    title = results["settings"].get("title") or "Model comparison"

    figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(models) + 2), 4.2))
    width = 0.38
    positions = range(len(models))
    for offset, key, name in (
        (-width / 2, "gap", "GAP"),
        (width / 2, "hit_at_one", "Hit@1"),
    ):
        values = [100 * m["final"][key] for m in models]
        bars = axes.bar([p + offset for p in positions], values, width, label=name)
        axes.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    axes.set_xticks(list(positions))
    axes.set_xticklabels(labels, rotation=20, ha="right")
    axes.set_ylabel("percent")
    # Headroom above 100 % keeps the legend clear of the bars.
    axes.set_ylim(0, 118)
    axes.set_title(f"{title}: final GAP and Hit@1")
    axes.legend(loc="upper center", ncol=2, frameon=False)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(os.path.join(directory, BAR_PNG), dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for model in models:
        steps = [point["step"] for point in model["curve"]]
        gaps = [100 * point["gap"] for point in model["curve"]]
        axes.plot(steps, gaps, marker="o", markersize=3, label=model["label"])
    axes.set_xlabel("training step")
    axes.set_ylabel("eval GAP (%)")
    axes.set_title(f"{title}: eval GAP during training")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(directory, CURVE_PNG), dpi=110)
    plt.close(figure)


def write_outputs(results, directory):
    """results.json (unless it is the source), results.md and the PNGs."""
    atomic_files.atomic_write(
        os.path.join(directory, RESULTS_MD), markdown_report(results)
    )
    plot(results, directory)


def replot(path, directory=""):
    try:
        results = read_json(path)
    except (OSError, ValueError) as error:
        raise UsageError(f"--replot_from={path!r}: {error}") from None
    if "models" not in results or "settings" not in results:
        raise UsageError(f"--replot_from={path!r} is not a compare.py results.json.")
    directory = directory or os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    write_outputs(results, directory)
    print(f"wrote {os.path.join(directory, RESULTS_MD)}, {BAR_PNG}, {CURVE_PNG}")
    print(markdown_table(results))


# -------------------------------------------------------------------- main


def resolve_budget(train_files):
    if FLAGS.max_steps is not None:
        if FLAGS.max_steps < 1:
            raise UsageError("--max_steps must be at least 1.")
        return FLAGS.max_steps, None
    if FLAGS.num_epochs is None:
        raise UsageError("give the training budget: --max_steps or --num_epochs.")
    records = count_records(train_files)
    steps = int(records * FLAGS.num_epochs // FLAGS.batch_size)
    if steps < 1:
        raise UsageError(
            f"--num_epochs={FLAGS.num_epochs} of {records} videos is not one "
            f"batch of --batch_size={FLAGS.batch_size}."
        )
    return steps, records


def main(argv):
    if FLAGS.replot_from:
        replot(FLAGS.replot_from, FLAGS.output_dir)
        return
    if not FLAGS.output_dir:
        raise UsageError("--output_dir is required.")
    if FLAGS.eval_every_steps < 1:
        raise UsageError("--eval_every_steps must be at least 1.")
    entries = parse_models(FLAGS.models)
    train_files = local_files(FLAGS.train_data_pattern, "train_data_pattern")
    local_files(FLAGS.eval_data_pattern, "eval_data_pattern")
    train_flags = shlex.split(FLAGS.train_flags) + list(argv[1:])
    eval_flags = shlex.split(FLAGS.eval_flags)
    facts = program_facts()
    check_flag_args(train_flags, facts, "--train_flags (or after --)")
    check_entries(entries, facts)
    max_steps, records = resolve_budget(train_files)
    if records is None and "://" not in FLAGS.train_data_pattern:
        records = count_records(train_files)

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
        "train_flags": train_flags,
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
    write_outputs(results, settings["output_dir"])
    print(markdown_table(results))
    print(
        f"done in {format_duration(time.time() - progress.start)}; see "
        f"{os.path.join(settings['output_dir'], RESULTS_MD)}"
    )


def run():
    def guarded(argv):
        try:
            main(argv)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)

    app.run(guarded)


if __name__ == "__main__":
    run()
