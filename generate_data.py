"""Synthetic YouTube-8M-format data with a planted shot/order structure.

    python generate_data.py --output_dir=/tmp/yt8m-synth [--num_train=2000 ...]

writes, for each split (train, validate, test):

    frame/<split>NNNN.tfrecord   tf.train.SequenceExample: context `id`
                                 (bytes, "g0000123"), `labels` (int64 list,
                                 absent in test), in validate and test the
                                 2019 segment ratings `segment_labels`,
                                 `segment_start_times`, `segment_scores`
                                 (segment_ratings); feature lists `rgb`,
                                 `audio`: one bytes value per frame of 1024
                                 resp. 128 uint8 (names and sizes from
                                 --feature_names / --feature_sizes)
    video/<split>NNNN.tfrecord   tf.train.Example: `id`, `labels` (absent in
                                 test), `mean_<name>` float[size]: the mean of
                                 the video's dequantised frames
    truth/<split>.jsonl          per video: id, labels (test too), num_frames,
                                 shots as [start, end, [events]]
    structure.json               the class rules, the event ids, the settings

and prints a summary (counts, label frequencies, the frame-averaging ceiling).
Everything is a deterministic function of --seed and the other flags; each
video draws from its own random stream keyed by (seed, split, index), so a
video does not change when the number of shards changes.

Features
--------
D = sum(feature_sizes) dimensions (1152 by default), split into the named
features in order. There are E events, each with a prototype vector
mu_e = 0.75 * N(0, I_D). A frame of event e in segment s of video v is

    clip(mu_e + o_v + j_s + sigma * n),   o_v ~ 0.25 N(0, I),
                                          j_s ~ 0.2 N(0, I),  n ~ N(0, I)

(the two shots of a split segment, below, share one j_s)
with sigma = --frame_noise (0.65), clipped to the dequantisation range
[-1.992, 2.008] and quantised to the nearest point of the grid
x = q * 4/255 + 4/512 - 2 (error <= 2/255; the grid values are the features).
Per dimension that is mean ~0, std ~1, a few percent of values clipped, like
the PCA-whitened YouTube-8M features. Consecutive frames of one shot have a
cosine similarity around 0.6, frames across a shot boundary under 0.1, so
kernel temporal segmentation with a cosine kernel can find the shots.

Videos and shots
----------------
A video has N frames, uniform in [--min_frames, --max_frames] (60-300), and
is a sequence of segments; each segment is either
  * one pure shot: all frames of one event, or
  * a two-event segment (first, second), which is either
      - ALTERNATING: one shot whose frames alternate first, second, first,
        ... (frame i of the shot shows `first` for even i), or
      - SPLIT: two consecutive pure shots, first then second,
    in both cases ceil(L/2) frames of `first` and floor(L/2) of `second`,
    from the same noise draws, so the two arrangements hold the very same
    multiset of frames.
Shots are at least 6 frames (segments of two events at least 12); the mean
shot length of a video is drawn from 12-30 frames. Neighbouring pure shots
never show the same event, so every shot boundary is visible.

Classes (default --num_classes=40; the ranges scale with it)
------------------------------------------------------------
The events are split into rule events (each used by exactly one rule) and
--num_distractor_events distractor events (used by no rule). A label is a
deterministic function of the video's shot sequence (`oracle_labels`):

  presence   class c <- event X appears in the video.             (12 classes)
  order      class c <- a pure shot of A occurs before a pure shot of B;
             twin pairs: B before A is a second class c'.  (6 pairs, 12 cls)
             one-way:    B before A gives no label.               (4 classes)
  within     class c <- a shot alternates P and Q;
             twin pairs: P and Q in separate pure shots is a second
             class c'.                                       (5 pairs, 10 cls)
             one-way:    separate shots give no label.            (2 classes)

Class ids are contiguous in that order (structure.json lists each class's
kind and events). Each video plants 1-5 rules (probabilities .2 .3 .25 .15
.1, the first always a presence or twin rule so every video has a label;
rules drawn with long-tailed frequencies). A presence plant is one pure shot
of X; an order plant is a pure A shot and a pure B shot at random positions,
in an order drawn 50/50; a within plant is one (P, Q) segment, alternating or
split 50/50, P or Q first 50/50. The remaining segments are distractor
shots (80% pure, 20% alternating two distractor events, so alternation by
itself is no cue). Labels per video: 1-5, mean ~2.4.

Why frame averaging cannot reach the best score
-----------------------------------------------
The mean of a video's frames depends only on how many frames of each event
it holds (plus noise); the order of the shots and the arrangement inside a
two-event segment do not change it at all. Each order twin pair, and each
within twin pair, is a 50/50 coin flip given that multiset, drawn
independently of every segment length, so the best any function of the
frame average can do is the "bag oracle": probability 1 for the presence
classes it sees, 0.5 for both classes of a pair whose events both occur,
0.5 for a one-way rule whose events both occur. The summary prints the GAP
of that bag oracle (about 0.84 with the defaults), against 1.0 for the
"sequence oracle" that sees the shot sequence. A model of shots and of
local order can close that gap; averaging cannot.
"""

