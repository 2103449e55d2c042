"""The flags that shape a model, and the one place they become a ModelConfig.

Only train.py and compare.py define these flags. eval.py and inference.py
rebuild the model from train_dir/model_config.json, so they do not know
these flags and refuse them rather than ignore them.
"""

from absl import flags

import configs


def define_feature_flags(flag_values=flags.FLAGS):
    """--feature_names, --feature_sizes and --max_frames, as train.py reads
    them (also the flags of generate_data.py and precompute_shots.py)."""
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string(
        "feature_names",
        None,
        "Comma-separated feature names; default rgb,audio for frame-level "
        "models, else mean_rgb,mean_audio.",
        **fv,
    )
    flags.DEFINE_string(
        "feature_sizes",
        ",".join(map(str, configs.FEATURE_SIZES)),
        "Comma-separated sizes of --feature_names.",
        **fv,
    )
    flags.DEFINE_integer(
        "max_frames", configs.MAX_FRAMES, "Frames kept per video.", **fv
    )


def define(flag_values=flags.FLAGS):
    """Defines the model flags (the starter's names and defaults)."""
    fv = dict(flag_values=flag_values)
    # Defaults come from the config classes, so each is written once.
    head, dbof = configs.HeadConfig(), configs.DbofConfig()
    recurrent, dcgn = configs.RecurrentConfig(), configs.DCGNConfig()
    flags.DEFINE_string(
        "model", "LogisticModel", f"The model class: {', '.join(configs.MODELS)}.", **fv
    )
    flags.DEFINE_bool(
        "frame_features",
        None,
        "Read frame-level records (SequenceExample) rather than video-level "
        "ones (Example). Default: what --model needs.",
        **fv,
    )
    define_feature_flags(flag_values)
    flags.DEFINE_integer(
        "num_classes",
        configs.NUM_CLASSES,
        "Size of the label vocabulary (4716 for 2017 data).",
        **fv,
    )
    flags.DEFINE_bool(
        "l2_normalize_input",
        True,
        "L2-normalise each frame over its concatenated features before the "
        "model, as the starter did.",
        **fv,
    )
    flags.DEFINE_string(
        "video_level_classifier_model",
        head.video_level_classifier_model,
        "The head that ends every frame-level model: LogisticModel or MoeModel.",
        **fv,
    )
    flags.DEFINE_integer(
        "moe_num_mixtures",
        head.moe_num_mixtures,
        "Experts per class in MoeModel (paper Table 1: 2).",
        **fv,
    )
    flags.DEFINE_integer(
        "iterations", dbof.iterations, "Frames DbofModel samples from each video.", **fv
    )
    flags.DEFINE_bool(
        "dbof_add_batch_norm",
        dbof.dbof_add_batch_norm,
        "Batch-normalise DbofModel's input and hidden layers.",
        **fv,
    )
    flags.DEFINE_bool(
        "sample_random_frames",
        dbof.sample_random_frames,
        "DbofModel's training samples: --iterations frames at random, or "
        "(false) a random run of --iterations consecutive frames. Evaluation "
        "takes evenly spaced frames (or the middle run), so that it is "
        "repeatable.",
        **fv,
    )
    flags.DEFINE_integer(
        "dbof_cluster_size", dbof.dbof_cluster_size, "DbofModel's cluster size.", **fv
    )
    flags.DEFINE_integer(
        "dbof_hidden_size", dbof.dbof_hidden_size, "DbofModel's hidden size.", **fv
    )
    flags.DEFINE_enum(
        "dbof_pooling_method",
        dbof.dbof_pooling_method,
        ["max", "average"],
        "How DbofModel pools frames.",
        **fv,
    )
    flags.DEFINE_enum(
        "dbof_activation",
        dbof.dbof_activation,
        ["sigmoid", "relu6"],
        "DbofModel's activation after its cluster and hidden layers.",
        **fv,
    )
    flags.DEFINE_integer(
        "lstm_cells",
        recurrent.lstm_cells,
        "Units per layer of LstmModel and GruModel.",
        **fv,
    )
    flags.DEFINE_integer(
        "lstm_layers",
        recurrent.lstm_layers,
        "Stacked layers of LstmModel and GruModel.",
        **fv,
    )
    flags.DEFINE_integer(
        "dcgn_levels", dcgn.dcgn_levels, "DCGN levels (paper Table 1: 5).", **fv
    )
    flags.DEFINE_integer(
        "dcgn_filters",
        dcgn.dcgn_filters,
        "Filters of every DCGN level (paper Table 1: 1024).",
        **fv,
    )
    flags.DEFINE_integer(
        "dcgn_kernel",
        dcgn.dcgn_kernel,
        "Nodes each DCGN level pools and convolves into one.",
        **fv,
    )
    flags.DEFINE_enum(
        "dcgn_pooling",
        dcgn.dcgn_pooling,
        ["average", "attention"],
        "DCGN graph pooling: average (eq. 4) or attention (eq. 5).",
        **fv,
    )
    flags.DEFINE_integer(
        "dcgn_shots",
        dcgn.dcgn_shots,
        "KTS shots that form DCGN's first level (eqs. 10-11) in a video of "
        "--max_frames frames; a shorter one gets proportionally fewer, so a "
        "shot spans about max_frames/dcgn_shots frames (max_frames/dcgn_kernel "
        "keeps the frames' resolution). 0: the first level pools frames.",
        **fv,
    )
    flags.DEFINE_float(
        "dcgn_kts_penalty",
        dcgn.dcgn_kts_penalty,
        "C of KTS eq. (8) for --dcgn_shots: cuts go where that objective "
        "places them, then the longest shots are halved up to --dcgn_shots; "
        "0: the exact fixed-m KTS (kts.py).",
        **fv,
    )
    flags.DEFINE_enum(
        "dcgn_propagation",
        dcgn.dcgn_propagation,
        list(configs.DCGNConfig.PROPAGATIONS),
        "DCGN propagation: layer_norm, eq. 7 on centred nodes then a layer "
        "normalisation per node; paper, eqs. 1 and 7 as printed; residual, "
        "eq. 7 on centred nodes plus each node's own message, for order and "
        "position at Adam 0.001 (docs/dcgn_learning.md).",
        **fv,
    )


def body_config(name, fv):
    """The body config of model `name` from the flags, or None.

    A body config's fields are spelt like the flags that set them.
    """
    body = configs.model_family(name).body
    return None if body is None else configs.from_flags(body, fv)


def model_config(fv=flags.FLAGS):
    """The ModelConfig the model flags describe (a clear error if they clash)."""
    family = configs.model_family(fv.model)
    frame_features = (
        family.frame_level if fv.frame_features is None else fv.frame_features
    )
    feature_names, feature_sizes = configs.features(
        fv.feature_names
        or (
            configs.FRAME_FEATURE_NAMES
            if frame_features
            else configs.VIDEO_FEATURE_NAMES
        ),
        fv.feature_sizes,
    )
    return configs.ModelConfig(
        model=fv.model,
        frame_features=frame_features,
        feature_names=feature_names,
        feature_sizes=feature_sizes,
        max_frames=fv.max_frames,
        num_classes=fv.num_classes,
        l2_normalize_input=fv.l2_normalize_input,
        head=configs.HeadConfig(
            video_level_classifier_model=fv.video_level_classifier_model,
            moe_num_mixtures=fv.moe_num_mixtures,
        ),
        body=body_config(fv.model, fv),
    )
