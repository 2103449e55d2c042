"""Typed model configs: what shapes a model, as frozen dataclasses.

model_flags.py builds a `ModelConfig` from the flags in one place; train.py
saves it as train_dir/model_config.json; eval.py and inference.py load it;
the model takes it and hands each layer the part it needs. A field is
spelt like the flag that sets it, so grep follows a hyperparameter from its
flag to the layer that uses it.

Imports no TensorFlow (compare.py checks model entries with it).
"""

import dataclasses
from typing import Optional, Union

from errors import UsageError

# The data's defaults, the starter's: the 2018 vocabulary (4716 classes in
# 2017), 300 frames of rgb and audio a video, 5-frame segments (2019).
NUM_CLASSES = 3862
FRAME_FEATURE_NAMES = ("rgb", "audio")
VIDEO_FEATURE_NAMES = ("mean_rgb", "mean_audio")
FEATURE_SIZES = (1024, 128)
MAX_FRAMES = 300
SEGMENT_SIZE = 5


def features(names, sizes):
    """(feature_names, feature_sizes) as tuples, from sequences or
    comma-separated text; a UsageError naming the flags when they do not pair."""
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    if isinstance(sizes, str):
        sizes = [size.strip() for size in sizes.split(",") if size.strip()]
    try:
        sizes = tuple(int(size) for size in sizes)
    except ValueError:
        raise UsageError(
            f"--feature_sizes={','.join(map(str, sizes))}: give comma-separated "
            "whole numbers."
        ) from None
    names = tuple(names)
    if len(names) != len(sizes):
        raise UsageError(
            f"--feature_names has {len(names)} names ({','.join(names)}) but "
            f"--feature_sizes has {len(sizes)} sizes "
            f"({','.join(map(str, sizes))}); give one size per name."
        )
    if not names:
        raise UsageError("--feature_names is empty; give at least one feature.")
    return names, sizes


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """The video-level classifier: a whole video-level model, or the head
    that ends every frame-level model."""

    video_level_classifier_model: str = "MoeModel"
    moe_num_mixtures: int = 2
    l2_penalty: float = 1e-8


@dataclasses.dataclass(frozen=True)
class DbofConfig:
    iterations: int = 30
    dbof_add_batch_norm: bool = True
    sample_random_frames: bool = True
    dbof_cluster_size: int = 8192
    dbof_hidden_size: int = 1024
    dbof_pooling_method: str = "max"
    dbof_activation: str = "sigmoid"


@dataclasses.dataclass(frozen=True)
class RecurrentConfig:
    """LstmModel and GruModel."""

    lstm_cells: int = 1024
    lstm_layers: int = 2


