"""Does each model learn video structure that frame averaging cannot see?

Generates frame-level tasks that each isolate one kind of structure, trains
every model row under one budget with train.py's own step, and writes a
table of eval GAP (mean and spread over seeds) to docs/dcgn_learning.md.

    .venv/bin/python benchmarks/dcgn_learning.py            # the full table
    .venv/bin/python benchmarks/dcgn_learning.py --tasks=order --rows=dcgn,dcgn_shots --seeds=1

A video is a sequence of 4-12 shots (1-40 frames each, so shots both
shorter and longer than the DCGN kernel), 30 to --max_frames frames in all.
Each shot shows one scene: a fixed random prototype plus per-frame noise.
The tasks (labels are functions of the shot sequence):

  presence     scene s appears (averaging suffices)
  order        scene a first appears before scene b (pairs of scenes)
  adjacency    a shot of scene a is directly followed by a shot of scene b
  recurrence   scene s appears in two or more separate shots
  position     scene s opens the video / scene s closes it
  alternation  a shot alternates frame by frame between scenes a and b
               (distractor shots hold a then b, the same frames split)
  counting     the video has exactly k shots

"Averaging ceiling" is an estimate of the best any frame-averaging model can
do: an MLP given the exact share of frames of each scene (what a perfect
average of perfectly separable frames shows), trained on the same videos.

Rows: the paper's six (average pooling, LSTM, GRU, DBoF, DCGN average,
DCGN attention), DCGN with KTS shots, and a plain strided Conv1D stack of
the same depth and width as a reference written outside the DCGN code.
"""

import argparse
import dataclasses
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import atomic_files  # noqa: E402
import common  # noqa: E402
import configs  # noqa: E402
import eval_util  # noqa: E402
import kts  # noqa: E402
import losses  # noqa: E402
import training  # noqa: E402
import video_level_models  # noqa: E402

NUM_SCENES = 12
# The tasks whose labels make up "mixed", a 40-class task of inter-shot
# structure (the kind of task DCGN's shot level is for).
MIXED = ("order", "adjacency", "recurrence", "position")
TASKS = (
    "presence",
    "order",
    "adjacency",
    "recurrence",
    "position",
    "alternation",
    "counting",
    "mixed",
)


class World:
    """Scene prototypes and the class definitions of every task."""

    def __init__(self, feature_dim, seed):
        rng = np.random.default_rng(seed)
        prototypes = rng.normal(size=(NUM_SCENES, feature_dim))
        self.prototypes = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
        # What every frame shares (a camera's look, a feature extractor's bias).
        common = rng.normal(size=feature_dim)
        self.common = common / np.linalg.norm(common)
        pairs = [(a, b) for a in range(NUM_SCENES) for b in range(NUM_SCENES) if a != b]
        order = rng.permutation(len(pairs))
        self.pairs = [pairs[i] for i in order[:12]]

    def num_classes(self, task):
        if task in ("order", "adjacency", "alternation"):
            return len(self.pairs)
        if task == "position":
            return 2 * NUM_SCENES
        if task == "counting":
            return 9  # 4 to 12 shots
        if task == "mixed":
            return len(self.pairs) + 10 + 3 * 6
        return NUM_SCENES

    def labels(self, task, scenes, alternating):
        """Multi-hot labels of a video from its shot scenes and alternations."""
        if task == "mixed":
            # 40 classes: every order pair, 10 adjacency pairs, recurrence,
            # opening and closing of 6 scenes each.
            parts = {t: self.labels(t, scenes, alternating) for t in MIXED}
            return np.concatenate(
                [
                    parts["order"],
                    parts["adjacency"][:10],
                    parts["recurrence"][:6],
                    parts["position"][:6],
                    parts["position"][NUM_SCENES : NUM_SCENES + 6],
                ]
            )
        y = np.zeros(self.num_classes(task), np.float32)
        first = {}
        for i, s in enumerate(scenes):
            first.setdefault(s, i)
        if task == "presence":
            y[list(first)] = 1
        elif task == "order":
            for c, (a, b) in enumerate(self.pairs):
                y[c] = a in first and b in first and first[a] < first[b]
        elif task == "adjacency":
            follows = set(zip(scenes[:-1], scenes[1:]))
            for c, pair in enumerate(self.pairs):
                y[c] = pair in follows
        elif task == "recurrence":
            for s in set(scenes):
                y[s] = scenes.count(s) >= 2
        elif task == "position":
            y[scenes[0]] = 1
            y[NUM_SCENES + scenes[-1]] = 1
        elif task == "alternation":
            for c, pair in enumerate(self.pairs):
                y[c] = pair in alternating
        elif task == "counting":
            y[len(scenes) - 4] = 1
        return y


