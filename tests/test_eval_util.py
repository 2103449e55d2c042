"""eval_util against plain-loop references written from the definitions."""

import math

import numpy as np
import pytest

import eval_util


# --- Reference implementations: pure Python loops, the definitions verbatim,
# with the documented tie rule (per video: score desc, then class asc; pooled:
# score desc, then video order, then class asc).


def ref_rank(row):
    return sorted(range(len(row)), key=lambda c: (-float(row[c]), c))


def ref_hit_at_one(preds, labels):
    if len(preds) == 0:
        return 0.0
    return sum(
        1.0 if labels[v][ref_rank(preds[v])[0]] > 0 else 0.0 for v in range(len(preds))
    ) / len(preds)


def ref_perr(preds, labels):
    total = 0.0
    for v in range(len(preds)):
        num_labels = sum(1 for y in labels[v] if y > 0)
        if num_labels == 0:
            continue
        top = ref_rank(preds[v])[:num_labels]
        total += (
            sum(1 for c in top if labels[v][c] > 0 and preds[v][c] > 0) / num_labels
        )
    return total / len(preds)


def ref_pairs(preds, labels, k):
    pairs = []
    for v in range(len(preds)):
        for c in ref_rank(preds[v])[:k]:
            pairs.append((-float(preds[v][c]), v, c, labels[v][c] > 0))
    pairs.sort()
    return pairs


def ref_gap(preds, labels, k):
    total_positives = sum(1 for row in labels for y in row if y > 0)
    if total_positives == 0:
        return 0.0
    found, gap = 0, 0.0
    for rank, (_, _, _, positive) in enumerate(ref_pairs(preds, labels, k), 1):
        if positive:
            found += 1
            gap += found / rank
    return gap / total_positives


def ref_aps(preds, labels, k, top_n=None):
    num_classes = len(preds[0])
    pairs = ref_pairs(preds, labels, k)
    aps = []
    for c in range(num_classes):
        positives = sum(1 for row in labels if row[c] > 0)
        if positives == 0:
            aps.append(float("nan"))
            continue
        entries = [p for p in pairs if p[2] == c]  # already (score, video) order
        found, total = 0, 0.0
        for rank, (_, _, _, positive) in enumerate(entries, 1):
            if top_n is not None and rank > top_n:
                break
            if positive:
                found += 1
                total += found / rank
        aps.append(total / (positives if top_n is None else min(positives, top_n)))
    return aps


def ref_map(aps):
    kept = [a for a in aps if not math.isnan(a)]
    return sum(kept) / len(kept) if kept else 0.0


def random_case(seed, num_videos, num_classes, label_rate=0.25, levels=None):
    """Random predictions and labels; `levels` quantises scores (forces ties)."""
    rng = np.random.default_rng(seed)
    preds = rng.random((num_videos, num_classes)).astype(np.float32)
    if levels:
        preds = (np.floor(preds * levels) / levels).astype(np.float32)
    labels = (rng.random((num_videos, num_classes)) < label_rate).astype(np.float32)
    labels[::4] = 0  # every fourth video has no labels
    return preds, labels


def all_metrics(preds, labels, k, top_n=None, batch_sizes=None):
    metrics = eval_util.EvaluationMetrics(preds.shape[1], k, top_n)
    start = 0
    for size in batch_sizes or [len(preds)]:
        metrics.accumulate(
            preds[start : start + size], labels[start : start + size], np.zeros(size)
        )
        start += size
    assert start == len(preds)
    return metrics.get()


def check_against_reference(preds, labels, k, top_n=None):
    got = all_metrics(preds, labels, k, top_n)
    p, y = preds.tolist(), labels.tolist()
    assert got["avg_hit_at_one"] == pytest.approx(ref_hit_at_one(p, y), abs=1e-6)
    assert got["avg_perr"] == pytest.approx(ref_perr(p, y), abs=1e-6)
    assert got["gap"] == pytest.approx(ref_gap(p, y, k), abs=1e-6)
    aps = ref_aps(p, y, k, top_n)
    np.testing.assert_allclose(got["aps"], aps, atol=1e-6)  # NaNs must match
    assert got["map"] == pytest.approx(ref_map(aps), abs=1e-6)
    assert got["num_examples"] == len(preds)
    assert eval_util.calculate_hit_at_one(preds, labels) == pytest.approx(
        ref_hit_at_one(p, y), abs=1e-6
    )
    assert eval_util.calculate_precision_at_equal_recall_rate(
        preds, labels
    ) == pytest.approx(ref_perr(p, y), abs=1e-6)
    assert eval_util.calculate_gap(preds, labels, k) == pytest.approx(
        ref_gap(p, y, k), abs=1e-6
    )


