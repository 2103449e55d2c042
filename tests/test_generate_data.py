"""generate_data.py: record formats, determinism, and the planted structure."""

import filecmp
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import generate_data as gd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {"rgb": 1024, "audio": 128}
COUNTS = {"train": 24, "validate": 12, "test": 8}
SEED = 3


def dequantize(q):
    # The starter's formula, written out here rather than taken from the
    # module under test.
    return q.astype(np.float32) * 4.0 / 255.0 + 4.0 / 512.0 - 2.0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth"))
    summary = gd.generate(
        out,
        num_train=COUNTS["train"],
        num_validate=COUNTS["validate"],
        num_test=COUNTS["test"],
        num_shards=2,
        seed=SEED,
    )
    return out, summary


def sparse_list(values):
    return sorted(tf.sparse.to_dense(values).numpy().tolist())


def read_frame_split(out, split):
    context = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
    }
    sequence = {name: tf.io.FixedLenSequenceFeature([], tf.string) for name in SIZES}
    videos = []
    pattern = os.path.join(out, "frame", split + "*.tfrecord")
    for path in sorted(glob.glob(pattern)):
        for record in tf.data.TFRecordDataset(path):
            ctx, seq = tf.io.parse_single_sequence_example(
                record, context_features=context, sequence_features=sequence
            )
            raw = tf.train.SequenceExample.FromString(record.numpy())
            frames = {}
            for name, size in SIZES.items():
                q = tf.io.decode_raw(seq[name], tf.uint8).numpy()
                assert q.shape[1] == size
                frames[name] = q
            videos.append(
                {
                    "id": ctx["id"].numpy().decode(),
                    "labels": sparse_list(ctx["labels"]),
                    "has_labels": "labels" in raw.context.feature,
                    "frames": frames,
                }
            )
    return videos


def read_video_split(out, split):
    spec = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
    }
    spec.update(
        {
            "mean_" + name: tf.io.FixedLenFeature([size], tf.float32)
            for name, size in SIZES.items()
        }
    )
    videos = {}
    pattern = os.path.join(out, "video", split + "*.tfrecord")
    for path in sorted(glob.glob(pattern)):
        for record in tf.data.TFRecordDataset(path):
            ex = tf.io.parse_single_example(record, spec)
            raw = tf.train.Example.FromString(record.numpy())
            videos[ex["id"].numpy().decode()] = {
                "labels": sparse_list(ex["labels"]),
                "has_labels": "labels" in raw.features.feature,
                **{n: ex["mean_" + n].numpy() for n in SIZES},
            }
    return videos


def read_truth(out, split):
    with open(os.path.join(out, "truth", split + ".jsonl")) as f:
        return [json.loads(line) for line in f]


def rule_labels(rules, shots):
    """The class definitions of the module docstring, from structure.json."""
    shots = [tuple(s) for s in shots]
    labels = set()
    for r in rules:
        ev = r["events"]
        if r["kind"] == "presence":
            if any(ev[0] in s for s in shots):
                labels.add(r["class"])
        elif r["kind"] == "order":
            a, b = ev
            pure = [s[0] for s in shots if len(s) == 1 and s[0] in (a, b)]
            if a in pure and b in pure[pure.index(a) :]:
                labels.add(r["class"])
            if (
                r["reverse_class"] is not None
                and b in pure
                and a in pure[pure.index(b) :]
            ):
                labels.add(r["reverse_class"])
        else:
            p, q = ev
            if any(len(s) == 2 and set(s) == {p, q} for s in shots):
                labels.add(r["class"])
            elif r["reverse_class"] is not None and (p,) in shots and (q,) in shots:
                labels.add(r["reverse_class"])
    return sorted(labels)


def test_frame_records_follow_the_schema(data):
    out, _ = data
    ids = set()
    for split, n in COUNTS.items():
        videos = read_frame_split(out, split)
        assert len(videos) == n
        for v in videos:
            assert v["id"].startswith("g") and len(v["id"]) == 8
            ids.add(v["id"])
            num_frames = len(v["frames"]["rgb"])
            assert 60 <= num_frames <= 300
            assert len(v["frames"]["audio"]) == num_frames
            if split == "test":
                assert not v["has_labels"] and v["labels"] == []
            else:
                assert v["has_labels"]
                assert 1 <= len(v["labels"]) <= 5
                assert all(0 <= c < 40 for c in v["labels"])
                assert len(set(v["labels"])) == len(v["labels"])
    assert len(ids) == sum(COUNTS.values())
    assert sorted(os.listdir(os.path.join(out, "frame"))) == sorted(
        "%s%04d.tfrecord" % (s, i) for s in COUNTS for i in range(2)
    )


