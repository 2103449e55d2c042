"""Frame-level models: classifiers over a video's sequence of frame features.

Every model reads `features` [B, T, D] (zero past num_frames), pools them
into one vector per video in its own way, and ends in the video-level head
named by --video_level_classifier_model.
"""

import keras
import tensorflow as tf

import dcgn_layers
import kts_graph
import models
import video_level_models


def frame_mask(features, num_frames):
    """bool [B, T]: True at the real frames of each video."""
    return tf.sequence_mask(num_frames, tf.shape(features)[1])


def batch_norm_or_none(enabled, name):
    return keras.layers.BatchNormalization(name=name) if enabled else None


class FrameLevelModel(models.BaseModel):
    """Shared head construction: subclasses pool and call self.classifier."""

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.classifier = video_level_models.make_classifier(
            config.head.video_level_classifier_model, config.num_classes, config.head
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
        return self.classifier(pooled)


class DbofModel(FrameLevelModel):
    """Deep bag of frames: project sampled frames, pool, hidden layer, head.

    Frames are sampled among the real ones only (so padding never enters).
    Training samples as the starter did: random frames, or with
    sample_random_frames=False a random run of consecutive frames.
    Evaluation takes evenly spaced frames (or the middle run) where the
    starter sampled at random, so that the same checkpoint always scores the
    same.
    """

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        dbof = config.body
        self.iterations = dbof.iterations
        self.sample_random_frames = dbof.sample_random_frames
        self.pooling_method = dbof.dbof_pooling_method
        self.activation = {"sigmoid": tf.nn.sigmoid, "relu6": tf.nn.relu6}[
            dbof.dbof_activation
        ]
        self.input_norm = batch_norm_or_none(dbof.dbof_add_batch_norm, "input_bn")
        # With batch norm after them, biases would be redundant.
        self.cluster = keras.layers.Dense(
            dbof.dbof_cluster_size,
            use_bias=not dbof.dbof_add_batch_norm,
            name="cluster",
        )
        self.cluster_norm = batch_norm_or_none(dbof.dbof_add_batch_norm, "cluster_bn")
        self.hidden = keras.layers.Dense(
            dbof.dbof_hidden_size, use_bias=not dbof.dbof_add_batch_norm, name="hidden"
        )
        self.hidden_norm = batch_norm_or_none(dbof.dbof_add_batch_norm, "hidden_bn")

    def sample_frames(self, features, num_frames, training):
        """[B, iterations, D] frames taken from [0, num_frames) of each video."""
        batch = tf.shape(features)[0]
        if self.sample_random_frames:
            if training:
                position = tf.random.uniform([batch, self.iterations])
            else:
                position = (tf.range(self.iterations, dtype=tf.float32) + 0.5) / float(
                    self.iterations
                )
            frames = tf.cast(tf.maximum(num_frames, 1), tf.float32)[:, None]
            index = tf.cast(tf.floor(position * frames), tf.int32)
        else:
            # A run of consecutive frames, repeating the last in short videos.
            last_start = tf.maximum(num_frames - self.iterations, 0)
            if training:
                start = tf.random.uniform([batch], maxval=1.0) * tf.cast(
                    last_start + 1, tf.float32
                )
                start = tf.minimum(tf.cast(start, tf.int32), last_start)
            else:
                start = last_start // 2
            index = tf.minimum(
                start[:, None] + tf.range(self.iterations)[None, :],
                tf.maximum(num_frames - 1, 0)[:, None],
            )
        return tf.gather(features, index, batch_dims=1)

    def project(self, x, dense, norm, training):
        x = dense(x)
        if norm is not None:
            x = norm(x, training=training)
        return self.activation(x)

    def classify(self, features, batch, training=None):
        x = self.sample_frames(features, batch["num_frames"], training)
        if self.input_norm is not None:
            x = self.input_norm(x, training=training)
        x = self.project(x, self.cluster, self.cluster_norm, training)
        if self.pooling_method == "max":
            x = tf.reduce_max(x, axis=1)
        else:
            x = tf.reduce_mean(x, axis=1)
        x = self.project(x, self.hidden, self.hidden_norm, training)
        return self.classifier(x)


class LstmModel(FrameLevelModel):
    """Stacked LSTM; the last layer's state at each video's real length.

    Masked steps keep the state unchanged, so padding never enters.
    """

    recurrent_layer = keras.layers.LSTM

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        recurrent = config.body
        self.recurrent = [
            self.recurrent_layer(
                recurrent.lstm_cells,
                return_sequences=layer < recurrent.lstm_layers - 1,
                name=f"recurrent_{layer}",
            )
            for layer in range(recurrent.lstm_layers)
        ]

    def classify(self, features, batch, training=None):
        mask = frame_mask(features, batch["num_frames"])
        x = features
        for layer in self.recurrent:
            if not layer.built:
                layer.build(x.shape)
            # The weights are read once, here, and the recurrent loop captures
            # the values: a weight read inside the loop is kept once per frame
            # for the gradient, which under XLA (--jit_compile) is a copy per
            # frame (docs/benchmarks.md).
            values = [(w, tf.convert_to_tensor(w)) for w in layer.weights]
            with keras.StatelessScope(state_mapping=values):
                x = layer(x, mask=mask, training=training)
        return self.classifier(x)


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

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.dcgn_shots = config.dcgn_shots
        self.dcgn_kts_penalty = config.dcgn_kts_penalty
        self.max_frames = config.max_frames
        self.encoder = dcgn_layers.DCGNEncoder(
            config.body, config.max_frames, name="dcgn"
        )

    def classify(self, features, batch, training=None):
        shot_boundaries = None
        if self.dcgn_shots:
            shot_boundaries = batch.get("shot_boundaries")
            if shot_boundaries is None:
                shot_boundaries = kts_graph.shot_boundaries_tf(
                    features,
                    batch["num_frames"],
                    self.dcgn_shots,
                    self.dcgn_kts_penalty,
                    full_length=self.max_frames,
                )
        # Clips shorter than max_frames (5-frame segments) are padded: the
        # levels' node counts, and so the head's width, follow max_frames.
        features = tf.pad(
            features, [[0, 0], [0, self.max_frames - tf.shape(features)[1]], [0, 0]]
        )
        features = tf.ensure_shape(features, [None, self.max_frames, None])
        video = self.encoder(
            features, batch["num_frames"], shot_boundaries, training=training
        )
        return self.classifier(video)
