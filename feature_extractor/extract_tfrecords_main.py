r"""Writes YouTube-8M frame-level records from video files.

    python feature_extractor/extract_tfrecords_main.py \
        --input_videos_csv=videos.csv --output_tfrecords_file=features/train.tfrecord \
        --model_dir=~/yt8m

The CSV has a line `<video_file>,<labels>` per video, labels as integers
joined by `;` (empty for videos without labels). Each video becomes one
`tf.train.SequenceExample` in the 2018 frame-level schema that readers.py
reads: context `id` (the video file as written in the CSV), `labels`,
`mean_rgb` and `mean_audio`; feature lists `rgb` (1024 bytes a frame) and
`audio` (128 bytes a frame), one frame a second (--frames_per_second), at
most --max_frames. train.py, eval.py and inference.py take them as they take
the dataset's.

--num_shards > 1 writes `<name>-00000-of-0000N<ext>` instead of the one file,
each shard whole or absent (written under a temporary name, renamed when
complete); a rerun skips the shards already complete. --num_workers
processes extract in parallel. A video that cannot be decoded, is empty or
is shorter than one frame is reported by name and skipped (the starter's
behaviour), or with --noskip_bad_videos stops the run with exit status 1,
the shards finished so far kept.

Model files (Inception-v3, the PCA, VGGish): see assets.py; they are found
in, unpacked into, or downloaded into --model_dir.
"""

import csv
import dataclasses
import multiprocessing
import os
import signal
import sys

if __package__ in (None, ""):
    # Run as a script (as the starter's was): import from the project root.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import cli  # noqa: E402  (first: it quiets TensorFlow's C++ log before TensorFlow loads)

from absl import flags  # noqa: E402

import atomic_files  # noqa: E402
from feature_extractor import assets  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "output_tfrecords_file",
    None,
    "Where the records are written (with --num_shards > 1, the shards are "
    "named after it: train.tfrecord -> train-00000-of-00004.tfrecord, ...).",
)
flags.DEFINE_string(
    "input_videos_csv",
    None,
    'CSV file with lines "<video_file>,<labels>", labels as integers joined with ";".',
)
flags.DEFINE_string(
    "model_dir",
    os.path.join("~", "yt8m"),
    "Directory of the model files (Inception-v3, the YouTube-8M PCA, VGGish): "
    "used if there, unpacked from their archives there, else downloaded into it.",
)
flags.DEFINE_integer(
    "frames_per_second", 1, "Frames (and audio features) per second of video."
)
flags.DEFINE_integer(
    "max_frames", 300, "Frames taken from the start of each video, at most."
)
flags.DEFINE_bool(
    "skip_frame_level_features",
    False,
    "Write only the video-level features (mean_rgb, mean_audio), no frames.",
)
flags.DEFINE_string("labels_feature_key", "labels", "Context key of the labels.")
flags.DEFINE_string(
    "image_feature_key", "rgb", "Feature-list key of the image features."
)
flags.DEFINE_string(
    "video_file_feature_key", "id", "Context key of the video id (its file)."
)
flags.DEFINE_bool(
    "audio_features",
    True,
    "Compute the audio features with VGGish (its files are needed in "
    "--model_dir). --noaudio_features leaves audio to "
    "--insert_zero_audio_features, as in the starter.",
)
flags.DEFINE_bool(
    "insert_zero_audio_features",
    True,
    "With --noaudio_features: write an `audio` list of 128 zero bytes a frame "
    "(and a zero mean_audio), so that models trained on the dataset's two "
    "features take the records.",
)
flags.DEFINE_bool(
    "download_assets",
    True,
    "Download missing model files from their official addresses; "
    "--nodownload_assets stops with the file to fetch instead.",
)
flags.DEFINE_integer("num_shards", 1, "Output files; each is whole or absent.")
flags.DEFINE_integer(
    "num_workers", 1, "Processes that extract in parallel (each loads the networks)."
)
flags.DEFINE_bool(
    "skip_bad_videos",
    True,
    "Report a video that gives no frame and go on; --noskip_bad_videos stops "
    "at it with exit status 1.",
)