# --- Hand-computed cases.

# Two videos, three classes, k = 2.
#   v0: scores (.9, .5, .1), labels (1, 0, 1) -> top-2 = c0 (pos), c1 (neg)
#   v1: scores (.8, .7, .6), labels (0, 1, 1) -> top-2 = c0 (neg), c1 (pos)
HAND_P = np.array([[0.9, 0.5, 0.1], [0.8, 0.7, 0.6]], np.float32)
HAND_Y = np.array([[1, 0, 1], [0, 1, 1]], np.float32)


def test_hand_gap():
    # Pooled: .9 pos (rank 1, 1/1), .8 neg, .7 pos (rank 3, 2/3), .5 neg.
    # 4 positives in the ground truth (the two c2 labels lie outside top-2):
    # GAP = (1 + 2/3) / 4 = 5/12.
    assert eval_util.calculate_gap(HAND_P, HAND_Y, top_k=2) == pytest.approx(
        5 / 12, abs=1e-12
    )


def test_hand_hit_at_one_and_perr():
    # Hit@1: v0 argmax c0 positive, v1 argmax c0 negative -> 1/2.
    # PERR: both videos have L = 2 and exactly one positive in the top 2 -> 1/2.
    assert eval_util.calculate_hit_at_one(HAND_P, HAND_Y) == 0.5
    assert eval_util.calculate_precision_at_equal_recall_rate(HAND_P, HAND_Y) == 0.5


def test_hand_map():
    # c0: v0 .9 pos, v1 .8 neg -> AP = (1/1) / 1 positive = 1.
    # c1: v1 .7 pos, v0 .5 neg -> AP = (1/1) / 1 = 1.
    # c2: in no top-2, 2 positives -> AP = 0.  mAP = 2/3.
    got = all_metrics(HAND_P, HAND_Y, 2)
    assert got["aps"] == pytest.approx([1.0, 1.0, 0.0])
    assert got["map"] == pytest.approx(2 / 3, abs=1e-12)


def test_hand_ties_within_a_video_go_to_lower_class():
    # All three scores equal: the top-1 is class 0 under the tie rule.
    preds = np.full((1, 3), 0.5, np.float32)
    assert eval_util.calculate_gap(preds, np.array([[0, 1, 0]]), 1) == 0.0
    assert eval_util.calculate_gap(preds, np.array([[1, 0, 0]]), 1) == 1.0
    assert eval_util.calculate_hit_at_one(preds, np.array([[0, 1, 0]])) == 0.0
    assert (
        eval_util.calculate_precision_at_equal_recall_rate(preds, np.array([[0, 1, 0]]))
        == 0.0
    )


def test_hand_pooled_ties_keep_video_order():
    # Both videos' top-1 is c0 at score .5; only v1's is positive. Video order
    # puts v0's negative first: the positive sits at rank 2 -> GAP = (1/2)/1.
    preds = np.array([[0.5, 0.0], [0.5, 0.0]], np.float32)
    labels = np.array([[0, 0], [1, 0]], np.float32)
    assert eval_util.calculate_gap(preds, labels, 1) == 0.5
    assert eval_util.calculate_gap(preds[::-1], labels[::-1], 1) == 1.0
    assert all_metrics(preds, labels, 1)["aps"][0] == 0.5


def test_hand_perr_ignores_zero_scores():
    # L = 2. Top-2 = c2 (.3, negative), c0 (0.0 wins the tie with c1,
    # positive but score 0, so no hit) -> 0.
    labels = np.array([[1, 1, 0]], np.float32)
    assert (
        eval_util.calculate_precision_at_equal_recall_rate(
            np.array([[0.0, 0.0, 0.3]], np.float32), labels
        )
        == 0.0
    )
    # Top-2 = c1 (.2, positive: hit), c0 (0.0, positive, no hit) -> 1/2.
    assert (
        eval_util.calculate_precision_at_equal_recall_rate(
            np.array([[0.0, 0.2, 0.0]], np.float32), labels
        )
        == 0.5
    )