import cli  # noqa: F401  (first: it quiets TensorFlow's C++ log before TensorFlow loads)

import dataclasses
import inspect
import json
import os
import time

from absl import app
from absl import flags
import numpy as np

import configs
import eval_util
import model_flags
import quantization
from quantization import dequantize, quantize

FEATURE_MIN = quantization.OFFSET
FEATURE_MAX = 255 * quantization.SCALE + quantization.OFFSET

PROTOTYPE_SCALE = 0.75
VIDEO_OFFSET_SCALE = 0.25
SEGMENT_OFFSET_SCALE = 0.2
DEFAULT_FRAME_NOISE = 0.65

MIN_SHOT_FRAMES = 6
MEAN_SHOT_FRAMES = (12.0, 30.0)
PLANTS_PER_VIDEO = (0.2, 0.3, 0.25, 0.15, 0.1)  # P(1 plant), ..., P(5)
DISTRACTOR_ALTERNATING = 0.2

SPLITS = ("train", "validate", "test")
LABELLED_SPLITS = ("train", "validate")
# Frame-level records of these splits carry 2019-style segment ratings.
RATED_SPLITS = ("validate", "test")
SEGMENT_SIZE = 5

PRESENCE, ORDER, WITHIN = "presence", "order", "within"


# ---------------------------------------------------------------------------
# The world: classes, rules, event prototypes.


@dataclasses.dataclass(frozen=True)
class Rule:
    """One labelling rule.

    presence: events (x,), positive = its class, other = None.
    order:    events (a, b); positive <- a before b; other <- b before a.
    within:   events (p, q); positive <- p, q alternate in one shot;
              other <- p and q only in separate shots.
    other is None for one-way rules.
    """

    kind: str
    events: tuple
    positive: int
    other: object = None

    @property
    def classes(self):
        if self.other is None:
            return (self.positive,)
        return (self.positive, self.other)


@dataclasses.dataclass(frozen=True)
class World:
    num_classes: int
    rules: tuple
    distractors: tuple  # event ids no rule uses
    prototypes: np.ndarray  # float32 [num_events, D]
    rule_weights: np.ndarray  # relative planting frequency of each rule

    @property
    def num_events(self):
        return self.prototypes.shape[0]

    def class_kinds(self):
        kinds = [""] * self.num_classes
        for rule in self.rules:
            for c in rule.classes:
                kinds[c] = rule.kind
        return kinds


def class_budget(num_classes):
    """Counts: presence, order pairs, order one-way, within pairs, one-way."""
    if num_classes < 4:
        raise ValueError("num_classes must be at least 4, got %d" % num_classes)
    order_pairs = int(round(num_classes * 0.15))
    order_oneway = int(round(num_classes * 0.10))
    within_pairs = int(round(num_classes * 0.125))
    within_oneway = int(round(num_classes * 0.05))
    presence = (
        num_classes - 2 * order_pairs - order_oneway - 2 * within_pairs - within_oneway
    )
    return presence, order_pairs, order_oneway, within_pairs, within_oneway