flags.mark_flags_as_required(["output_tfrecords_file", "input_videos_csv"])


@dataclasses.dataclass(frozen=True)
class Video:
    index: int
    path: str
    labels: tuple
    line: int  # in the CSV


@dataclasses.dataclass(frozen=True)
class RecordFormat:
    """How a video's features become a record (the starter's key flags)."""

    id_key: str = "id"
    labels_key: str = "labels"
    image_key: str = "rgb"
    frame_level: bool = True
    zero_audio: bool = True


@dataclasses.dataclass(frozen=True)
class Settings:
    """What each worker needs to build its extractor."""

    model_dir: str
    frames_per_second: int
    max_frames: int
    audio: bool
    record: RecordFormat


def read_videos_csv(path):
    """The CSV's videos; a malformed line is an error naming its number."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as error:
        raise cli.UsageError(f"--input_videos_csv={path}: {error.strerror}.") from None
    videos = []
    for number, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise cli.UsageError(
                f"{path} line {number}: expected <video_file>,<labels>, got {len(row)} "
                "fields (quote a file name that has a comma)."
            )
        video_file, labels = row
        try:
            label_ids = sorted(int(x) for x in labels.split(";") if x.strip())
        except ValueError:
            raise cli.UsageError(
                f"{path} line {number}: labels {labels!r} are not integers joined by ';'."
            ) from None
        if any(label < 0 for label in label_ids):
            raise cli.UsageError(
                f"{path} line {number}: a label is negative ({labels})."
            )
        videos.append(Video(len(videos), video_file, tuple(label_ids), number))
    if not videos:
        raise cli.UsageError(f"--input_videos_csv={path} lists no video.")
    return videos


def shard_paths(output, num_shards):
    if num_shards == 1:
        return [output]
    stem, ext = os.path.splitext(output)
    return [f"{stem}-{i:05d}-of-{num_shards:05d}{ext}" for i in range(num_shards)]


def shard_of(index, num_videos, num_shards):
    """Contiguous blocks of the CSV, so each shard keeps the CSV's order."""
    return index * num_shards // num_videos


# --- in each worker ---------------------------------------------------------

_worker = {}


@dataclasses.dataclass
class Outcome:
    """What a worker made of one video.

    record: the serialized SequenceExample, or None when there is none;
    bad: why the video gave no record (it is skipped or stops the run);
    fatal: a model file could not be loaded (stops the run);
    seconds: time spent decoding, in the image network and in audio;
    silent: the video has no audio track (its audio features are zeros).
    """

    video: Video
    record: bytes = None
    bad: str = None
    fatal: str = None
    seconds: dict = dataclasses.field(default_factory=dict)
    silent: bool = False


def _extract(settings, video):
    from feature_extractor import feature_extractor  # TensorFlow: workers only
    from feature_extractor import video_decoding

    if "extractor" not in _worker:
        try:
            _worker["extractor"] = feature_extractor.VideoFeatureExtractor(
                settings.model_dir,
                settings.frames_per_second,
                settings.max_frames,
                audio=settings.audio,
                download=False,
            )
        except cli.UsageError as error:
            return Outcome(video, fatal=str(error))
    try:
        features = _worker["extractor"].extract(video.path)
    except video_decoding.BadVideo as error:
        return Outcome(video, bad=str(error))
    return Outcome(
        video,
        record=_record(video, features, settings),
        seconds=features.seconds,
        silent=settings.audio and features.audio is None,
    )