def make_split(
    world,
    task,
    num_videos,
    max_frames,
    noise,
    seed,
    offset=0.0,
    shot_frames=(4, 40),
    short_shots=0.2,
    num_shots=(4, 12),
):
    """Videos of `task`: frames [N, T, D], num_frames, labels, scene shares."""
    rng = np.random.default_rng(seed)
    dim = world.prototypes.shape[1]
    frames = np.zeros((num_videos, max_frames, dim), np.float32)
    num_frames = np.zeros(num_videos, np.int32)
    labels = np.zeros((num_videos, world.num_classes(task)), np.float32)
    shares = np.zeros((num_videos, NUM_SCENES), np.float32)
    true_shots = []  # the planted shot boundaries of each video
    for v in range(num_videos):
        count = int(rng.integers(num_shots[0], num_shots[1] + 1))
        scenes = [int(rng.integers(NUM_SCENES))]
        while len(scenes) < count:
            scene = int(rng.integers(NUM_SCENES))
            if scene != scenes[-1]:
                scenes.append(scene)
        # Shot lengths: some short (1-3 frames, below the kernel), the rest
        # in shot_frames.
        lengths = np.where(
            rng.random(count) < short_shots,
            rng.integers(1, 4, count),
            rng.integers(shot_frames[0], shot_frames[1] + 1, count),
        )
        lengths = np.maximum(1, lengths * min(1.0, max_frames / lengths.sum()))
        lengths = lengths.astype(int)
        while lengths.sum() < 30:
            lengths[rng.integers(count)] += 1
        # Alternation: a pair of the task's pairs shares one shot of the video,
        # alternating (a positive) or split (a distractor).
        alternating = set()
        shot_ids = []
        pair_shot = int(rng.integers(count)) if rng.random() < 0.7 else -1
        pair = world.pairs[int(rng.integers(len(world.pairs)))]
        for i, (scene, length) in enumerate(zip(scenes, lengths)):
            ids = np.full(length, scene)
            if i == pair_shot and length >= 2:
                half = length // 2
                if rng.random() < 0.5:
                    ids = np.where(np.arange(length) % 2 == 0, pair[0], pair[1])
                    alternating.add(pair)
                else:
                    ids = np.where(np.arange(length) < half, pair[0], pair[1])
            shot_ids.append(ids)
        ids = np.concatenate(shot_ids)[:max_frames]
        n = len(ids)
        frames[v, :n] = (
            world.prototypes[ids]
            + noise * rng.normal(size=(n, dim))
            + offset * world.common
        )
        num_frames[v] = n
        labels[v] = world.labels(task, scenes, alternating)
        shares[v] = np.bincount(ids, minlength=NUM_SCENES) / n
        edges = np.minimum(np.concatenate([[0], np.cumsum(lengths)]), n)
        true_shots.append(np.unique(edges))
    return {
        "video_matrix": frames,
        "num_frames": num_frames,
        "labels": labels,
        "shares": shares,
        "true_shots": true_shots,
    }


def with_shots(split, num_shots, penalty):
    """The split with KTS shot_boundaries, computed as the input pipeline does."""
    if num_shots:
        split = dict(split)
        split["shot_boundaries"] = np.asarray(
            kts.batch_shot_boundaries(
                split["video_matrix"], split["num_frames"], num_shots, penalty
            ),
            np.int32,
        )
    return split


def batches(split, batch_size, rng):
    keys = [
        k
        for k in ("video_matrix", "num_frames", "labels", "shot_boundaries", "shares")
        if k in split
    ]
    order = rng.permutation(len(split["labels"]))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        index = order[start : start + batch_size]
        yield {k: tf.constant(split[k][index]) for k in keys}


