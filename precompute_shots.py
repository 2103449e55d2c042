"""Copies frame-level TFRecords with KTS shot boundaries stored in them.

Reading the copies with shots (e.g. --dcgn_shots=32) then skips the KTS
computation, which is far slower than parsing:

  python precompute_shots.py --input_data_pattern='/data/frame/train*' \
      --output_dir=/data/frame_shots32 --num_shots=32
"""

from absl import app
from absl import flags
from absl import logging

import readers

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "input_data_pattern", None, "Glob of frame-level TFRecord files to copy."
)
flags.DEFINE_string("output_dir", None, "Directory for the copies (same file names).")
flags.DEFINE_integer(
    "num_shots",
    32,
    "Shots per video; stores num_shots+1 "
    "boundaries in the context feature shot_boundaries.",
)
flags.DEFINE_integer("max_frames", 300, "Frames segmented per video.")
flags.DEFINE_string("feature_names", "rgb,audio", "Frame feature names.")
flags.DEFINE_string("feature_sizes", "1024,128", "Their sizes.")
flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
flags.mark_flags_as_required(["input_data_pattern", "output_dir"])


def main(argv):
    del argv
    written = readers.add_shot_boundaries_to_records(
        FLAGS.input_data_pattern,
        FLAGS.output_dir,
        FLAGS.num_shots,
        max_frames=FLAGS.max_frames,
        feature_names=FLAGS.feature_names.split(","),
        feature_sizes=[int(s) for s in FLAGS.feature_sizes.split(",")],
        overwrite=FLAGS.overwrite,
    )
    logging.info("Wrote %d files to %s", len(written), FLAGS.output_dir)


if __name__ == "__main__":
    app.run(main)
