"""Frame-level models: classifiers over a video's sequence of frame features.

Every model reads `features` [B, T, D] (zero past num_frames), pools them
into one vector per video in its own way, and ends in the video-level head
named by --video_level_classifier_model.
"""

from absl import flags
import keras
import tensorflow as tf

import dcgn_layers
import kts_graph
import models
import video_level_models

flags.DEFINE_string(
    "video_level_classifier_model",
    "MoeModel",
    "The video-level model that ends every frame-level model.",
)
flags.DEFINE_integer("iterations", 30, "Frames DbofModel samples from each video.")
flags.DEFINE_bool(
    "dbof_add_batch_norm", True, "Batch-normalise DbofModel's input and hidden layers."
)
flags.DEFINE_bool(
    "sample_random_frames",
    True,
    "DbofModel samples frames at random while training; "
    "otherwise (and always in evaluation) evenly spaced.",
)
flags.DEFINE_integer(
    "dbof_cluster_size", 8192, "DbofModel's cluster (projection) size."
)
flags.DEFINE_integer("dbof_hidden_size", 1024, "DbofModel's hidden size.")
flags.DEFINE_string(
    "dbof_pooling_method", "max", "How DbofModel pools frames: max or average."
)
flags.DEFINE_integer("lstm_cells", 1024, "Units per layer of LstmModel and GruModel.")
flags.DEFINE_integer("lstm_layers", 2, "Stacked layers of LstmModel and GruModel.")
flags.DEFINE_integer("dcgn_levels", 5, "DCGN levels (paper Table 1: 5).")
flags.DEFINE_integer(
    "dcgn_filters", 1024, "Filters of every DCGN level (paper Table 1: 1024)."
)
flags.DEFINE_integer(
    "dcgn_kernel", 3, "Nodes each DCGN level pools and convolves into one."
)
flags.DEFINE_string(
    "dcgn_pooling",
    "average",
    "DCGN graph pooling: average (eq. 4) or attention (eq. 5).",
)
flags.DEFINE_integer(
    "dcgn_shots",
    0,
    "KTS shots that form DCGN's first level (eqs. 10-11); "
    "0: the first level pools frames.",
)


def frame_mask(features, num_frames):
    """bool [B, T]: True at the real frames of each video."""
    return tf.sequence_mask(num_frames, tf.shape(features)[1])


def batch_norm_or_none(enabled, name):
    return keras.layers.BatchNormalization(name=name) if enabled else None