def make_world(num_classes=40, num_distractor_events=16, feature_dim=1152, seed=0):
    if num_distractor_events < 3:
        # Neighbouring distractor shots must differ, and an alternating
        # distractor needs two events besides its neighbours'.
        raise ValueError("num_distractor_events must be at least 3")
    presence, order_pairs, order_oneway, within_pairs, within_oneway = class_budget(
        num_classes
    )
    rules = []
    next_class, next_event = 0, 0

    def add(kind, num_events, twin):
        nonlocal next_class, next_event
        events = tuple(range(next_event, next_event + num_events))
        other = next_class + 1 if twin else None
        rules.append(Rule(kind, events, next_class, other))
        next_event += num_events
        next_class += 2 if twin else 1

    for _ in range(presence):
        add(PRESENCE, 1, False)
    for _ in range(order_pairs):
        add(ORDER, 2, True)
    for _ in range(order_oneway):
        add(ORDER, 2, False)
    for _ in range(within_pairs):
        add(WITHIN, 2, True)
    for _ in range(within_oneway):
        add(WITHIN, 2, False)
    assert next_class == num_classes
    distractors = tuple(range(next_event, next_event + num_distractor_events))
    num_events = next_event + num_distractor_events

    rng = np.random.default_rng(np.random.SeedSequence([seed, 7001]))
    prototypes = PROTOTYPE_SCALE * rng.standard_normal((num_events, feature_dim))
    prototypes = prototypes.astype(np.float32)
    # Long-tailed like YouTube-8M's label counts, but every rule keeps enough
    # videos to be learnable at a few thousand videos.
    ranks = rng.permutation(len(rules))
    weights = 1.0 / (ranks + 4.0) ** 0.8
    return World(
        num_classes, tuple(rules), distractors, prototypes, weights / weights.sum()
    )


# ---------------------------------------------------------------------------
# A video's plan: segments, their order, and the shots and labels they imply.


@dataclasses.dataclass(frozen=True)
class Segment:
    events: tuple  # (e,) a pure shot; (first, second) a two-event segment
    length: int
    alternating: bool = False  # two events: one alternating shot, else split
    rule: int = -1  # index of the planted rule, -1 for a distractor


@dataclasses.dataclass(frozen=True)
class Shot:
    start: int
    end: int  # exclusive
    events: tuple  # (e,) pure; (first, second) alternating

    def to_json(self):
        return [self.start, self.end, list(self.events)]


@dataclasses.dataclass(frozen=True)
class Plan:
    """segments in the order their noise is drawn; order = playback order."""

    segments: tuple
    order: tuple

    @property
    def num_frames(self):
        return sum(s.length for s in self.segments)

    def shots(self):
        shots, t = [], 0
        for i in self.order:
            seg = self.segments[i]
            if len(seg.events) == 1 or seg.alternating:
                shots.append(Shot(t, t + seg.length, seg.events))
            else:
                first = (seg.length + 1) // 2
                shots.append(Shot(t, t + first, seg.events[:1]))
                shots.append(Shot(t + first, t + seg.length, seg.events[1:]))
            t += seg.length
        return shots

    def reversed(self):
        return dataclasses.replace(self, order=self.order[::-1])

    def with_arrangement(self, index, alternating):
        segments = list(self.segments)
        segments[index] = dataclasses.replace(segments[index], alternating=alternating)
        return dataclasses.replace(self, segments=tuple(segments))

    def with_swapped(self, i, j):
        """Swaps the playback positions of segments i and j."""
        order = list(self.order)
        pi, pj = order.index(i), order.index(j)
        order[pi], order[pj] = j, i
        return dataclasses.replace(self, order=tuple(order))


def oracle_labels(world, shots):
    """The labels of a shot sequence: the definition of every class."""
    shot_events = [tuple(s.events) if isinstance(s, Shot) else tuple(s) for s in shots]
    present = {e for ev in shot_events for e in ev}
    labels = set()
    for rule in world.rules:
        if rule.kind == PRESENCE:
            if rule.events[0] in present:
                labels.add(rule.positive)
        elif rule.kind == ORDER:
            a, b = rule.events
            pos_a = [i for i, ev in enumerate(shot_events) if ev == (a,)]
            pos_b = [i for i, ev in enumerate(shot_events) if ev == (b,)]
            if pos_a and pos_b:
                if min(pos_a) < max(pos_b):
                    labels.add(rule.positive)
                if rule.other is not None and min(pos_b) < max(pos_a):
                    labels.add(rule.other)
        else:
            p, q = rule.events
            within = any(set(ev) == {p, q} for ev in shot_events)
            if within:
                labels.add(rule.positive)
            elif rule.other is not None and (p,) in shot_events and (q,) in shot_events:
                labels.add(rule.other)
    return sorted(labels)


