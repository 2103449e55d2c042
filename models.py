"""The model protocol every YouTube-8M classifier follows.

A model is a Keras model whose call takes the batch dict of readers.py and
returns {"predictions": float32 [B, num_classes]} probabilities. Subclasses
implement `classify`; this base class does what all of them share: the
per-frame L2 normalisation of the input, dequantising uint8 frames inside the
compiled step, building from a dummy batch (so checkpoints and .keras files
restore into real variables), and construction from flags or a saved config.
"""

import inspect

import keras
import tensorflow as tf


def dequantize(features):
    """uint8 YouTube-8M features to float32 with the starter's formula."""
    return tf.cast(features, tf.float32) * (4.0 / 255.0) + (4.0 / 512.0 - 2.0)


def init_parameter_names(cls):
    """Constructor parameter names of `cls` and its bases (the hyperparameters).

    One helper serves construction from flags, get_config and the head factory,
    so a model lists each hyperparameter once: in its __init__ signature, stored
    on self under the same name.
    """
    names = []
    for klass in cls.__mro__:
        if not issubclass(klass, BaseModel):
            continue
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and param.kind in (
                param.POSITIONAL_OR_KEYWORD,
                param.KEYWORD_ONLY,
            ):
                if name not in names:
                    names.append(name)
    return names


def construct(cls, values, **overrides):
    """Builds `cls` from the entries of `values` that name its hyperparameters."""
    kwargs = {
        name: values[name] for name in init_parameter_names(cls) if name in values
    }
    kwargs.update(overrides)
    return cls(**kwargs)


def find_model_class(name, modules, flag="--model"):
    """The concrete model class called `name` in `modules`, or a clear error."""
    classes = {
        class_name: cls
        for module in modules
        for class_name, cls in vars(module).items()
        if isinstance(cls, type)
        and issubclass(cls, BaseModel)
        and cls.classify is not BaseModel.classify
    }
    if name not in classes:
        raise ValueError(
            f"{flag}={name!r} is not a model here; choose one of {sorted(classes)}."
        )
    return classes[name]


def dummy_batch(feature_dim, max_frames, frame_features, num_shots=0, batch_size=1):
    """A zero batch with the reader's keys, dtypes and static shapes."""
    if frame_features:
        video_matrix = tf.zeros([batch_size, max_frames, feature_dim])
    else:
        video_matrix = tf.zeros([batch_size, feature_dim])
    batch = {
        "video_ids": tf.fill([batch_size], ""),
        "video_matrix": video_matrix,
        "num_frames": tf.ones([batch_size], tf.int32),
    }
    if num_shots:
        batch["shot_boundaries"] = tf.concat(
            [
                tf.zeros([batch_size, 1], tf.int32),
                tf.ones([batch_size, num_shots], tf.int32),
            ],
            axis=1,
        )
    return batch


class BaseModel(keras.Model):
    """Batch dict in, {"predictions": float32 [B, num_classes]} out.

    Class attributes a subclass may set:
      frame_level: True when `classify` expects [B, T, D] frames and num_frames.
    Instance attribute:
      num_shots: KTS shots the model wants as `shot_boundaries` in the batch
        (0: none); the programs ask the reader for them.
    """

    frame_level = False

    def __init_subclass__(cls, **kwargs):
        # Every model loads from a .keras file without further ceremony.
        super().__init_subclass__(**kwargs)
        keras.saving.register_keras_serializable(package="yt8m")(cls)

    def __init__(self, num_classes, l2_normalize_input=True, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.l2_normalize_input = l2_normalize_input
        self.num_shots = 0
        self._build_shapes = None

    def classify(self, features, batch, training=None):
        """Probabilities [B, num_classes] from normalised float32 features.

        Args:
          features: [B, T, D] frames (zero past num_frames) or [B, D] video-level.
          batch: the whole batch dict, for num_frames and shot_boundaries.
          training: Keras training flag.
        """
        raise NotImplementedError

    def call(self, batch, training=None):
        features = batch["video_matrix"]
        if features.dtype == tf.uint8:
            features = dequantize(features)
        if self.frame_level:
            # Whatever lies past num_frames (zero bytes dequantise to -2) must not
            # reach any model, so every model sees zeros there.
            valid = tf.sequence_mask(batch["num_frames"], tf.shape(features)[1])
            features *= tf.cast(valid, features.dtype)[:, :, None]
        if self.l2_normalize_input:
            # The starter's habit; zero (padded) frames stay zero.
            features = tf.math.l2_normalize(features, axis=-1)
        return {"predictions": self.classify(features, batch, training=training)}

    # Keras records input shapes only for tensors; a dict batch with strings
    # needs its own recipe so that loading a .keras file rebuilds the weights.
    def build(self, input_shape=None):
        # Sublayers create their weights on the first call (see build_for).
        self.built = True

    def get_build_config(self):
        return self._build_shapes

    def build_from_config(self, config):
        if config:
            self.build_for(**config)

    def build_for(self, feature_dim, max_frames, frame_features):
        """Creates every weight by calling the model on a zero batch."""
        self._build_shapes = {
            "feature_dim": int(feature_dim),
            "max_frames": int(max_frames),
            "frame_features": bool(frame_features),
        }
        self(dummy_batch(feature_dim, max_frames, frame_features, self.num_shots))
        return self

    def hyperparameters(self):
        return {name: getattr(self, name) for name in init_parameter_names(type(self))}

    def get_config(self):
        return {**super().get_config(), **self.hyperparameters()}

    @classmethod
    def from_config(cls, config):
        return construct(cls, config, name=config.get("name"))