class StridedConvReference(keras.Model):
    """A plain strided Conv1D stack + Dense: the reference outside DCGN's code.

    moe_head=True ends it in the head every model of this project ends in
    (the starter's 2-mixture MoE) instead of Dense(256) + sigmoid, to tell
    what the body learns from what the head adds.
    """

    def __init__(self, levels, filters, kernel, num_classes, moe_head=False):
        super().__init__()
        self.convs = [
            keras.layers.Conv1D(
                filters, kernel, strides=kernel, padding="same", activation="relu"
            )
            for _ in range(levels)
        ]
        self.flatten = keras.layers.Flatten()
        if moe_head:
            self.head = video_level_models.make_classifier(
                "MoeModel", num_classes, configs.HeadConfig()
            )
        else:
            self.head = keras.Sequential(
                [
                    keras.layers.Dense(256, activation="relu"),
                    keras.layers.Dense(num_classes, activation="sigmoid"),
                ]
            )

    def call(self, batch, training=None):
        x = tf.math.l2_normalize(batch["video_matrix"], axis=-1)
        for conv in self.convs:
            x = conv(x)
        return {"predictions": self.head(self.flatten(x))}


class ShareOracle(keras.Model):
    """The averaging ceiling: an MLP over each scene's share of the frames."""

    def __init__(self, num_classes):
        super().__init__()
        self.hidden = keras.layers.Dense(256, activation="relu")
        self.out = keras.layers.Dense(num_classes, activation="sigmoid")

    def call(self, batch, training=None):
        return {"predictions": self.out(self.hidden(batch["shares"]))}


def make_rows(args):
    """Row name -> (label, builder(num_classes), (shots, KTS penalty))."""

    def config(model, body, num_classes):
        return configs.ModelConfig(
            model=model,
            frame_features=True,
            feature_names=("rgb",),
            feature_sizes=(args.features,),
            max_frames=args.max_frames,
            num_classes=num_classes,
            body=body,
        )

    def dcgn(
        pooling,
        shots=0,
        penalty=configs.DCGNConfig.dcgn_kts_penalty,
        propagation=configs.DCGNConfig.dcgn_propagation,
    ):
        size = configs.DCGNConfig(dcgn_levels=args.levels, dcgn_filters=args.filters)
        return dataclasses.replace(
            size,
            dcgn_pooling=pooling,
            dcgn_shots=shots,
            dcgn_kts_penalty=penalty,
            dcgn_propagation=propagation,
        )

    def product(model, body):
        return lambda c: common.build_model(config(model, body, c))

    recurrent = configs.RecurrentConfig(lstm_cells=args.filters, lstm_layers=1)
    dbof = configs.DbofConfig(
        dbof_cluster_size=4 * args.filters, dbof_hidden_size=args.filters
    )
    no_shots = (0, 0.0)
    shots = (args.shots, configs.DCGNConfig.dcgn_kts_penalty)
    fixed_shots = (args.shots, 0.0)
    # The other propagations, each as DCGN average, attention, and attention
    # over shots (proportional and fixed-m KTS).
    alternatives = {}
    for prefix, propagation in (
        ("dcgn_residual", "residual"),
        ("dcgn_paper", "paper"),
    ):
        for suffix, pooling, shot_choice, what in (
            ("_average", "average", no_shots, ""),
            ("", "attention", no_shots, ""),
            ("_shots", "attention", shots, f", {args.shots} shots"),
            (
                "_fixed_shots",
                "attention",
                fixed_shots,
                f", {args.shots} shots, fixed-m KTS",
            ),
        ):
            alternatives[prefix + suffix] = (
                f"DCGN {pooling}, {propagation}{what}",
                product(
                    "DCGNModel", dcgn(pooling, *shot_choice, propagation=propagation)
                ),
                shot_choice,
            )
    return {
        "average": (
            "Average pooling",
            product("FrameLevelLogisticModel", None),
            no_shots,
        ),
        "lstm": ("LSTM", product("LstmModel", recurrent), no_shots),
        "gru": ("GRU", product("GruModel", recurrent), no_shots),
        "dbof": ("DBoF", product("DbofModel", dbof), no_shots),
        "dcgn": ("DCGN average", product("DCGNModel", dcgn("average")), no_shots),
        "dcgn_attention": (
            "DCGN attention",
            product("DCGNModel", dcgn("attention")),
            no_shots,
        ),
        "dcgn_shots": (
            f"DCGN attention, {args.shots} shots",
            product("DCGNModel", dcgn("attention", *shots)),
            shots,
        ),
        "dcgn_fixed_shots": (
            f"DCGN attention, {args.shots} shots, fixed-m KTS",
            product("DCGNModel", dcgn("attention", *fixed_shots)),
            fixed_shots,
        ),
        **alternatives,
        "conv": (
            "Strided Conv1D reference",
            lambda c: StridedConvReference(args.levels, args.filters, 3, c),
            no_shots,
        ),
        "conv_moe": (
            "Strided Conv1D reference, MoE head",
            lambda c: StridedConvReference(
                args.levels, args.filters, 3, c, moe_head=True
            ),
            no_shots,
        ),
        "ceiling": ("Averaging ceiling (share MLP)", ShareOracle, no_shots),
    }


