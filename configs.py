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

from cli import UsageError


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
        if len(self.feature_names) != len(self.feature_sizes):
            raise UsageError(
                f"--feature_names has {len(self.feature_names)} names "
                f"({','.join(self.feature_names)}) but --feature_sizes has "
                f"{len(self.feature_sizes)} sizes; give one size per name."
            )
        if not self.feature_names:
            raise UsageError("--feature_names is empty; give at least one feature.")
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
    def num_shots(self):
        """KTS shots the model reads as `shot_boundaries` (0: none)."""
        return self.body.dcgn_shots if isinstance(self.body, DCGNConfig) else 0

    @property
    def kts_penalty(self):
        """C of eq. (8) for those shots (kts.shot_boundaries)."""
        return self.body.dcgn_kts_penalty if self.num_shots else 0.0

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


def differences(saved, wanted):
    """Flag names whose values differ between two ModelConfigs."""

    def flat(config):
        values = config.as_dict()
        nested = {**(values.pop("head") or {}), **(values.pop("body") or {})}
        return {**values, **nested}

    saved, wanted = flat(saved), flat(wanted)
    return sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
