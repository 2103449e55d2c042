"""The training step and optimizer of train.py, for every caller.

train.py runs them under its distribution strategy; the tests and
benchmarks call the same functions, so what they measure is the step the
program runs (regularisation and clipping included).
"""

import keras
import tensorflow as tf

import configs
from cli import UsageError


def make_optimizer(optimization: configs.OptimizationConfig):
    """The starter's optimizer: staircase decay every N examples seen.

    optimization.optimizer: a Keras optimizer name (adam, sgd, ...) or the
    starter's spelling (AdamOptimizer, ...). No clipnorm here: Keras clips
    each replica's share of the gradient before summing them; the step clips
    the sum instead.
    """
    schedule = keras.optimizers.schedules.ExponentialDecay(
        optimization.base_learning_rate,
        decay_steps=optimization.learning_rate_decay_examples / optimization.batch_size,
        decay_rate=optimization.learning_rate_decay,
        staircase=True,
    )
    name = optimization.optimizer
    key = name[: -len("Optimizer")] if name.endswith("Optimizer") else name
    try:
        optimizer_class = type(keras.optimizers.get(key.lower()))
    except ValueError:
        raise UsageError(
            f"--optimizer={name!r} is not a Keras optimizer; try adam, sgd, "
            "rmsprop, adagrad or adamw."
        ) from None
    return optimizer_class(learning_rate=schedule)


def clip_summed_gradients(gradients, clip_norm):
    """Each replica's share of the gradients, scaled as clipping their sum.

    Clips every gradient (per variable, like Keras' clipnorm) by the norm of
    its sum over the replicas, so training with several replicas or workers
    clips exactly as one process with the same global batch.
    """
    context = tf.distribute.get_replica_context()
    summed = iter(
        context.all_reduce(
            tf.distribute.ReduceOp.SUM, [g for g in gradients if g is not None]
        )
    )
    return [
        None
        if gradient is None
        else gradient * clip_norm / tf.maximum(tf.norm(next(summed)), clip_norm)
        for gradient in gradients
    ]


def _single_device(strategy):
    """True where an optimizer update needs no cross-device aggregation."""
    mirrored = (
        tf.distribute.MirroredStrategy,
        tf.distribute.MultiWorkerMirroredStrategy,
    )
    return strategy.num_replicas_in_sync == 1 and not isinstance(strategy, mirrored)


def make_train_step(
    model,
    optimizer,
    loss_fn,
    global_batch_size,
    clip_gradient_norm=1.0,
    regularization_penalty=1.0,
    strategy=None,
    jit_compile=False,
):
    """A tf.function: batch -> (summed loss, predictions, labels), one update.

    The loss is the per-example loss averaged over the global batch, plus
    regularization_penalty times the model's regularisation losses; the
    gradients of the sum over replicas are clipped to clip_gradient_norm
    (0: no clipping). A batch with label_weights (rated segments) leaves the
    unrated labels out of the loss. strategy None: the current (default)
    strategy. jit_compile: compile the step with XLA.
    """
    strategy = strategy or tf.distribute.get_strategy()

    def replica_step(batch):
        with tf.GradientTape() as tape:
            predictions = model(batch, training=True)["predictions"]
            label_weights = batch.get("label_weights")
            per_example = loss_fn.per_example_loss(
                predictions, batch["labels"], label_weights
            )
            loss = tf.nn.compute_average_loss(
                per_example, global_batch_size=global_batch_size
            )
            total = loss
            if model.losses:
                total += regularization_penalty * tf.nn.scale_regularization_loss(
                    tf.add_n(model.losses)
                )
        gradients = tape.gradient(total, model.trainable_variables)
        if clip_gradient_norm > 0:
            gradients = clip_summed_gradients(gradients, clip_gradient_norm)
        apply_gradients(gradients)
        if label_weights is not None:
            # Rated segments: the training metrics count the rated classes only.
            predictions *= label_weights
        return loss, predictions, batch["labels"]

    def apply_gradients(gradients):
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))

    if not jit_compile and _single_device(strategy):
        # The update alone compiled: the optimizer's several passes over each
        # variable (Adam: two moments, then the weight) fuse into one, which
        # matters most where a big head holds most weights (the gain on a
        # full-size DCGN: docs/benchmarks.md). Across devices the
        # update all-reduces, which stays outside XLA.
        apply_gradients = tf.function(apply_gradients, jit_compile=True)

    @tf.function(jit_compile=jit_compile)
    def compiled_step(batch):
        loss, predictions, labels = strategy.run(replica_step, args=(batch,))
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        return loss, predictions, labels

    def train_step(batch):
        # The ids are strings, which XLA cannot take, and no model reads them.
        return compiled_step({k: v for k, v in batch.items() if k != "video_ids"})

    return train_step
