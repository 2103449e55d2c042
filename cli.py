"""What every program's command line shares; imports no TensorFlow.

One user-error type (`UsageError`, from errors.py), raised at the edges
(flags, files, records) and printed as one line by `run`; everything else
keeps its traceback, so a genuine bug still shows where it happened. The
flags that train.py, eval.py and inference.py share, progress lines, the
checkpoint-step helpers and the duration format live here too, so that
compare.py uses the same ones without loading TensorFlow. Imported first by
every program: it keeps TensorFlow's C++ log quiet unless asked.
"""

import datetime
import logging
import os
import re
import signal
import sys
import time

from absl import app
from absl import flags
from absl import logging as absl_logging

import configs
from errors import UsageError  # cli.UsageError, as every program raises it


def _quiet_tensorflow():
    """TensorFlow's C++ INFO and WARNING lines (oneDNN, CPU features, XLA
    service) are off unless asked for: TF_CPP_MIN_LOG_LEVEL set in the
    environment, or absl's --verbosity (-v) on the command line, shows them;
    errors always show. Takes effect only before TensorFlow loads, which is
    why every program imports this module first."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    asked = any(
        arg.split("=")[0] in ("--verbosity", "-verbosity", "--v", "-v")
        for arg in sys.argv[1:]
    )
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if asked else "2"


_quiet_tensorflow()

DEFAULT_TRAIN_DIR = "/tmp/yt8m_model/"
MODEL_FLAG_HINT = (
    " (the model and its flags come from --train_dir/model_config.json, "
    "which train.py wrote: model flags belong to train.py)"
)


def define_program_flags(flag_values=flags.FLAGS):
    """The flags of train.py, eval.py and inference.py alike."""
    flags.DEFINE_string(
        "train_dir",
        DEFAULT_TRAIN_DIR,
        "The directory that holds checkpoints, the model config and the "
        "exported model.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "skip_corrupt_files",
        False,
        "Skip data files that fail to read (with a warning that counts them) "
        "instead of stopping.",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "compression_type",
        "",
        ["", "GZIP", "ZLIB"],
        "Compression of the TFRecord files: empty (the published data), GZIP or ZLIB.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "dequantize_in_model",
        False,
        "Ship uint8 frames from the input pipeline and dequantise them inside "
        "the compiled step: a quarter of the host-to-device traffic, same "
        "results.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "segment_labels",
        False,
        "Work on the --segment_size-frame segments (the 2019 task) instead of "
        "whole videos: train.py fine-tunes on the rated segments of "
        "segment-rated records, eval.py scores them (only rated (segment, "
        "class) pairs count), inference.py writes a Class,Segments "
        "submission in which each class of --segment_label_ids_file lists its "
        "best --segment_max_pred segments.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "segment_size",
        configs.SEGMENT_SIZE,
        "Frames per segment (--segment_labels).",
        flag_values=flag_values,
    )


def define_prediction_flags(flag_values, batch_size, num_readers):
    """The flags of eval.py and inference.py alike (defaults: the starter's)."""
    fv = dict(flag_values=flag_values)
    flags.DEFINE_integer(
        "batch_size",
        batch_size,
        "Videos (segments with --segment_labels) per batch.",
        **fv,
    )
    flags.DEFINE_integer(
        "top_k",
        20,
        "Classes kept per video: those GAP counts (eval.py), those written "
        "(inference.py).",
        **fv,
    )
    flags.DEFINE_integer(
        "num_readers",
        num_readers,
        "Accepted for the starter's command lines; files are read in order, "
        "one at a time: parsing, not reading, bounds the speed, and rows keep "
        "the order of the records.",
        **fv,
    )


def run(main, unknown_flag_hint=""):
    """absl's app.run: UsageError -> one line on stderr and exit status 1.

    unknown_flag_hint is added to absl's message for a flag the program does
    not know (eval.py says that model flags belong to train.py).
    """

    def guarded(argv):
        # TensorFlow's own INFO lines (saver, tracing) drown the progress
        # lines, which are printed (cli.say); --verbosity=0 shows them again.
        if not flags.FLAGS["verbosity"].present:
            absl_logging.set_verbosity(absl_logging.WARNING)
        if "tensorflow" in sys.modules:
            sys.modules["tensorflow"].get_logger().setLevel(logging.WARNING)
        try:
            main(argv)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:
            print(f"error: {error}{unknown_flag_hint}", file=sys.stderr)
            print(
                f"Pass --help to list {os.path.basename(argv[0])}'s flags.",
                file=sys.stderr,
            )
            sys.exit(1)

    app.run(guarded, flags_parser=parse)


class StopSignals:
    """SIGTERM and SIGINT ask a long run to stop at its next safe point.

    The first one is only recorded (`received`, its number); the program
    finishes what it is doing, saves, and exits with 128 + that number (143
    for SIGTERM, 130 for SIGINT), as a process killed by it would. A second
    one acts at once, as it would without this.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = 0
        self._previous = {}

    def __enter__(self):
        for number in self.SIGNALS:
            self._previous[number] = signal.signal(number, self._record)
        return self

    def __exit__(self, *exc_info):
        self._restore()

    def _record(self, number, frame):
        del frame
        self.received = number
        self._restore()

    def _restore(self):
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def signal_name(number):
    return signal.Signals(number).name


def check_positive(flag_values, *names):
    """A UsageError naming the first flag of `names` that is not >= 1."""
    for name in names:
        value = flag_values[name].value
        if value is not None and value < 1:
            raise UsageError(f"--{name}={value}: give a number of at least 1.")


def say(line):
    """A progress or result line, printed once and flushed."""
    print(line, flush=True)


def warn(line):
    """A warning the user should read, on stderr."""
    print(f"warning: {line}", file=sys.stderr, flush=True)


def format_duration(seconds):
    return str(datetime.timedelta(seconds=int(round(seconds))))


def checkpoint_step(checkpoint_path):
    """The global step a checkpoint was written at (its `-N` suffix)."""
    return int(checkpoint_path.rsplit("-", 1)[-1])


def latest_checkpoint_step(train_dir):
    """The step of train_dir's latest checkpoint (0 when none).

    Reads TensorFlow's `checkpoint` state file as text, so that callers
    without TensorFlow (compare.py) agree with tf.train.latest_checkpoint.
    """
    path = os.path.join(train_dir, "checkpoint")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        for line in f:
            found = re.match(r'model_checkpoint_path:\s*"(.*)"', line)
            if found:
                return checkpoint_step(found.group(1))
    return 0


class Progress:
    """A progress line for a count of work: done / total, rate, ETA.

    The rate (and so the ETA) is measured from the first item finished on,
    so that start-up (TensorFlow, loading a model, tracing) does not count
    against the steady rate. Lines come at most every `every_secs` seconds,
    and always for the last item. total None: not known (no ETA).
    """

    def __init__(self, total, unit, every_secs=5.0, clock=time.monotonic):
        self.total = total
        self.unit = unit
        self.every_secs = every_secs
        self._clock = clock
        self._first = None  # (time, done) when the first item finished
        self._last_line = None  # when the last line was printed
        self._last_done = None  # and for how many items

    def measure(self, done):
        """(items per second, seconds left) at `done` items; either is None
        until it can be told (the rate from the second item on)."""
        now = self._clock()
        if self._first is None:
            self._first = (now, done)
        first_time, first_done = self._first
        if now <= first_time or done <= first_done:
            return None, None
        rate = (done - first_done) / (now - first_time)
        left = None if self.total is None else max(self.total - done, 0) / rate
        return rate, left

    def update(self, done, last=False):
        """Prints the line for `done` items if it is due (always for the
        last item: done == total, or last=True); returns it or None."""
        rate, left = self.measure(done)
        now = self._clock()
        finished = last or (self.total is not None and done >= self.total)
        due = self._last_line is None or now - self._last_line >= self.every_secs
        if not (due or finished) or self._last_done == done:
            return None
        self._last_line, self._last_done = now, done
        line = (
            f"{done}/{self.total} {self.unit}" if self.total else f"{done} {self.unit}"
        )
        if rate is not None:
            line += f" | {rate:.3g} {self.unit}/s"
            if left is not None and not finished:
                line += f" | ETA {format_duration(left)}"
        say(line)
        return line