def train_and_score(build, train, test, num_classes, args, seed):
    keras.utils.set_random_seed(seed)
    model = build(num_classes)
    step = training.make_train_step(
        model,
        keras.optimizers.Adam(args.learning_rate),
        losses.CrossEntropyLoss(),
        args.batch_size,
    )
    rng = np.random.default_rng(seed)
    done = 0
    while done < args.steps:
        for batch in batches(train, args.batch_size, rng):
            step(batch)
            done += 1
            if done >= args.steps:
                break
    predict = tf.function(
        lambda b: model(b, training=False)["predictions"], reduce_retracing=True
    )
    keys = [
        k
        for k in ("video_matrix", "num_frames", "shot_boundaries", "shares")
        if k in test
    ]
    outputs = [
        predict({k: tf.constant(test[k][i : i + 256]) for k in keys}).numpy()
        for i in range(0, len(test["labels"]), 256)
    ]
    return eval_util.calculate_gap(np.concatenate(outputs), test["labels"])


def run(args):
    rows = make_rows(args)
    world = World(args.features, seed=0)
    results = {}  # (task, row) -> [GAP per seed]
    start = time.time()
    for task in args.tasks:
        train = make_split(
            world, task, args.train_videos, args.max_frames, args.noise, 1
        )
        test = make_split(world, task, args.test_videos, args.max_frames, args.noise, 2)
        num_classes = world.num_classes(task)
        for row in args.rows:
            label, build, shots = rows[row]
            train_row, test_row = with_shots(train, *shots), with_shots(test, *shots)
            gaps = [
                train_and_score(build, train_row, test_row, num_classes, args, seed)
                for seed in range(args.seeds)
            ]
            results[task, row] = gaps
            print(
                f"{task:12s} {label:34s} GAP {statistics.mean(gaps):.3f} "
                f"(min {min(gaps):.3f}, max {max(gaps):.3f})  "
                f"[{time.time() - start:.0f} s]",
                flush=True,
            )
    return rows, results


def markdown(args, rows, results):
    lines = [
        "| model | " + " | ".join(args.tasks) + " |",
        "|---|" + "---:|" * len(args.tasks),
    ]
    for row in args.rows:
        cells = []
        for task in args.tasks:
            gaps = results[task, row]
            spread = f" ± {(max(gaps) - min(gaps)) / 2:.3f}" if len(gaps) > 1 else ""
            cells.append(f"{statistics.mean(gaps):.3f}{spread}")
        lines.append(f"| {rows[row][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument(
        "--rows",
        default="ceiling,average,lstm,gru,dbof,dcgn,dcgn_attention,dcgn_shots,conv",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--max_frames", type=int, default=150)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--train_videos", type=int, default=1600)
    parser.add_argument("--test_videos", type=int, default=400)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=0.001)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--shots", type=int, default=27)
    parser.add_argument("--output", default="", help="also write the table here")
    args = parser.parse_args()
    args.tasks = args.tasks.split(",")
    args.rows = args.rows.split(",")
    rows, results = run(args)
    table = markdown(args, rows, results)
    print(table)
    if args.output:
        atomic_files.atomic_write(args.output, table + "\n")


if __name__ == "__main__":
    main()