def test_hand_no_label_videos_count_zero():
    # v0 has no labels: it adds 0 to Hit@1 and PERR but still counts as a
    # video. v1 is a perfect hit. Both averages are 1/2.
    preds = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    labels = np.array([[0, 0], [0, 1]], np.float32)
    got = all_metrics(preds, labels, 2)
    assert got["avg_hit_at_one"] == 0.5
    assert got["avg_perr"] == 0.5
    # Pooled: .9 neg, .8 pos (rank 2), .2 neg, .1 neg -> GAP = (1/2) / 1.
    assert got["gap"] == 0.5


def test_hand_map_skips_classes_without_positives():
    # c0 has no positives: NaN in aps and left out of the mean. c1: v1 .8 is
    # the only pos, ranked 1st among c1's entries (.8, .1) -> AP = 1.
    preds = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    labels = np.array([[0, 0], [0, 1]], np.float32)
    got = all_metrics(preds, labels, 2)
    assert math.isnan(got["aps"][0])
    assert got["aps"][1] == 1.0
    assert got["map"] == 1.0


def test_hand_top_n_caps_ranks_and_divisor():
    # Class 0 over three videos, scores .9 (neg), .8 (pos), .7 (pos).
    # top_n = 2: ranks 1-2 count -> (1/2) / min(2 positives, 2) = 1/4.
    # top_n = None: (1/2 + 2/3) / 2 = 7/12.
    preds = np.array([[0.9, 0.0], [0.8, 0.0], [0.7, 0.0]], np.float32)
    labels = np.array([[0, 0], [1, 0], [1, 0]], np.float32)
    assert all_metrics(preds, labels, 1, top_n=2)["aps"][0] == 0.25
    assert all_metrics(preds, labels, 1)["aps"][0] == pytest.approx(7 / 12)


def test_hand_loss_is_weighted_by_batch_size():
    # Batch means 1.0 over 3 videos and 4.0 over 1 video -> (3 + 4) / 4.
    metrics = eval_util.EvaluationMetrics(2, 1)
    preds = np.zeros((4, 2), np.float32)
    labels = np.zeros((4, 2), np.float32)
    out = metrics.accumulate(preds[:3], labels[:3], 1.0)
    assert out["loss"] == 1.0
    metrics.accumulate(preds[3:], labels[3:], np.array([4.0]))
    assert metrics.get()["avg_loss"] == 1.75


# --- Random data against the references.


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("k", [1, 3, 20])
def test_random_against_reference(seed, k):
    preds, labels = random_case(seed, num_videos=13, num_classes=9)
    check_against_reference(preds, labels, k)  # k = 20 > 9 classes


@pytest.mark.parametrize("seed", [4, 5])
def test_random_with_ties_against_reference(seed):
    preds, labels = random_case(seed, num_videos=15, num_classes=8, levels=4)
    check_against_reference(preds, labels, 3)
    check_against_reference(preds, labels, 3, top_n=4)


@pytest.mark.parametrize("seed", [6, 7])
def test_random_top_n_against_reference(seed):
    preds, labels = random_case(seed, num_videos=20, num_classes=5, label_rate=0.5)
    check_against_reference(preds, labels, 2, top_n=3)


def test_all_zero_predictions():
    _, labels = random_case(8, num_videos=9, num_classes=6)
    preds = np.zeros_like(labels)
    check_against_reference(preds, labels, 2)
    # Every score is 0, so PERR counts no hit at all.
    assert eval_util.calculate_precision_at_equal_recall_rate(preds, labels) == 0


def test_more_labels_than_top_k():
    # PERR needs the top-L with L up to 6 while only top-2 is kept for GAP.
    rng = np.random.default_rng(9)
    preds = rng.random((6, 8)).astype(np.float32)
    labels = np.zeros((6, 8), np.float32)
    for v in range(6):
        labels[v, rng.choice(8, size=v + 1, replace=False)] = 1
    check_against_reference(preds, labels, 2)


def test_empty_ground_truth():
    preds = np.random.default_rng(10).random((3, 4)).astype(np.float32)
    labels = np.zeros((3, 4), np.float32)
    got = all_metrics(preds, labels, 2)
    assert got["gap"] == 0.0 and got["map"] == 0.0
    assert all(math.isnan(a) for a in got["aps"])