def bag_probabilities(world, events_present):
    """Best label probabilities from the set of events alone (no order/shots).

    Under the planting scheme a rule's events occur only when it was planted,
    and every order / arrangement choice is a fair coin drawn independently of
    the segment lengths, so this is the best any function of the frame
    average can do (it even knows the events exactly, which averaging does
    not).
    """
    p = np.zeros(world.num_classes, np.float64)
    for rule in world.rules:
        if all(e in events_present for e in rule.events):
            if rule.kind == PRESENCE:
                p[rule.positive] = 1.0
            else:
                for c in rule.classes:
                    p[c] = 0.5
    return p


def plan_video(world, rng, min_frames=60, max_frames=300):
    num_frames = int(rng.integers(min_frames, max_frames + 1))
    rules = world.rules
    num_plants = 1 + int(rng.choice(len(PLANTS_PER_VIDEO), p=PLANTS_PER_VIDEO))
    # The first plant always yields a label, so no video is label-less and no
    # coin flip is conditioned on (that would leak order into frame counts).
    anchors = np.array(
        [i for i, r in enumerate(rules) if r.kind == PRESENCE or r.other is not None]
    )
    w = world.rule_weights
    first = int(rng.choice(anchors, p=w[anchors] / w[anchors].sum()))
    rest = np.array([i for i in range(len(rules)) if i != first])
    extra = min(num_plants - 1, len(rest))
    chosen = [first]
    if extra:
        chosen += [
            int(i)
            for i in rng.choice(
                rest, size=extra, replace=False, p=w[rest] / w[rest].sum()
            )
        ]

    def min_length(num_events):
        return MIN_SHOT_FRAMES * num_events

    # Each plant as (segments [events, alternating, rule], order coin).
    plants = []
    for r in chosen:
        rule = rules[r]
        if rule.kind == PRESENCE:
            plants.append(([[rule.events, False, r]], None))
        elif rule.kind == ORDER:
            a_first = bool(rng.random() < 0.5)
            plants.append(
                ([[rule.events[:1], False, r], [rule.events[1:], False, r]], a_first)
            )
        else:
            alternating = bool(rng.random() < 0.5)
            events = rule.events if rng.random() < 0.5 else rule.events[::-1]
            plants.append(([[events, alternating, r]], None))
    # Short videos hold fewer plants; dropped from the end so the anchor stays.
    while (
        len(plants) > 1
        and sum(min_length(len(s[0])) for p in plants for s in p[0]) > num_frames
    ):
        plants.pop()

    planted = [s for p, _ in plants for s in p]
    used = sum(min_length(len(s[0])) for s in planted)
    mean_shot = rng.uniform(*MEAN_SHOT_FRAMES)
    # Counted in segments, not shots: the distractor count must not depend on
    # whether a within plant was split (that would leak the coin into the bag).
    wanted = max(2, int(round(num_frames / mean_shot))) - len(planted)
    distractors = []
    for _ in range(max(1, wanted)):
        two = bool(rng.random() < DISTRACTOR_ALTERNATING)
        if used + min_length(2 if two else 1) > num_frames:
            break
        used += min_length(2 if two else 1)
        distractors.append([None, two, -1])

    specs = planted + distractors
    mins = np.array(
        [min_length(len(s[0]) if s[0] is not None else 1 + s[1]) for s in specs]
    )
    share = rng.dirichlet(np.full(len(specs), 2.0))
    lengths = mins + rng.multinomial(num_frames - mins.sum(), share)

    order = [int(i) for i in rng.permutation(len(specs))]
    k = 0
    for segs, a_first in plants:
        if a_first is not None:
            ia, ib = k, k + 1
            pa, pb = order.index(ia), order.index(ib)
            if (pa < pb) != a_first:
                order[pa], order[pb] = ib, ia
        k += len(segs)

    # Distractor events are chosen in playback order so that neighbours differ.
    pool = np.array(world.distractors)
    for pos, i in enumerate(order):
        if specs[i][0] is not None:
            continue
        banned = set()
        for npos in (pos - 1, pos + 1):
            if 0 <= npos < len(order) and specs[order[npos]][0] is not None:
                banned.update(specs[order[npos]][0])
        allowed = pool[~np.isin(pool, list(banned))]
        n_events = 2 if specs[i][1] else 1
        specs[i][0] = tuple(
            int(e) for e in rng.choice(allowed, size=n_events, replace=False)
        )

    segments = tuple(
        Segment(tuple(int(e) for e in ev), int(n), bool(alt) and len(ev) == 2, r)
        for (ev, alt, r), n in zip(specs, lengths)
    )
    return Plan(segments, tuple(order))