def _record(video, features, settings):
    import numpy as np
    import tensorflow as tf

    from feature_extractor.feature_extractor import AUDIO_SIZE

    fmt = settings.record
    audio, mean_audio = features.audio, features.mean_audio
    if audio is None and (settings.audio or fmt.zero_audio):
        audio = np.zeros((len(features.rgb), AUDIO_SIZE), np.uint8)
        mean_audio = np.zeros(AUDIO_SIZE, np.float32)

    def byte_list(rows):
        return tf.train.FeatureList(
            feature=[
                tf.train.Feature(bytes_list=tf.train.BytesList(value=[r.tobytes()]))
                for r in rows
            ]
        )

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    context = {
        fmt.id_key: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[video.path.encode()])
        ),
        fmt.labels_key: tf.train.Feature(
            int64_list=tf.train.Int64List(value=video.labels)
        ),
        "mean_" + fmt.image_key: floats(features.mean_rgb),
    }
    lists = {fmt.image_key: byte_list(features.rgb)}
    if audio is not None:
        context["mean_audio"] = floats(mean_audio)
        lists["audio"] = byte_list(audio)
    example = tf.train.SequenceExample(context=tf.train.Features(feature=context))
    if fmt.frame_level:
        example.feature_lists.CopyFrom(tf.train.FeatureLists(feature_list=lists))
    return example.SerializeToString()


def _start_worker(threads):
    import tensorflow as tf

    # Ctrl-C reaches the whole process group: the parent alone handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tf.config.threading.set_intra_op_parallelism_threads(threads)


class _Stopped(Exception):
    """SIGINT or SIGTERM arrived; the number is the signal's."""


def _raise_stopped(number, frame):
    del frame
    raise _Stopped(number)


# --- the program ------------------------------------------------------------


def _finished_shard_ids(path, id_key):
    import tensorflow as tf

    ids = set()
    try:
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            example = tf.train.SequenceExample.FromString(serialized)
            ids.add(example.context.feature[id_key].bytes_list.value[0].decode())
    except (tf.errors.OpError, ValueError, IndexError) as error:
        raise cli.UsageError(
            f"{path} cannot be read ({getattr(error, 'message', error)}); delete it "
            "and run again to write it anew."
        ) from None
    return ids


def main(argv):
    del argv
    cli.check_positive(
        FLAGS, "frames_per_second", "max_frames", "num_shards", "num_workers"
    )
    videos = read_videos_csv(FLAGS.input_videos_csv)
    if FLAGS.num_shards > len(videos):
        raise cli.UsageError(
            f"--num_shards={FLAGS.num_shards} is more than the {len(videos)} videos "
            f"of {FLAGS.input_videos_csv}."
        )
    model_dir = os.path.expanduser(FLAGS.model_dir)
    record = RecordFormat(
        id_key=FLAGS.video_file_feature_key,
        labels_key=FLAGS.labels_feature_key,
        image_key=FLAGS.image_feature_key,
        frame_level=not FLAGS.skip_frame_level_features,
        zero_audio=FLAGS.insert_zero_audio_features,
    )
    settings = Settings(
        model_dir,
        FLAGS.frames_per_second,
        FLAGS.max_frames,
        FLAGS.audio_features,
        record,
    )
    # Fetch what is missing once, here, before any worker starts.
    for asset in assets.IMAGE_ASSETS:
        assets.ensure(asset, model_dir, FLAGS.download_assets)
    for asset in assets.AUDIO_ASSETS if settings.audio else ():
        try:
            assets.ensure(asset, model_dir, FLAGS.download_assets)
        except cli.UsageError as error:
            raise cli.UsageError(
                f"{error} Or pass --noaudio_features to write zero audio "
                "features, as the starter did."
            ) from None

    import common  # TensorFlow: after the flags and the CSV are checked

    output = os.path.expanduser(FLAGS.output_tfrecords_file)
    output_dir = os.path.dirname(os.path.abspath(output))
    common.check_writable(output_dir, "the directory of --output_tfrecords_file")
    paths = shard_paths(output, FLAGS.num_shards)
    shards = [[] for _ in paths]
    for video in videos:
        shards[shard_of(video.index, len(videos), len(paths))].append(video)
    todo = []
    for path, members in zip(paths, shards):
        if not os.path.exists(path):
            todo.append((path, members))
            continue
        strangers = _finished_shard_ids(path, record.id_key) - {v.path for v in members}
        if strangers:
            raise cli.UsageError(
                f"{path} exists and holds videos this CSV does not put in it (e.g. "
                f"{sorted(strangers)[0]}): it was written from another CSV or "
                "--num_shards. Delete it, or choose another --output_tfrecords_file."
            )
    if len(todo) < len(paths):
        cli.say(
            f"{len(paths) - len(todo)} of {len(paths)} shards already complete: skipped."
        )
    remaining = [video for _, members in todo for video in members]
    if not remaining:
        cli.say("Nothing to do.")
        return
    totals = _write_shards(todo, remaining, settings)
    _summarise(totals, len(paths), len(todo))