def test_video_records_hold_the_mean_of_the_dequantised_frames(data):
    out, _ = data
    for split in COUNTS:
        frames = read_frame_split(out, split)
        videos = read_video_split(out, split)
        assert sorted(videos) == sorted(v["id"] for v in frames)
        for v in frames:
            rec = videos[v["id"]]
            assert rec["labels"] == v["labels"]
            assert rec["has_labels"] == (split != "test")
            for name in SIZES:
                want = dequantize(v["frames"][name]).astype(np.float64).mean(0)
                np.testing.assert_allclose(rec[name], want, atol=1e-5)


def test_features_round_trip_through_quantisation_and_look_whitened():
    world = gd.make_world(seed=1)
    plan_rng, noise_rng, _ = gd.video_rngs(1, "train", 0)
    x = gd.render(world, gd.plan_video(world, plan_rng), noise_rng)
    q = gd.quantize(x)
    assert q.dtype == np.uint8 and q.shape == x.shape == (len(x), 1152)
    # Half a quantisation step, plus float rounding.
    assert np.abs(dequantize(q) - x).max() <= 2.0 / 255.0 + 1e-5
    assert x.min() >= -2.0 and x.max() <= 2.01
    assert 0.85 < x.std() < 1.15
    assert abs(x.mean()) < 0.1
    assert 0.01 < (np.abs(x) > 1.9).mean() < 0.12


def test_same_seed_same_bytes_and_shards_do_not_change_videos(tmp_path):
    kwargs = dict(
        num_train=4, num_validate=2, num_test=2, max_frames=80, feature_sizes=(32, 8)
    )
    gd.generate(str(tmp_path / "a"), num_shards=2, seed=5, **kwargs)
    gd.generate(str(tmp_path / "b"), num_shards=2, seed=5, **kwargs)
    gd.generate(str(tmp_path / "c"), num_shards=2, seed=6, **kwargs)
    gd.generate(str(tmp_path / "d"), num_shards=1, seed=5, **kwargs)
    files = sorted(
        os.path.relpath(p, tmp_path / "a")
        for p in glob.glob(str(tmp_path / "a" / "*" / "*"))
    )
    assert len(files) == 15  # 2 levels x 3 splits x 2 shards, 3 truth files
    match, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "a", tmp_path / "b", files, shallow=False
    )
    assert not mismatch and not errors
    _, mismatch, _ = filecmp.cmpfiles(
        tmp_path / "a", tmp_path / "c", files, shallow=False
    )
    assert "frame/train0000.tfrecord" in mismatch
    for split in COUNTS:
        assert read_truth(tmp_path / "a", split) == read_truth(tmp_path / "d", split)


def test_label_set_is_multilabel_and_covers_every_class():
    world = gd.make_world(seed=0)
    counts = np.zeros(40, int)
    per_video = []
    for i in range(1500):
        plan = gd.plan_video(world, gd.video_rngs(0, "train", i)[0])
        labels = gd.oracle_labels(world, plan.shots())
        counts[labels] += 1
        per_video.append(len(labels))
        assert 60 <= plan.num_frames <= 300
        assert sum(s.length for s in plan.segments) == plan.num_frames
    per_video = np.array(per_video)
    assert per_video.min() >= 1 and per_video.max() <= 5
    assert 2.0 < per_video.mean() < 3.2
    assert counts.min() >= 15  # long-tailed, but every class learnable
    assert counts.max() > 3 * counts.min()
    kinds = world.class_kinds()
    assert kinds.count("presence") == 12
    assert kinds.count("order") == 16 and kinds.count("within") == 12