def render(world, plan, rng, frame_noise=DEFAULT_FRAME_NOISE):
    """Float features [num_frames, D], clipped to the quantisation range."""
    dim = world.prototypes.shape[1]
    video_offset = VIDEO_OFFSET_SCALE * rng.standard_normal(dim)
    video_offset = video_offset.astype(np.float32)
    blocks = []
    for seg in plan.segments:
        offset = video_offset + (
            SEGMENT_OFFSET_SCALE * rng.standard_normal(dim)
        ).astype(np.float32)
        x = rng.standard_normal((seg.length, dim), dtype=np.float32)
        x *= np.float32(frame_noise)
        x += offset
        first = (seg.length + 1) // 2 if len(seg.events) == 2 else seg.length
        x[:first] += world.prototypes[seg.events[0]]
        if len(seg.events) == 2:
            x[first:] += world.prototypes[seg.events[1]]
            if seg.alternating:
                idx = np.empty(seg.length, np.int64)
                idx[0::2] = np.arange(first)
                idx[1::2] = np.arange(first, seg.length)
                x = x[idx]
        blocks.append(x)
    x = np.concatenate([blocks[i] for i in plan.order])
    np.clip(x, FEATURE_MIN, FEATURE_MAX, out=x)
    return x


# ---------------------------------------------------------------------------
# Records.


def video_rngs(seed, split, index):
    """(plan, noise, segment ratings) random streams of one video."""
    streams = np.random.SeedSequence([seed, SPLITS.index(split), index]).spawn(3)
    return tuple(np.random.default_rng(stream) for stream in streams)


def segment_ratings(world, shots, labels, rng, segment_size=SEGMENT_SIZE):
    """The 2019 task's ratings of a video: [(class, start frame, score)].

    For each presence class among the labels (or, in a video without one, a
    presence class drawn at random), up to 3 segments that show its event
    in at least half their frames are rated 1 and up to 2 others are rated
    0, as the 2019 raters judged a few segments of a video for one class.
    """
    event_of = {r.positive: r.events[0] for r in world.rules if r.kind == PRESENCE}
    frames = []
    for shot in shots:
        for i in range(shot.end - shot.start):
            frames.append(shot.events[i % len(shot.events)])
    frames = np.asarray(frames)
    classes = [c for c in labels if c in event_of] or [
        int(rng.choice(sorted(event_of)))
    ]
    ratings = []
    starts = np.arange(0, len(frames), segment_size)
    for class_id in classes:
        shown = np.array(
            [
                2 * np.sum(frames[s : s + segment_size] == event_of[class_id])
                >= len(frames[s : s + segment_size])
                for s in starts
            ]
        )
        for score, count in ((1.0, 3), (0.0, 2)):
            pool = starts[shown == bool(score)]
            picked = rng.choice(pool, size=min(count, len(pool)), replace=False)
            ratings += [(class_id, int(start), score) for start in picked]
    return sorted(ratings, key=lambda r: (r[1], r[0]))


