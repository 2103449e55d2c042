"""Typed model configs: built from the flags, saved and read back, compared."""

from absl import flags
import pytest

import cli
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
            "--moe_num_mixtures=3",
        )
    )
    assert config.body == configs.DCGNConfig(
        dcgn_levels=4,
        dcgn_filters=64,
        dcgn_kernel=2,
        dcgn_pooling="attention",
        dcgn_shots=27,
    )
    assert config.head.moe_num_mixtures == 3
    assert config.num_shots == 27


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
    assert configs.differences(config, again) == []


def test_differences_name_the_flags():
    saved = model_flags.model_config(flag_values("--model=DCGNModel"))
    wanted = model_flags.model_config(
        flag_values("--model=DCGNModel", "--dcgn_shots=16", "--num_classes=40")
    )
    assert configs.differences(saved, wanted) == ["dcgn_shots", "num_classes"]