class FrameLevelModel(models.BaseModel):
    """Shared head construction: subclasses pool and call self.classifier."""

    frame_level = True

    def __init__(
        self,
        video_level_classifier_model="MoeModel",
        moe_num_mixtures=2,
        l2_penalty=1e-8,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.video_level_classifier_model = video_level_classifier_model
        self.moe_num_mixtures = moe_num_mixtures
        self.l2_penalty = l2_penalty
        self.classifier = video_level_models.make_classifier(
            video_level_classifier_model,
            {"moe_num_mixtures": moe_num_mixtures, "l2_penalty": l2_penalty},
            self.num_classes,
        )


class FrameLevelLogisticModel(FrameLevelModel):
    """Average pooling (the paper's baseline): the mean of the real frames.

    The starter ended this model in a logistic layer; here it ends in the
    shared head like every frame-level model, so comparisons differ only in
    the pooling (--video_level_classifier_model=LogisticModel gives the
    starter's).
    """

    def classify(self, features, batch, training=None):
        num_frames = tf.cast(tf.maximum(batch["num_frames"], 1), features.dtype)
        pooled = tf.reduce_sum(features, axis=1) / num_frames[:, None]
        return self.classifier.classify(pooled)


class DbofModel(FrameLevelModel):
    """Deep bag of frames: project sampled frames, pool, hidden layer, head.

    Frames are sampled among the real ones only (so padding never enters):
    at random in training, evenly spaced otherwise, which keeps evaluation
    deterministic.
    """

    def __init__(
        self,
        iterations=30,
        dbof_add_batch_norm=True,
        sample_random_frames=True,
        dbof_cluster_size=8192,
        dbof_hidden_size=1024,
        dbof_pooling_method="max",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if dbof_pooling_method not in ("max", "average"):
            raise ValueError(
                f"--dbof_pooling_method={dbof_pooling_method!r}: use max or average."
            )
        self.iterations = iterations
        self.dbof_add_batch_norm = dbof_add_batch_norm
        self.sample_random_frames = sample_random_frames
        self.dbof_cluster_size = dbof_cluster_size
        self.dbof_hidden_size = dbof_hidden_size
        self.dbof_pooling_method = dbof_pooling_method
        self.input_norm = batch_norm_or_none(dbof_add_batch_norm, "input_bn")
        # With batch norm after them, biases would be redundant.
        self.cluster = keras.layers.Dense(
            dbof_cluster_size, use_bias=not dbof_add_batch_norm, name="cluster"
        )
        self.cluster_norm = batch_norm_or_none(dbof_add_batch_norm, "cluster_bn")
        self.hidden = keras.layers.Dense(
            dbof_hidden_size, use_bias=not dbof_add_batch_norm, name="hidden"
        )
        self.hidden_norm = batch_norm_or_none(dbof_add_batch_norm, "hidden_bn")

    def sample_frames(self, features, num_frames, training):
        """[B, iterations, D] frames taken from [0, num_frames) of each video."""
        frames = tf.cast(tf.maximum(num_frames, 1), tf.float32)[:, None]
        if training and self.sample_random_frames:
            position = tf.random.uniform([tf.shape(features)[0], self.iterations])
        else:
            position = (tf.range(self.iterations, dtype=tf.float32) + 0.5) / float(
                self.iterations
            )
        index = tf.cast(tf.floor(position * frames), tf.int32)
        return tf.gather(features, index, batch_dims=1)

    def project(self, x, dense, norm, training):
        x = dense(x)
        if norm is not None:
            x = norm(x, training=training)
        return tf.nn.relu6(x)

    def classify(self, features, batch, training=None):
        x = self.sample_frames(features, batch["num_frames"], training)
        if self.input_norm is not None:
            x = self.input_norm(x, training=training)
        x = self.project(x, self.cluster, self.cluster_norm, training)
        if self.dbof_pooling_method == "max":
            x = tf.reduce_max(x, axis=1)
        else:
            x = tf.reduce_mean(x, axis=1)
        x = self.project(x, self.hidden, self.hidden_norm, training)
        return self.classifier.classify(x)


class LstmModel(FrameLevelModel):
    """Stacked LSTM; the last layer's state at each video's real length.

    Masked steps keep the state unchanged, so padding never enters.
    """

    recurrent_layer = keras.layers.LSTM

    def __init__(self, lstm_cells=1024, lstm_layers=2, **kwargs):
        super().__init__(**kwargs)
        self.lstm_cells = lstm_cells
        self.lstm_layers = lstm_layers
        self.recurrent = [
            self.recurrent_layer(
                lstm_cells,
                return_sequences=layer < lstm_layers - 1,
                name=f"recurrent_{layer}",
            )
            for layer in range(lstm_layers)
        ]

    def classify(self, features, batch, training=None):
        mask = frame_mask(features, batch["num_frames"])
        x = features
        for layer in self.recurrent:
            x = layer(x, mask=mask, training=training)
        return self.classifier.classify(x)


class GruModel(LstmModel):
    """LstmModel with GRU layers (same flags: --lstm_cells, --lstm_layers)."""

    recurrent_layer = keras.layers.GRU


class DCGNModel(FrameLevelModel):
    """Deep convolutional graph network (the paper's DCGN, Fig. 6).

    Levels of graph pooling, node convolution and propagation over a densely
    connected cosine-similarity graph abstract frames into shots, events and
    the video; the last level's nodes, concatenated, feed the head. With
    dcgn_shots = m > 0 the first level's nodes are m KTS shots: taken from the
    batch's shot_boundaries when the input pipeline computed them, otherwise
    (an exported model fed raw records) computed in the graph with the same
    result. See dcgn_layers.DCGNEncoder for the choices the paper leaves open.
    """

    def __init__(
        self,
        dcgn_levels=5,
        dcgn_filters=1024,
        dcgn_kernel=3,
        dcgn_pooling="average",
        dcgn_shots=0,
        max_frames=300,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dcgn_levels = dcgn_levels
        self.dcgn_filters = dcgn_filters
        self.dcgn_kernel = dcgn_kernel
        self.dcgn_pooling = dcgn_pooling
        self.dcgn_shots = dcgn_shots
        self.max_frames = max_frames
        self.num_shots = dcgn_shots
        self.encoder = dcgn_layers.DCGNEncoder(
            levels=dcgn_levels,
            filters=dcgn_filters,
            kernel=dcgn_kernel,
            pooling=dcgn_pooling,
            num_shots=dcgn_shots,
            max_frames=max_frames,
            name="dcgn",
        )

    def classify(self, features, batch, training=None):
        shot_boundaries = None
        if self.num_shots:
            shot_boundaries = batch.get("shot_boundaries")
            if shot_boundaries is None:
                shot_boundaries = kts_graph.shot_boundaries_tf(
                    features, batch["num_frames"], self.num_shots
                )
        video = self.encoder(
            features, batch["num_frames"], shot_boundaries, training=training
        )
        return self.classifier.classify(video)