def _results(settings, remaining):
    """(video, record, problem, seconds, had audio) in CSV order."""
    workers = min(FLAGS.num_workers, len(remaining))
    if workers == 1:
        return map(lambda video: _extract(settings, video), remaining), None
    threads = max(1, os.cpu_count() // workers)
    # spawn: TensorFlow does not survive fork.
    pool = multiprocessing.get_context("spawn").Pool(workers, _start_worker, (threads,))
    results = pool.imap(_Extract(settings), remaining, chunksize=1)
    return results, pool


class _Extract:
    """A picklable `_extract` bound to the settings, for the worker pool."""

    def __init__(self, settings):
        self.settings = settings

    def __call__(self, video):
        return _extract(self.settings, video)


def _write_shards(todo, remaining, settings):
    import tensorflow as tf

    results, pool = _results(settings, remaining)
    totals = {"videos": 0, "written": 0, "skipped": [], "seconds": {}}
    progress = cli.Progress(len(remaining), "videos")
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _raise_stopped)
    try:
        for path, members in todo:
            with atomic_files.atomic_path(path) as tmp:
                with tf.io.TFRecordWriter(tmp) as writer:
                    for _ in members:
                        outcome = next(results)
                        totals["videos"] += 1
                        _take(outcome, totals, writer)
                        for part, value in outcome.seconds.items():
                            totals["seconds"][part] = (
                                totals["seconds"].get(part, 0.0) + value
                            )
                        progress.update(totals["videos"])
    except _Stopped as stop:
        cli.say(f"{cli.signal_name(stop.args[0])}: stopped. " + _kept_message(todo))
        sys.exit(128 + stop.args[0])
    except atomic_files.DiskFull as error:
        raise atomic_files.DiskFull(f"{error} {_kept_message(todo)}") from None
    finally:
        if pool is not None:
            pool.terminate()
    return totals


def _kept_message(todo):
    done = sum(1 for path, _ in todo if os.path.exists(path))
    return (
        f"The {done} shard(s) finished in this run are kept; the same command "
        "goes on from them."
    )


def _take(outcome, totals, writer):
    """Writes the video's record, or reports why there is none."""
    if outcome.fatal:
        raise cli.UsageError(outcome.fatal)
    video = outcome.video
    if outcome.bad:
        where = f"{video.path} (line {video.line} of {FLAGS.input_videos_csv})"
        if not FLAGS.skip_bad_videos:
            raise cli.UsageError(
                f"{where} {outcome.bad}. Fix it or remove it from the CSV, or pass "
                "--skip_bad_videos. The shards finished so far are kept and a rerun "
                "skips them."
            )
        cli.warn(f"skipped {where}: it {outcome.bad}.")
        totals["skipped"].append(video.path)
        return
    if outcome.silent:
        cli.warn(f"{video.path} has no audio track: its audio features are zeros.")
    writer.write(outcome.record)
    totals["written"] += 1


def _summarise(totals, num_shards, written_shards):
    if totals["written"] == 0:
        raise cli.UsageError(
            "no video gave features (see the warnings above); nothing was written."
        )
    line = f"Encoded {totals['written']} of {totals['videos']} videos into {written_shards} shard(s)"
    if totals["skipped"]:
        line += f"; skipped {len(totals['skipped'])}: {', '.join(totals['skipped'])}"
    cli.say(line + ".")
    seconds = totals["seconds"]
    if seconds:
        cli.say(
            "Time, summed over workers: "
            + ", ".join(f"{part} {value:.1f} s" for part, value in seconds.items())
        )


if __name__ == "__main__":
    cli.run(main)