# --- Top-k selection: the fast path (wide rows) against the plain ranking.


@pytest.mark.parametrize("levels", [None, 3, 1000])
def test_top_k_indices_wide_rows(levels, monkeypatch):
    # 600 classes with k = 5 takes the block-bound path; levels = 3 makes every
    # row tie-heavy (the full-sort fallback), 1000 makes boundary ties common.
    preds, _ = random_case(11, num_videos=6, num_classes=600, levels=levels)
    preds[0] = 0.0
    expected = [ref_rank(row)[:5] for row in preds.tolist()]
    for cap in (1, 10**6):  # force the fallback, then the candidate table
        monkeypatch.setattr(eval_util, "_MAX_CANDIDATES", cap)
        idx, scores = eval_util.top_k_indices(preds, 5)
        assert idx.tolist() == expected
        np.testing.assert_array_equal(scores, np.take_along_axis(preds, idx, axis=1))


def test_wide_rows_against_reference():
    preds, labels = random_case(
        12, num_videos=8, num_classes=400, label_rate=0.01, levels=200
    )
    labels[:, :3] = 1  # make sure several classes have positives
    check_against_reference(preds, labels, 5)


def test_top_k_indices_clips_k_and_rejects_zero():
    preds = np.array([[0.1, 0.3]], np.float32)
    assert eval_util.top_k_indices(preds, 5)[0].tolist() == [[1, 0]]
    with pytest.raises(ValueError):
        eval_util.top_k_indices(preds, 0)


def test_top_k_by_class_matches_reference():
    preds, labels = random_case(13, num_videos=7, num_classes=5, levels=3)
    scores, hits, positives = eval_util.top_k_by_class(preds, labels, 2)
    tops = [ref_rank(row)[:2] for row in preds.tolist()]
    for c in range(5):
        videos = [v for v in range(7) if c in tops[v]]  # video order
        assert scores[c].tolist() == [float(preds[v, c]) for v in videos]
        assert hits[c].tolist() == [float(labels[v, c] > 0) for v in videos]
        assert positives[c] == int((labels[:, c] > 0).sum())


# --- Streaming.


@pytest.mark.parametrize("seed", [14, 15])
def test_streaming_equals_one_call_exactly(seed):
    preds, labels = random_case(
        seed, num_videos=40, num_classes=300, label_rate=0.02, levels=50
    )
    rng = np.random.default_rng(seed)
    losses = rng.random(40)
    cuts = np.sort(rng.choice(np.arange(1, 40), size=6, replace=False))
    sizes = np.diff(np.concatenate([[0], cuts, [40]])).tolist()

    def run(batch_sizes):
        metrics = eval_util.EvaluationMetrics(300, 20, top_n=10)
        start = 0
        for size in batch_sizes:
            metrics.accumulate(
                preds[start : start + size],
                labels[start : start + size],
                losses[start : start + size],
            )
            start += size
        return metrics.get()

    one, many = run([40]), run(sizes)
    for key in ("avg_hit_at_one", "avg_perr", "avg_loss", "gap", "map", "num_examples"):
        assert one[key] == many[key], key
    np.testing.assert_array_equal(one["aps"], many["aps"])


def test_accumulate_returns_batch_means_and_clear_resets():
    metrics = eval_util.EvaluationMetrics(3, 2)
    out = metrics.accumulate(HAND_P, HAND_Y, np.array([1.0, 2.0]))
    assert out == {"hit_at_one": 0.5, "perr": 0.5, "loss": 1.5}
    assert metrics.get()["num_examples"] == 2
    # An empty batch changes nothing.
    metrics.accumulate(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    assert metrics.get()["num_examples"] == 2
    metrics.clear()
    got = metrics.get()
    assert got["num_examples"] == 0 and got["gap"] == 0.0
    assert got["avg_hit_at_one"] == 0.0 and got["avg_loss"] == 0.0


def test_rejects_bad_shapes():
    metrics = eval_util.EvaluationMetrics(3, 2)
    with pytest.raises(ValueError):
        metrics.accumulate(np.zeros((2, 4)), np.zeros((2, 4)), 0.0)
    with pytest.raises(ValueError):
        metrics.accumulate(np.zeros((2, 3)), np.zeros((2, 2)), 0.0)
    with pytest.raises(ValueError):
        eval_util.EvaluationMetrics(3, 0)