@dataclasses.dataclass(frozen=True)
class DCGNConfig:
    dcgn_levels: int = 5
    dcgn_filters: int = 1024
    dcgn_kernel: int = 3
    dcgn_pooling: str = "average"
    dcgn_shots: int = 0
    # C of eq. (8): cuts where it says the frames change, then even splits
    # up to dcgn_shots (kts.shot_boundaries); 0 is the exact fixed-m KTS.
    dcgn_kts_penalty: float = 1.0
    # How a level propagates (dcgn_layers.py, "Propagation forms"):
    # "layer_norm", eq. 7 on centred nodes then a layer normalisation per
    # node; "paper", eqs. 1 and 7 as printed; "residual", eq. 7 on centred
    # nodes plus each node's own message, no normalisation.
    dcgn_propagation: str = "layer_norm"

    PROPAGATIONS = ("layer_norm", "paper", "residual")

    def level_nodes(self, max_frames, shots=None):
        """Node count after each level: a level maps N nodes to ceil(N / K).

        With m shots the first level has m nodes (one a shot) and the others
        divide by K; without, every level divides the frames by K. Example:
        300 frames, K = 3, 5 levels: 100, 34, 12, 4, 2.
        """
        shots = self.dcgn_shots if shots is None else shots
        nodes = [shots] if shots else [-(-max_frames // self.dcgn_kernel)]
        while len(nodes) < self.dcgn_levels:
            nodes.append(-(-nodes[-1] // self.dcgn_kernel))
        return nodes

    def readout_filters(self, max_frames):
        """Filters of the last level: the video vector is at least as wide with shots
        as without (dcgn_layers.py, "Readout width")."""
        with_shots = self.level_nodes(max_frames)[-1]
        frames = self.level_nodes(max_frames, shots=0)[-1]
        return self.dcgn_filters * max(1, -(-frames // with_shots))

    def check(self, max_frames):
        """A UsageError naming the flags when this DCGN cannot be built well."""
        for flag, value, low in (
            ("--dcgn_levels", self.dcgn_levels, 1),
            ("--dcgn_filters", self.dcgn_filters, 1),
            ("--dcgn_kernel", self.dcgn_kernel, 2),
            ("--dcgn_shots", self.dcgn_shots, 0),
            ("--dcgn_kts_penalty", self.dcgn_kts_penalty, 0),
        ):
            if value < low:
                raise UsageError(f"{flag}={value}: give at least {low}.")
        if self.dcgn_propagation not in self.PROPAGATIONS:
            raise UsageError(
                f"--dcgn_propagation={self.dcgn_propagation}: use one of "
                f"{', '.join(self.PROPAGATIONS)}."
            )
        nodes = self.level_nodes(max_frames)
        # A level whose input graph is one node has no edge and no neighbour
        # to pool: it only repeats a dense layer on the same vector.
        if 1 in nodes[:-1]:
            useful = nodes.index(1) + 1
            what = (
                f"{self.dcgn_shots} shots"
                if self.dcgn_shots
                else f"{max_frames} frames"
            )
            more = self.dcgn_kernel ** (self.dcgn_levels - 1)
            raise UsageError(
                f"--dcgn_levels={self.dcgn_levels} with {what} (--dcgn_shots="
                f"{self.dcgn_shots}, --max_frames={max_frames}): the graph is one "
                f"node after level {useful} ({' -> '.join(map(str, nodes))}), so "
                f"later levels have nothing to pool. Use --dcgn_levels={useful}"
                + (f", or --dcgn_shots={more}." if self.dcgn_shots else ".")
            )


def from_flags(config_class, flag_values, **given):
    """config_class from the flags spelt like its fields (those not `given`)."""
    values = {
        field.name: flag_values[field.name].value
        for field in dataclasses.fields(config_class)
        if field.name not in given
    }
    return config_class(**values, **given)


BodyConfig = Union[DbofConfig, RecurrentConfig, DCGNConfig]


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    frame_level: bool
    body: Optional[type]  # the body config class, None for none


# Every model the programs can build. models.py checks that each name has its
# class; this table lets the TensorFlow-free side (compare.py) know them.
MODELS = {
    "LogisticModel": ModelFamily(frame_level=False, body=None),
    "MoeModel": ModelFamily(frame_level=False, body=None),
    "FrameLevelLogisticModel": ModelFamily(frame_level=True, body=None),
    "DbofModel": ModelFamily(frame_level=True, body=DbofConfig),
    "LstmModel": ModelFamily(frame_level=True, body=RecurrentConfig),
    "GruModel": ModelFamily(frame_level=True, body=RecurrentConfig),
    "DCGNModel": ModelFamily(frame_level=True, body=DCGNConfig),
}
HEADS = ("LogisticModel", "MoeModel")


def model_family(name, flag="--model"):
    if name not in MODELS:
        raise UsageError(
            f"{flag}={name!r} is not a model here; choose one of {sorted(MODELS)}."
        )
    return MODELS[name]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes a model and the reader that feeds it."""

    model: str
    frame_features: bool
    feature_names: tuple
    feature_sizes: tuple
    max_frames: int
    num_classes: int
    l2_normalize_input: bool = True
    head: HeadConfig = HeadConfig()
    body: Optional[BodyConfig] = None

    def __post_init__(self):
        family = model_family(self.model)
        if family.frame_level != self.frame_features:
            raise UsageError(
                f"--model={self.model} is a "
                f"{'frame' if family.frame_level else 'video'}-level model: "
                f"{'add' if family.frame_level else 'drop'} --frame_features."
            )
        if family.body is not None and not isinstance(self.body, family.body):
            raise ValueError(
                f"{self.model} needs a {family.body.__name__}, got {self.body!r}"
            )
        features(self.feature_names, self.feature_sizes)
        if self.head.video_level_classifier_model not in HEADS:
            raise UsageError(
                f"--video_level_classifier_model={self.head.video_level_classifier_model!r}:"
                f" choose one of {list(HEADS)}."
            )
        for name, value in (
            ("--num_classes", self.num_classes),
            ("--max_frames", self.max_frames),
        ):
            if value < 1:
                raise UsageError(f"{name}={value}: give a positive number.")
        if isinstance(self.body, DCGNConfig):
            self.body.check(self.max_frames)

    @property
    def feature_dim(self):
        return sum(self.feature_sizes)

    @property
    def dcgn_shots(self):
        """KTS shots the model reads as `shot_boundaries` (0: none; shots.py)."""
        return self.body.dcgn_shots if isinstance(self.body, DCGNConfig) else 0

    @property
    def dcgn_kts_penalty(self):
        """C of eq. (8) for those shots (kts.shot_boundaries)."""
        return self.body.dcgn_kts_penalty if self.dcgn_shots else 0.0

    def as_dict(self):
        return {
            **{
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name not in ("head", "body")
            },
            "feature_names": list(self.feature_names),
            "feature_sizes": list(self.feature_sizes),
            "head": dataclasses.asdict(self.head),
            "body": None if self.body is None else dataclasses.asdict(self.body),
        }

    @classmethod
    def from_dict(cls, values):
        family = model_family(values["model"])
        body = values.get("body")
        if family.body is DbofConfig and body is not None:
            # Written before the flag existed: those models used relu6.
            body = {"dbof_activation": "relu6", **body}
        if family.body is DCGNConfig and body is not None:
            # Written before the penalty existed: those models used fixed-m KTS.
            body = {"dcgn_kts_penalty": 0.0, **body}
        return cls(
            model=values["model"],
            frame_features=bool(values["frame_features"]),
            feature_names=tuple(values["feature_names"]),
            feature_sizes=tuple(int(s) for s in values["feature_sizes"]),
            max_frames=int(values["max_frames"]),
            num_classes=int(values["num_classes"]),
            l2_normalize_input=bool(values.get("l2_normalize_input", True)),
            head=HeadConfig(**values.get("head", {})),
            body=None if family.body is None else family.body(**(body or {})),
        )


@dataclasses.dataclass(frozen=True)
class OptimizationConfig:
    """What shapes a run's optimisation, saved with the run (model_config.json,
    "training"): a resumed run must keep it, or its steps would not continue
    the ones before (a new decay applies back to step 0, a new batch size
    changes the decay's steps). Fields are spelt like train.py's flags."""

    batch_size: int = 1024  # global: split over the replicas
    optimizer: str = "AdamOptimizer"  # a Keras name, or the starter's spelling
    base_learning_rate: float = 0.01
    # Staircase decay: times learning_rate_decay every that many examples.
    learning_rate_decay: float = 0.95
    learning_rate_decay_examples: float = 4000000.0
    label_loss: str = "CrossEntropyLoss"  # a class of losses.py
    regularization_penalty: float = 1.0
    clip_gradient_norm: float = 1.0  # 0: no clipping
    mixed_precision: str = ""  # "" (float32) or "mixed_bfloat16"


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """One train.py run: its optimisation and what may change between runs
    (data, length, checkpoint and export cadence). Fields are spelt like
    train.py's flags."""

    train_data_pattern: str
    optimization: OptimizationConfig = OptimizationConfig()
    num_epochs: int = 5
    max_steps: Optional[int] = None
    num_readers: int = 8
    jit_compile: bool = False
    save_checkpoint_steps: int = 1000
    save_checkpoint_secs: int = 600
    keep_checkpoint_max: int = 5
    log_steps: int = 10
    export_model: bool = True
    export_model_steps: int = 1000
    export_top_k: int = 20
    # Fine-tune on the rated segments of segment-rated records (segments.py).
    segment_labels: bool = False
    segment_size: int = SEGMENT_SIZE


def _settings(config):
    """{flag: value} of a ModelConfig or OptimizationConfig, nested ones flat."""
    if isinstance(config, ModelConfig):
        values = config.as_dict()
        nested = {**(values.pop("head") or {}), **(values.pop("body") or {})}
        return {**values, **nested}
    return dataclasses.asdict(config)


def changes(saved, wanted):
    """["--flag: X in the run so far, Y now", ...] for each setting that
    differs between two configs of one kind; another model is the one change
    named, since its settings differ with it."""
    saved, wanted = _settings(saved), _settings(wanted)
    names = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if "model" in names:
        names = ["model"]
    return [
        f"--{name}: {saved.get(name)!r} in the run so far, {wanted.get(name)!r} now"
        for name in names
    ]