def _bytes(tf, value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def segment_rating_features(tf, ratings):
    """The context features of ratings [(class, start frame, score)]."""
    classes, starts, scores = zip(*ratings)
    return {
        "segment_labels": tf.train.Feature(
            int64_list=tf.train.Int64List(value=classes)
        ),
        "segment_start_times": tf.train.Feature(
            int64_list=tf.train.Int64List(value=starts)
        ),
        "segment_scores": tf.train.Feature(float_list=tf.train.FloatList(value=scores)),
    }


def _frame_record(tf, video_id, labels, q, names, bounds, ratings=None):
    context = {"id": _bytes(tf, video_id)}
    if labels is not None:
        context["labels"] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=labels)
        )
    if ratings:
        context.update(segment_rating_features(tf, ratings))
    lists = {}
    for name, (lo, hi) in zip(names, bounds):
        part = np.ascontiguousarray(q[:, lo:hi])
        lists[name] = tf.train.FeatureList(
            feature=[_bytes(tf, row.tobytes()) for row in part]
        )
    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list=lists),
    )


def _video_record(tf, video_id, labels, mean, names, bounds):
    feature = {"id": _bytes(tf, video_id)}
    if labels is not None:
        feature["labels"] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=labels)
        )
    for name, (lo, hi) in zip(names, bounds):
        feature["mean_" + name] = tf.train.Feature(
            float_list=tf.train.FloatList(value=mean[lo:hi])
        )
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _oracle_metrics(scores, labels):
    """(GAP, Hit@1) of an oracle's scores as eval.py computes them, equal
    scores (the 0.5s) in random order: the expected score."""
    jittered = scores + np.random.default_rng(0).random(scores.shape) * 1e-9
    return (
        float(eval_util.calculate_gap(jittered, labels)),
        float(eval_util.calculate_hit_at_one(jittered, labels)),
    )


