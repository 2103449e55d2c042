"""Typed model configs: built from the flags, saved and read back, compared."""

import dataclasses

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

import cli
import common
import configs
import model_flags


def flag_values(*args):
    values = flags.FlagValues()
    model_flags.define(values)
    values(["train.py", *args])
    return values


def test_every_dcgn_flag_reaches_its_config_field():
    config = model_flags.model_config(
        flag_values(
            "--model=DCGNModel",
            "--dcgn_levels=4",
            "--dcgn_filters=64",
            "--dcgn_kernel=2",
            "--dcgn_pooling=attention",
            "--dcgn_shots=27",
            "--dcgn_kts_penalty=0.25",
            "--dcgn_propagation=layer_norm",
            "--moe_num_mixtures=3",
        )
    )
    assert config.body == configs.DCGNConfig(
        dcgn_levels=4,
        dcgn_filters=64,
        dcgn_kernel=2,
        dcgn_pooling="attention",
        dcgn_shots=27,
        dcgn_kts_penalty=0.25,
        dcgn_propagation="layer_norm",
    )
    assert config.head.moe_num_mixtures == 3
    assert config.dcgn_shots == 27
    assert config.dcgn_kts_penalty == 0.25


def test_a_config_saved_before_the_kts_penalty_keeps_fixed_m_shots():
    config = model_flags.model_config(
        flag_values("--model=DCGNModel", "--dcgn_levels=3", "--dcgn_shots=9")
    )
    assert config.dcgn_kts_penalty == configs.DCGNConfig.dcgn_kts_penalty > 0
    assert configs.ModelConfig.from_dict(config.as_dict()) == config
    older = config.as_dict()
    del older["body"]["dcgn_kts_penalty"]
    assert configs.ModelConfig.from_dict(older).dcgn_kts_penalty == 0.0


def test_an_unknown_propagation_is_refused_by_name():
    with pytest.raises(cli.UsageError, match="--dcgn_propagation=mean"):
        configs.DCGNConfig(dcgn_propagation="mean").check(300)


def test_frame_features_follow_the_model_unless_given():
    assert model_flags.model_config(flag_values("--model=LstmModel")).frame_features
    video = model_flags.model_config(flag_values("--model=MoeModel"))
    assert not video.frame_features
    assert video.feature_names == ("mean_rgb", "mean_audio")
    with pytest.raises(cli.UsageError, match="frame-level model: add --frame_features"):
        model_flags.model_config(flag_values("--model=LstmModel", "--noframe_features"))
    with pytest.raises(
        cli.UsageError, match="video-level model: drop --frame_features"
    ):
        model_flags.model_config(flag_values("--model=MoeModel", "--frame_features"))


def test_a_bad_flag_value_is_refused_by_name():
    with pytest.raises(flags.IllegalFlagValueError, match="dcgn_pooling"):
        flag_values("--dcgn_pooling=max")
    with pytest.raises(cli.UsageError, match="--feature_sizes has 1 sizes"):
        model_flags.model_config(flag_values("--model=DbofModel", "--feature_sizes=8"))


@pytest.mark.parametrize("model", sorted(configs.MODELS))
def test_json_round_trip(model):
    config = model_flags.model_config(flag_values(f"--model={model}", "--lstm_cells=7"))
    again = configs.ModelConfig.from_dict(config.as_dict())
    assert again == config
    assert configs.changes(config, again) == []


def test_changes_name_the_flags_with_both_values():
    saved = model_flags.model_config(flag_values("--model=DCGNModel"))
    wanted = model_flags.model_config(
        flag_values("--model=DCGNModel", "--dcgn_shots=81", "--num_classes=40")
    )
    assert configs.changes(saved, wanted) == [
        "--dcgn_shots: 0 in the run so far, 81 now",
        "--num_classes: 3862 in the run so far, 40 now",
    ]


def test_another_model_is_the_one_change_named():
    saved = model_flags.model_config(flag_values("--model=DCGNModel"))
    wanted = model_flags.model_config(flag_values("--model=FrameLevelLogisticModel"))
    assert configs.changes(saved, wanted) == [
        "--model: 'DCGNModel' in the run so far, 'FrameLevelLogisticModel' now"
    ]


def test_every_dcgn_configuration_the_flags_accept_is_built_or_refused_clearly():
    # The grid of issue-level settings at tiny width: node counts, and so
    # refusals, do not depend on the filters.
    import re

    import model_testing

    built = refused = 0
    for levels in (2, 3, 4, 5):
        for shots in (0, 8, 16, 27, 32, 64, 81):
            for pooling in ("average", "attention"):
                body = configs.DCGNConfig(
                    dcgn_levels=levels,
                    dcgn_filters=4,
                    dcgn_pooling=pooling,
                    dcgn_shots=shots,
                )
                try:
                    config = model_testing.tiny_config(
                        "DCGNModel", body, max_frames=300
                    )
                except cli.UsageError as error:
                    refused += 1
                    message = str(error)
                    assert f"--dcgn_levels={levels}" in message
                    assert f"--dcgn_shots={shots}" in message
                    # The suggested levels build.
                    useful = int(re.search(r"Use --dcgn_levels=(\d+)", message)[1])
                    model_testing.tiny_config(
                        "DCGNModel", with_levels(body, useful), max_frames=300
                    )
                    continue
                built += 1
                frame_width = body.level_nodes(300, shots=0)[-1] * body.dcgn_filters
                nodes = body.level_nodes(300)
                assert nodes[-1] * body.readout_filters(300) >= frame_width
                if levels == 2 and pooling == "average":
                    assert_every_propagation_predicts(config, shots)
    assert built and refused


def assert_every_propagation_predicts(config, shots):
    import model_testing

    batch = model_testing.make_batch(True, max_frames=300)
    if shots:
        batch["shot_boundaries"] = tf.constant([[0] + [1] * shots] * 4, tf.int32)
    for propagation in configs.DCGNConfig.PROPAGATIONS:
        body = dataclasses.replace(config.body, dcgn_propagation=propagation)
        model = common.build_model(dataclasses.replace(config, body=body))
        predictions = model(batch)["predictions"]
        assert predictions.shape == (4, model.num_classes)
        assert np.all(np.isfinite(predictions.numpy()))


def with_levels(body, levels):
    return dataclasses.replace(body, dcgn_levels=levels)