def test_labels_follow_from_the_shot_sequence_seen_in_the_frames(data):
    out, _ = data
    with open(os.path.join(out, "structure.json")) as f:
        structure = json.load(f)
    world = gd.make_world(40, 16, 1152, SEED)
    assert structure["num_events"] == world.num_events
    for split in COUNTS:
        truths = {t["id"]: t for t in read_truth(out, split)}
        for v in read_frame_split(out, split):
            truth = truths[v["id"]]
            x = np.concatenate(
                [dequantize(v["frames"]["rgb"]), dequantize(v["frames"]["audio"])],
                axis=1,
            )
            assert truth["num_frames"] == len(x)
            nearest = np.argmax(x @ world.prototypes.T, axis=1)
            decoded = []
            previous_end = 0
            for start, end, events in truth["shots"]:
                assert start == previous_end and end - start >= 6
                previous_end = end
                seen = nearest[start:end]
                if len(events) == 1:
                    assert (seen == events[0]).all()
                    decoded.append((int(seen[0]),))
                else:
                    assert (seen[0::2] == events[0]).all()
                    assert (seen[1::2] == events[1]).all()
                    decoded.append((int(seen[0]), int(seen[1])))
            assert previous_end == len(x)
            for a, b in zip(decoded, decoded[1:]):
                assert not (len(a) == len(b) == 1 and a == b)
            labels = rule_labels(structure["rules"], decoded)
            assert labels == truth["labels"]
            if split != "test":
                assert labels == v["labels"]


def planted(world, kind, count, twin=None):
    """(plan, noise seed) pairs whose plan holds a `kind` plant."""
    found = []
    for i in range(400):
        plan = gd.plan_video(world, gd.video_rngs(11, "train", i)[0])
        for j, seg in enumerate(plan.segments):
            rule = world.rules[seg.rule] if seg.rule >= 0 else None
            if (
                rule is not None
                and rule.kind == kind
                and (twin is None or (rule.other is not None) == twin)
            ):
                found.append((plan, j, rule, i))
                break
        if len(found) == count:
            return found
    raise AssertionError("too few %s plants" % kind)


def mean_frame(world, plan, seed):
    return (
        gd.render(world, plan, np.random.default_rng(seed)).astype(np.float64).mean(0)
    )


@pytest.mark.parametrize("twin", [True, False])
def test_reversing_the_shots_flips_order_classes_not_the_average(twin):
    world = gd.make_world(seed=11)
    kinds = world.class_kinds()
    for plan, _, rule, i in planted(world, gd.ORDER, 4, twin):
        before = set(gd.oracle_labels(world, plan.shots()))
        rev = plan.reversed()
        after = set(gd.oracle_labels(world, rev.shots()))
        assert {c for c in before if kinds[c] != gd.ORDER} == {
            c for c in after if kinds[c] != gd.ORDER
        }
        if twin:
            assert len(before & set(rule.classes)) == 1
            assert (rule.positive in before) == (rule.other in after)
            assert (rule.other in before) == (rule.positive in after)
        else:
            assert (rule.positive in before) != (rule.positive in after)
        # The other order plants of the video flip as well.
        for other in world.rules:
            if other.kind == gd.ORDER and other.other is not None:
                assert (other.positive in before) == (other.other in after)
        np.testing.assert_allclose(
            mean_frame(world, plan, i), mean_frame(world, rev, i), atol=1e-6
        )


@pytest.mark.parametrize("twin", [True, False])
def test_alternating_and_split_shots_have_equal_averages_other_labels(twin):
    world = gd.make_world(seed=11)
    for plan, j, rule, i in planted(world, gd.WITHIN, 4, twin):
        flipped = plan.with_arrangement(j, not plan.segments[j].alternating)
        a = gd.render(world, plan, np.random.default_rng(i))
        b = gd.render(world, flipped, np.random.default_rng(i))
        # The very same frames, rearranged.
        np.testing.assert_array_equal(np.sort(a, axis=0), np.sort(b, axis=0))
        assert not np.array_equal(a, b)
        la = set(gd.oracle_labels(world, plan.shots()))
        lb = set(gd.oracle_labels(world, flipped.shots()))
        assert la - set(rule.classes) == lb - set(rule.classes)
        assert la != lb
        assert (rule.positive in la) == plan.segments[j].alternating
        assert (rule.positive in lb) != (rule.positive in la)
        if twin:
            assert (rule.other in la) == (rule.positive in lb)


