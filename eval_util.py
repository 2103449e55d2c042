"""YouTube-8M evaluation metrics: GAP@k, Hit@1, PERR and mAP.

A leaf module: numpy arrays in, Python numbers out; it imports nothing from
the rest of the project.

Shapes: ``predictions`` is float [B, C] (any float dtype; scores, usually
probabilities), ``labels``/``actuals`` is multi-hot [B, C]. A label counts as
positive when it is > 0.

Definitions (the starter code's; docs/design.md):

* Hit@1: mean over videos of label[argmax]; a video without labels counts 0.
* PERR: a video with L labels scores the fraction of its top-L predictions
  that are positive and have a score > 0; a video without labels scores 0;
  mean over videos.
* GAP@k: every video's top-k (score, label) pairs are pooled and sorted by
  score, descending; GAP = sum over positive pairs of
  (positives so far / rank), divided by the number of positive labels in the
  ground truth, including those outside every top-k.
* mAP: for each class, the videos whose top-k holds the class are sorted by
  score, descending; AP = sum of the precision at each positive, divided by
  the class's number of positives in the ground truth. Classes without
  positives are skipped; mAP is the plain mean over the remaining classes.
  With ``top_n`` only the first top_n ranks of a class count, and the
  divisor is min(positives, top_n) (the starter's ``ap_at_n``).

Tie rule (deterministic; the starter broke ties by shuffling or by
``argpartition`` order, which made results depend on luck):

* Within a video, classes are ranked by score descending, and equal scores
  by class index ascending. This decides which classes enter a top-k or a
  top-L when scores tie at the boundary, and matches ``np.argmax``.
* In the pooled GAP list, equal scores keep the order in which the videos
  were accumulated, and within one video the rank order above. Per class
  (mAP), equal scores keep the video order.

Put together, the pooled order is the sort key (-score, video index, class
index), so splitting the same videos into batches in any way gives
bit-identical results.

Speed: a batch's top-k is found without sorting or partitioning whole rows:
the maxima of s interleaved column blocks give a lower bound on each row's
k-th largest score, and only the few scores above it are sorted.
"""

import numpy as np

# Rows with more candidates than this above the block bound (heavy ties, such
# as all-equal scores) are ranked with a full stable sort instead.
_MAX_CANDIDATES = 512


def _check_pair(predictions, labels):
    """Returns (predictions [B, C], labels [B, C]) as arrays or raises."""
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim != 2 or labels.shape != predictions.shape:
        raise ValueError(
            "predictions and labels must both be [batch, num_classes]; got %s "
            "and %s" % (predictions.shape, labels.shape)
        )
    if not np.issubdtype(predictions.dtype, np.floating):
        predictions = predictions.astype(np.float32)
    return predictions, labels