def generate(
    output_dir,
    num_train=2000,
    num_validate=500,
    num_test=500,
    num_shards=4,
    num_classes=40,
    num_distractor_events=16,
    min_frames=60,
    max_frames=300,
    frame_noise=DEFAULT_FRAME_NOISE,
    feature_names=("rgb", "audio"),
    feature_sizes=(1024, 128),
    levels=("frame", "video"),
    write_truth=True,
    seed=0,
    rated_splits=RATED_SPLITS,
):
    """Writes the shards; returns a summary dict (see `format_summary`).

    rated_splits: the splits whose frame-level records carry 2019-style
    segment ratings (add "train" to fine-tune on segments).
    """
    # Only writing needs TensorFlow; the plan/oracle API stays numpy-only.
    import tensorflow as tf

    feature_names = list(feature_names)
    feature_sizes = [int(s) for s in feature_sizes]
    if len(feature_names) != len(feature_sizes):
        raise ValueError("feature_names and feature_sizes differ in length")
    if min_frames < 3 * MIN_SHOT_FRAMES or max_frames < min_frames:
        raise ValueError("need %d <= min_frames <= max_frames" % (3 * MIN_SHOT_FRAMES))
    unknown = set(levels) - {"frame", "video"}
    if unknown:
        raise ValueError("unknown levels %s" % sorted(unknown))
    edges = np.cumsum([0] + feature_sizes)
    bounds = list(zip(edges[:-1], edges[1:]))
    world = make_world(num_classes, num_distractor_events, int(edges[-1]), seed)

    os.makedirs(output_dir, exist_ok=True)
    counts = dict(zip(SPLITS, (num_train, num_validate, num_test)))
    label_counts = np.zeros(num_classes, np.int64)
    summary = {"videos": {}, "frames": [], "shots": [], "labels_per_video": []}
    bag_scores, truth_labels = [], []
    start_time = time.time()
    first_id = 0
    for split in SPLITS:
        n = counts[split]
        summary["videos"][split] = n
        if n == 0:
            continue
        shards = max(1, min(num_shards, n))
        writers = {}
        for level in levels:
            os.makedirs(os.path.join(output_dir, level), exist_ok=True)
            writers[level] = [
                tf.io.TFRecordWriter(
                    os.path.join(output_dir, level, "%s%04d.tfrecord" % (split, s))
                )
                for s in range(shards)
            ]
        truth = None
        if write_truth:
            os.makedirs(os.path.join(output_dir, "truth"), exist_ok=True)
            truth = open(os.path.join(output_dir, "truth", split + ".jsonl"), "w")
        try:
            for i in range(n):
                shard = i * shards // n
                plan_rng, noise_rng, rating_rng = video_rngs(seed, split, i)
                plan = plan_video(world, plan_rng, min_frames, max_frames)
                shots = plan.shots()
                labels = oracle_labels(world, shots)
                video_id = "g%07d" % (first_id + i)
                stored = labels if split in LABELLED_SPLITS else None
                q = quantize(render(world, plan, noise_rng, frame_noise))
                if "frame" in writers:
                    ratings = None
                    if split in rated_splits:
                        ratings = segment_ratings(world, shots, labels, rating_rng)
                    writers["frame"][shard].write(
                        _frame_record(
                            tf,
                            video_id.encode(),
                            stored,
                            q,
                            feature_names,
                            bounds,
                            ratings,
                        ).SerializeToString()
                    )
                if "video" in writers:
                    mean = dequantize(q).mean(axis=0, dtype=np.float64)
                    mean = mean.astype(np.float32)
                    writers["video"][shard].write(
                        _video_record(
                            tf, video_id.encode(), stored, mean, feature_names, bounds
                        ).SerializeToString()
                    )
                if truth is not None:
                    truth.write(
                        json.dumps(
                            {
                                "id": video_id,
                                "labels": labels,
                                "num_frames": plan.num_frames,
                                "shots": [s.to_json() for s in shots],
                            }
                        )
                        + "\n"
                    )
                summary["frames"].append(plan.num_frames)
                summary["shots"].append(len(shots))
                summary["labels_per_video"].append(len(labels))
                if split in LABELLED_SPLITS:
                    label_counts[labels] += 1
                    y = np.zeros(num_classes, np.float64)
                    y[labels] = 1.0
                    truth_labels.append(y)
                    bag_scores.append(
                        bag_probabilities(world, {e for s in shots for e in s.events})
                    )
        finally:
            for ws in writers.values():
                for w in ws:
                    w.close()
            if truth is not None:
                truth.close()
        first_id += n

    kinds = world.class_kinds()
    structure = {
        "seed": seed,
        "num_classes": num_classes,
        "num_events": world.num_events,
        "distractor_events": list(world.distractors),
        "feature_names": feature_names,
        "feature_sizes": feature_sizes,
        "min_frames": min_frames,
        "max_frames": max_frames,
        "frame_noise": frame_noise,
        "classes": [{"class": c, "kind": kinds[c]} for c in range(num_classes)],
        "rules": [
            {
                "kind": r.kind,
                "events": list(r.events),
                "class": r.positive,
                "reverse_class": r.other,
            }
            for r in world.rules
        ],
    }
    for rule in world.rules:
        for c in rule.classes:
            structure["classes"][c]["events"] = list(rule.events)
            structure["classes"][c]["meaning"] = _meaning(rule, c)
    with open(os.path.join(output_dir, "structure.json"), "w") as f:
        json.dump(structure, f, indent=1)

    summary["seconds"] = time.time() - start_time
    summary["label_counts"] = label_counts.tolist()
    summary["class_kinds"] = kinds
    if truth_labels:
        y, s = np.stack(truth_labels), np.stack(bag_scores)
        gap, hit_at_one = _oracle_metrics(s, y)
        summary["bag_oracle_gap"], summary["bag_oracle_hit1"] = gap, hit_at_one
        summary["sequence_oracle_gap"], _ = _oracle_metrics(y.astype(float), y)
        summary["ambiguous_label_share"] = float(
            ((s == 0.5) & (y == 1)).sum() / y.sum()
        )
    return summary


def _meaning(rule, c):
    if rule.kind == PRESENCE:
        return "event %d occurs" % rule.events[0]
    a, b = rule.events
    if rule.kind == ORDER:
        if c != rule.positive:
            a, b = b, a
        return "pure shot of %d before pure shot of %d" % (a, b)
    if c == rule.positive:
        return "one shot alternates %d and %d" % (a, b)
    return "%d and %d in separate shots, never alternating" % (a, b)