def test_order_and_arrangement_are_fair_coins_independent_of_lengths():
    world = gd.make_world(seed=0)
    stats = {gd.ORDER: [[], []], gd.WITHIN: [[], []]}
    for i in range(2500):
        plan = gd.plan_video(world, gd.video_rngs(0, "validate", i)[0])
        labels = set(gd.oracle_labels(world, plan.shots()))
        for seg in plan.segments:
            if seg.rule < 0:
                continue
            rule = world.rules[seg.rule]
            if rule.kind == gd.ORDER and seg.events == rule.events[:1]:
                stats[gd.ORDER][rule.positive in labels].append(seg.length)
            elif rule.kind == gd.WITHIN:
                stats[gd.WITHIN][rule.positive in labels].append(seg.length)
    for kind, (neg, pos) in stats.items():
        assert abs(len(pos) / (len(pos) + len(neg)) - 0.5) < 0.06, kind
        # A frame-averaging model sees how long each event lasts; that must
        # say nothing about the order or the arrangement.
        assert abs(np.mean(pos) - np.mean(neg)) < 0.15 * np.mean(neg), kind


def test_frame_averaging_ceiling_is_below_the_sequence_oracle(data):
    _, summary = data
    assert summary["sequence_oracle_gap"] == pytest.approx(1.0)
    assert 0.6 < summary["bag_oracle_gap"] < 0.95
    assert 0.3 < summary["ambiguous_label_share"] < 0.8
    world = gd.make_world(seed=0)
    twin = next(r for r in world.rules if r.kind == gd.ORDER and r.other)
    p = gd.bag_probabilities(world, set(twin.events))
    assert p[twin.positive] == p[twin.other] == 0.5
    assert p.sum() == 1.0
    text = gd.format_summary(summary)
    assert "bag oracle" in text and "labels per video" in text


def test_shots_are_visible_to_a_cosine_kernel(data):
    out, _ = data
    truth = {t["id"]: t for t in read_truth(out, "validate")}
    within, across = [], []
    for v in read_frame_split(out, "validate"):
        x = np.concatenate(
            [dequantize(v["frames"]["rgb"]), dequantize(v["frames"]["audio"])], axis=1
        )
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        cos = (x[1:] * x[:-1]).sum(1)
        shots = truth[v["id"]]["shots"]
        for start, end, events in shots:
            if len(events) == 1:
                within.extend(cos[start : end - 1])
        across.extend(cos[s[0] - 1] for s in shots[1:])
    assert np.mean(within) > 0.5
    assert np.mean(across) < 0.15


def test_class_layout_scales_and_bad_arguments_are_refused(tmp_path):
    for c in (4, 40, 3862):
        budget = gd.class_budget(c)
        assert sum(budget) + budget[1] + budget[3] == c
        assert budget[0] >= 1
    world = gd.make_world(3862, 16, 8, seed=0)
    classes = sorted(k for r in world.rules for k in r.classes)
    assert classes == list(range(3862))
    with pytest.raises(ValueError):
        gd.class_budget(3)
    with pytest.raises(ValueError):
        gd.generate(
            str(tmp_path), num_train=1, feature_names=("rgb",), feature_sizes=(4, 4)
        )
    with pytest.raises(ValueError):
        gd.generate(str(tmp_path), num_train=1, min_frames=10)


@pytest.mark.slow
def test_command_line(tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "generate_data.py"),
            "--output_dir=%s" % out,
            "--num_train=3",
            "--num_validate=2",
            "--num_test=1",
            "--num_shards=1",
            "--num_classes=12",
            "--feature_names=visual,sound",
            "--feature_sizes=24,8",
            "--max_frames=90",
            "--levels=frame",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "ceiling" in proc.stdout and "train 3" in proc.stdout
    assert not (out / "video").exists()
    shard = str(out / "frame" / "train0000.tfrecord")
    record = next(iter(tf.data.TFRecordDataset(shard)))
    ex = tf.train.SequenceExample.FromString(record.numpy())
    assert set(ex.feature_lists.feature_list) == {"visual", "sound"}
    frames = ex.feature_lists.feature_list["visual"].feature
    assert 60 <= len(frames) <= 90
    assert len(frames[0].bytes_list.value[0]) == 24
    labels = ex.context.feature["labels"].int64_list.value
    assert labels and all(0 <= c < 12 for c in labels)