def _full_sort_top_k(predictions, k):
    """Top-k by full stable sort; see top_k_indices for the contract."""
    # Negation is exact for floats, and a stable ascending sort of -score keeps
    # equal scores in class order, which is the tie rule.
    order = np.argsort(-predictions, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(predictions, order, axis=1)


def top_k_indices(predictions, k):
    """Each row's k best classes, in rank order (the module's tie rule).

    Args:
      predictions: float [B, C].
      k: positive int; values above C are clipped to C.

    Returns:
      (indices int64 [B, k'], scores [B, k'] in the input dtype), k' = min(k, C),
      column 0 being each row's best class.
    """
    predictions = np.asarray(predictions)
    if not np.issubdtype(predictions.dtype, np.floating):
        predictions = predictions.astype(np.float64)
    if k < 1:
        raise ValueError("k must be a positive integer, got %r" % (k,))
    num_rows, num_classes = predictions.shape
    k = min(int(k), num_classes)
    if num_rows == 0:
        return (np.zeros((0, k), np.int64), np.zeros((0, k), predictions.dtype))
    if num_classes < max(8 * k, 256):
        return _full_sort_top_k(predictions, k)

    # Column j of `blocks` is the max over columns j, j + nb, j + 2 nb, ...;
    # those are disjoint sets, so the k-th largest block maximum is a score
    # that at least k distinct classes reach: a lower bound on the k-th best
    # score. Interleaved blocks reduce over a middle axis, which numpy does
    # with contiguous element-wise maxima (blocks of adjacent columns would
    # reduce over a short inner axis, several times slower).
    block = min(16, num_classes // (4 * k))
    num_blocks = num_classes // block
    blocks = (
        predictions[:, : num_blocks * block]
        .reshape(num_rows, block, num_blocks)
        .max(axis=1)
    )
    bound = np.partition(blocks, num_blocks - k, axis=1)[:, num_blocks - k]
    candidate_mask = predictions >= bound[:, None]
    flat = np.flatnonzero(candidate_mask)
    rows, cols = np.divmod(flat, num_classes)
    counts = np.bincount(rows, minlength=num_rows)

    # Fewer than k candidates only happens with NaN scores; sort those rows.
    heavy = (counts > _MAX_CANDIDATES) | (counts < k)
    if heavy.any():
        keep = ~heavy[rows]
        flat, rows, cols = flat[keep], rows[keep], cols[keep]
        counts = np.where(heavy, 0, counts)

    indices = np.empty((num_rows, k), np.int64)
    light_rows = np.flatnonzero(~heavy)
    if light_rows.size:
        # Scatter each row's candidates into a padded [B, M] table (candidates
        # keep ascending class order from flatnonzero), then one stable sort per
        # row ranks them by score and, for equal scores, by class.
        width = int(counts.max())
        starts = np.cumsum(counts) - counts
        slot = np.arange(flat.size) - starts[rows]
        keys = np.full((num_rows, width), np.inf)
        keys[rows, slot] = -predictions[rows, cols].astype(np.float64)
        table = np.zeros((num_rows, width), np.int64)
        table[rows, slot] = cols
        order = np.argsort(keys[light_rows], axis=1, kind="stable")[:, :k]
        indices[light_rows] = np.take_along_axis(table[light_rows], order, axis=1)
    heavy_rows = np.flatnonzero(heavy)
    if heavy_rows.size:
        indices[heavy_rows] = _full_sort_top_k(predictions[heavy_rows], k)[0]
    return indices, np.take_along_axis(predictions, indices, axis=1)


def _perr_per_video(predictions, positive, num_labels, top_idx, top_scores):
    """PERR of each video [B] float64.

    Args:
      predictions: float [B, C].
      positive: bool [B, C].
      num_labels: int [B], positives per row.
      top_idx, top_scores: [B, k] rank-ordered top-k (k may be 0 columns);
        rows with num_labels <= k are scored from them, the rest re-ranked.
    """
    num_rows = predictions.shape[0]
    perr = np.zeros(num_rows, np.float64)
    k = top_idx.shape[1]
    if k:
        hits = np.take_along_axis(positive, top_idx, axis=1) & (top_scores > 0)
        cum_hits = np.cumsum(hits, axis=1)
        covered = (num_labels >= 1) & (num_labels <= k)
        rows = np.flatnonzero(covered)
        perr[rows] = cum_hits[rows, num_labels[rows] - 1] / num_labels[rows]
    long_rows = np.flatnonzero(num_labels > k)
    if long_rows.size:
        depth = int(num_labels[long_rows].max())
        idx, scores = top_k_indices(predictions[long_rows], depth)
        hits = np.take_along_axis(positive[long_rows], idx, axis=1) & (scores > 0)
        cum_hits = np.cumsum(hits, axis=1)
        lengths = num_labels[long_rows]
        perr[long_rows] = cum_hits[np.arange(long_rows.size), lengths - 1] / lengths
    return perr


def calculate_hit_at_one(predictions, actuals):
    """Hit@1: mean over videos of actuals[argmax(predictions)] > 0.

    Args:
      predictions: float [B, C].
      actuals: multi-hot [B, C].

    Returns:
      float in [0, 1]; 0.0 for an empty batch.
    """
    predictions, actuals = _check_pair(predictions, actuals)
    if predictions.shape[0] == 0:
        return 0.0
    best = np.argmax(predictions, axis=1)  # first maximum: the tie rule
    return float(np.mean(actuals[np.arange(actuals.shape[0]), best] > 0))


def calculate_precision_at_equal_recall_rate(predictions, actuals):
    """PERR: mean over videos of the precision of their top-L predictions.

    L is the video's number of labels; only predictions with score > 0 count
    as hits; a video without labels scores 0. Shapes and the empty batch as
    for calculate_hit_at_one.
    """
    predictions, actuals = _check_pair(predictions, actuals)
    if predictions.shape[0] == 0:
        return 0.0
    positive = actuals > 0
    num_labels = np.count_nonzero(positive, axis=1)
    empty = np.zeros((predictions.shape[0], 0), np.int64)
    perr = _perr_per_video(
        predictions, positive, num_labels, empty, empty.astype(predictions.dtype)
    )
    return float(np.mean(perr))


def calculate_gap(predictions, actuals, top_k=20):
    """Global average precision over every video's top_k predictions.

    Args:
      predictions: float [B, C].
      actuals: multi-hot [B, C].
      top_k: positive int, predictions kept per video (clipped to C).

    Returns:
      float GAP; 0.0 when there are no positive labels.
    """
    predictions, actuals = _check_pair(predictions, actuals)
    metrics = EvaluationMetrics(predictions.shape[1], top_k)
    metrics.accumulate(predictions, actuals, 0.0)
    return metrics.get()["gap"]


def top_k_by_class(predictions, labels, k=20):
    """Groups every video's top-k predictions by class (the starter's helper).

    Args:
      predictions: float [B, C].
      labels: multi-hot [B, C].
      k: positive int (clipped to C).

    Returns:
      (scores, labels, positives): two lists of C arrays, class c's scores
      (input dtype) and 0/1 labels (float64) of the videos whose top-k holds c,
      in video order; and a list of C ints, class c's positives in `labels`.
    """
    predictions, labels = _check_pair(predictions, labels)
    num_classes = predictions.shape[1]
    idx, scores = top_k_indices(predictions, k)
    positive = labels > 0
    hits = np.take_along_axis(positive, idx, axis=1).ravel().astype(np.float64)
    classes = idx.ravel()
    order = np.argsort(classes, kind="stable")
    split = np.cumsum(np.bincount(classes, minlength=num_classes))[:-1]
    return (
        np.split(scores.ravel()[order], split),
        np.split(hits[order], split),
        [int(n) for n in np.count_nonzero(positive, axis=0)],
    )


class EvaluationMetrics:
    """Accumulates Hit@1, PERR, loss, GAP@top_k and mAP over batches.

    Keeps, per video, only its top_k (score, label, class) triples and a few
    counters; get() sorts the pooled triples once. Accumulating the same
    videos in any split into batches gives identical numbers (for the loss:
    when it is passed per example).

    Args:
      num_class: int C, the width of predictions and labels.
      top_k: positive int, predictions per video kept for GAP and mAP
        (clipped to C).
      top_n: None, or a positive int: per class only the top_n ranked videos
        count towards AP (the starter's MeanAveragePrecisionCalculator).
    """

    def __init__(self, num_class, top_k, top_n=None):
        if num_class < 1:
            raise ValueError("num_class must be positive, got %r" % (num_class,))
        if top_k < 1:
            raise ValueError("top_k must be positive, got %r" % (top_k,))
        if top_n is not None and top_n < 1:
            raise ValueError("top_n must be None or positive, got %r" % (top_n,))
        self.num_class = int(num_class)
        self.top_k = min(int(top_k), self.num_class)
        self.top_n = top_n
        self.clear()

    def clear(self):
        """Forgets everything accumulated."""
        self.num_examples = 0
        self._hits = 0
        self._perr = []
        self._loss = []
        self._scores = []
        self._classes = []
        self._labels = []
        self._class_positives = np.zeros(self.num_class, np.int64)

    def accumulate(self, predictions, labels, loss):
        """Adds one batch.

        Args:
          predictions: float [B, C].
          labels: multi-hot [B, C].
          loss: scalar batch-mean loss, or per-example losses [B].

        Returns:
          dict of this batch's means: "hit_at_one", "perr", "loss" (floats).
        """
        predictions, labels = _check_pair(predictions, labels)
        if predictions.shape[1] != self.num_class:
            raise ValueError(
                "expected %d classes, got %d" % (self.num_class, predictions.shape[1])
            )
        batch_size = predictions.shape[0]
        loss = np.asarray(loss, np.float64)
        mean_loss = float(np.mean(loss)) if loss.size else 0.0
        if batch_size == 0:
            return {"hit_at_one": 0.0, "perr": 0.0, "loss": mean_loss}

        positive = labels > 0
        flat = np.flatnonzero(positive)
        rows, cols = np.divmod(flat, self.num_class)
        num_labels = np.bincount(rows, minlength=batch_size)
        self._class_positives += np.bincount(cols, minlength=self.num_class)

        idx, scores = top_k_indices(predictions, self.top_k)
        top_hits = np.take_along_axis(positive, idx, axis=1)
        hit_at_one = top_hits[:, 0]
        perr = _perr_per_video(predictions, positive, num_labels, idx, scores)

        class_dtype = np.int16 if self.num_class <= 32767 else np.int32
        self._scores.append(scores.astype(np.float64).ravel())
        self._classes.append(idx.astype(class_dtype).ravel())
        self._labels.append(top_hits.ravel())
        self._hits += int(np.count_nonzero(hit_at_one))
        self._perr.append(perr)
        # Per-example losses are kept as given so that any batching sums the
        # same numbers; a batch mean is weighted by the batch size.
        if loss.ndim == 1 and loss.size == batch_size:
            self._loss.append(loss)
        else:
            self._loss.append(np.array([mean_loss * batch_size]))
        self.num_examples += batch_size
        return {
            "hit_at_one": float(np.mean(hit_at_one)),
            "perr": float(np.mean(perr)),
            "loss": mean_loss,
        }

    def get(self):
        """Returns the metrics over everything accumulated so far.

        Returns:
          dict: "avg_hit_at_one", "avg_perr", "avg_loss", "gap", "map" (floats),
          "aps" (list of C floats, NaN for a class without positives, which mAP
          skips), "num_examples" (int). All 0.0 before any example.
        """
        num = self.num_examples
        gap, aps, mean_ap = self._gap_and_aps()
        if num == 0:
            return {
                "avg_hit_at_one": 0.0,
                "avg_perr": 0.0,
                "avg_loss": 0.0,
                "gap": gap,
                "aps": aps,
                "map": mean_ap,
                "num_examples": 0,
            }
        return {
            "avg_hit_at_one": self._hits / num,
            "avg_perr": float(np.sum(np.concatenate(self._perr)) / num),
            "avg_loss": float(np.sum(np.concatenate(self._loss)) / num),
            "gap": gap,
            "aps": aps,
            "map": mean_ap,
            "num_examples": num,
        }

    def _gap_and_aps(self):
        """(GAP, per-class AP list, mAP) from the pooled top-k triples."""
        class_positives = self._class_positives
        has_positives = class_positives > 0
        aps = np.full(self.num_class, np.nan)
        if not self._scores:
            return 0.0, aps.tolist(), 0.0
        scores = np.concatenate(self._scores)
        order = np.argsort(-scores, kind="stable")
        hits = np.concatenate(self._labels)[order]
        classes = np.concatenate(self._classes)[order]

        total_positives = int(class_positives.sum())
        gap = 0.0
        if total_positives:
            found = np.cumsum(hits)
            ranks = np.flatnonzero(hits) + 1
            gap = float(np.sum(found[hits] / ranks) / total_positives)

        # Regroup by class; a stable sort keeps each class's entries in pooled
        # (score, video) order.
        by_class = np.argsort(classes, kind="stable")
        classes = classes[by_class].astype(np.int64)
        hits = hits[by_class]
        counts = np.bincount(classes, minlength=self.num_class)
        starts = np.cumsum(counts) - counts
        rank = np.arange(classes.size) - starts[classes] + 1
        found = np.cumsum(hits)
        found_before = np.concatenate([[0], found])[starts]
        found = found - found_before[classes]
        counted = hits if self.top_n is None else hits & (rank <= self.top_n)
        sums = np.bincount(
            classes[counted],
            weights=found[counted] / rank[counted],
            minlength=self.num_class,
        )
        divisor = class_positives
        if self.top_n is not None:
            divisor = np.minimum(divisor, self.top_n)
        aps[has_positives] = sums[has_positives] / divisor[has_positives]
        mean_ap = float(np.mean(aps[has_positives])) if has_positives.any() else 0.0
        return gap, aps.tolist(), mean_ap


def segment_map_at_n(submission, rated, top_n=None):
    """mAP@N of a segment submission, as the 2019 challenge scored it.

    Args:
      submission: {class id: [segment id, ...]} best first.
      rated: {(segment id, class id): score}, score > 0 a positive; the
        (segment, class) pairs the ground truth rated.
      top_n: None or 0 (all), or the ranks per class that count.
    Returns:
      (mAP, {class id: AP}): per class of the submission that has a positive,
      the average precision over its list cut to top_n with unrated segments
      left out, divided by the class's number of positives; mAP is their
      mean (0.0 when no class of the submission has a positive).
    """
    positives = {}
    for (_, class_id), score in rated.items():
        if score > 0:
            positives[class_id] = positives.get(class_id, 0) + 1
    aps = {}
    for class_id, segment_ids in submission.items():
        if not positives.get(class_id):
            continue  # no positive in the ground truth: AP undefined
        listed = segment_ids[:top_n] if top_n else segment_ids
        hits = [
            rated[(segment_id, class_id)] > 0
            for segment_id in listed
            if (segment_id, class_id) in rated
        ]
        found = np.cumsum(hits)
        ranks = np.arange(1, len(hits) + 1)
        aps[class_id] = float(
            np.sum((found / ranks)[np.asarray(hits, bool)]) / positives[class_id]
        )
    mean_ap = float(np.mean(list(aps.values()))) if aps else 0.0
    return mean_ap, aps