def format_summary(summary):
    frames = np.array(summary["frames"])
    shots = np.array(summary["shots"])
    per_video = np.array(summary["labels_per_video"])
    split_counts = ", ".join("%s %d" % kv for kv in summary["videos"].items())
    lines = ["videos: %s (%.1f s)" % (split_counts, summary["seconds"])]
    if frames.size:
        lines.append(
            "frames per video: %d-%d, mean %.0f; "
            "shots per video: %d-%d, mean %.1f"
            % (
                frames.min(),
                frames.max(),
                frames.mean(),
                shots.min(),
                shots.max(),
                shots.mean(),
            )
        )
        lines.append(
            "labels per video: %d-%d, mean %.2f"
            % (per_video.min(), per_video.max(), per_video.mean())
        )
    counts, kinds = summary["label_counts"], summary["class_kinds"]
    for kind in (PRESENCE, ORDER, WITHIN):
        cls = [c for c, k in enumerate(kinds) if k == kind]
        if cls:
            freq = " ".join("%d:%d" % (c, counts[c]) for c in cls)
            lines.append(
                "%-8s classes %d-%d, label counts (train+validate): "
                "%s" % (kind, cls[0], cls[-1], freq)
            )
    if "bag_oracle_gap" in summary:
        lines.append(
            "ceiling: frame-averaging (bag oracle) GAP %.3f Hit@1 %.3f vs "
            "sequence oracle GAP %.3f; %.0f%% of labels need order or shot "
            "structure"
            % (
                summary["bag_oracle_gap"],
                summary["bag_oracle_hit1"],
                summary["sequence_oracle_gap"],
                100 * summary["ambiguous_label_share"],
            )
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Command line.


def define_flags():
    """Declared only when run as a program: train.py & co. own some names."""
    flags.DEFINE_string("output_dir", None, "Where to write the shards.")
    for split, default in zip(SPLITS, (2000, 500, 500)):
        labels = "" if split in LABELLED_SPLITS else " (no labels)"
        flags.DEFINE_integer(
            f"num_{split}", default, f"Videos in the {split} split{labels}."
        )
    flags.DEFINE_integer("num_shards", 4, "Shards per split and level.")
    # The world the labels come from, and the videos' shape.
    flags.DEFINE_integer("num_classes", 40, "Label ids are in [0, num_classes).")
    flags.DEFINE_integer(
        "num_distractor_events", 16, "Events that no rule uses (filler shots)."
    )
    flags.DEFINE_integer("min_frames", 60, "Fewest frames a video has.")
    # --max_frames, --feature_names and --feature_sizes: train.py's own.
    model_flags.define_feature_flags()
    flags.DEFINE_float(
        "frame_noise",
        DEFAULT_FRAME_NOISE,
        "Std of the per-frame noise around a prototype.",
    )
    flags.DEFINE_list("levels", ["frame", "video"], "Which records to write.")
    flags.DEFINE_bool(
        "write_truth", True, "Also write truth/<split>.jsonl (shots, labels)."
    )
    flags.DEFINE_integer("seed", 0, "Everything is a function of the seed.")
    flags.DEFINE_list(
        "rated_splits",
        list(RATED_SPLITS),
        "Splits whose frame-level records carry segment ratings (add train to "
        "fine-tune with train.py --segment_labels).",
    )
    flags.mark_flag_as_required("output_dir")


def main(argv):
    del argv
    f = flags.FLAGS
    feature_names, feature_sizes = configs.features(
        f.feature_names or configs.FRAME_FEATURE_NAMES, f.feature_sizes
    )
    # Every other flag is spelt like generate()'s parameter it sets.
    given = dict(
        feature_names=feature_names,
        feature_sizes=feature_sizes,
        rated_splits=tuple(f.rated_splits),
    )
    summary = generate(
        f.output_dir,
        **{
            name: f[name].value
            for name in inspect.signature(generate).parameters
            if name not in given and name != "output_dir"
        },
        **given,
    )
    print(format_summary(summary))


if __name__ == "__main__":
    define_flags()
    app.run(main)
