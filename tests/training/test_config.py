import json

import pytest

from bigmodel_tf.errors import UserError
from bigmodel_tf.training import make_config
from bigmodel_tf.training.config import parse_assignments, read_config_file
from bigmodel_tf.training.runs import config_from_dict, default_run_dir


def test_defaults_presets_and_overrides_resolve_in_order():
    config = make_config(
        "cnn", preset="seed", overrides={"train.epochs": "5", "model.dropout": "0.5"}
    )
    assert config.train.epochs == 5
    assert config.train.optimizer == "adamw"  # the CNN's own default
    assert config.model.filters == (32, 64, 64)  # from the seed preset
    assert config.model.dropout == 0.5  # override beats preset
    assert config.dataset == "mnist5k"


def test_values_are_parsed_by_field_type():
    config = make_config(
        "cnn",
        overrides={"model.filters": "8, 16", "model.augment": "false", "dataset": "tfds:cifar10"},
    )
    assert config.model.filters == (8, 16)
    assert config.model.augment is False
    assert config.dataset == "tfds:cifar10"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"train.epoch": "3"},
            r"unknown config key 'train.epoch'; valid keys: dataset, model.filters",
        ),
        ({"epochs": "3"}, "unknown config key 'epochs'"),
        ({"train.epochs": "three"}, "expected a value of type int"),
        ({"train.epochs": "0"}, r"train.epochs=0: must be >= 1"),
        ({"model.dropout": "1.5"}, "must be <= 0.95"),
        ({"train.optimizer": "adagrad"}, "must be one of adam, adamw, sgd"),
        ({"model.augment": "maybe"}, "expected a value of type bool"),
        ({"train.epochs": True}, "expected a value of type int"),
        ({"model.filters": ""}, "model.filters: needs at least one value"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(UserError, match=message):
        make_config("cnn", overrides=overrides)


def test_unknown_family_and_preset():
    with pytest.raises(UserError, match="unknown model 'rnn'; choose one of: cnn"):
        make_config("rnn")
    with pytest.raises(UserError, match="unknown preset 'big'"):
        make_config("cnn", preset="big")


def test_assignments_must_be_key_value():
    assert parse_assignments(["a.b=1", "c = x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(UserError, match="expected key=value"):
        parse_assignments(["train.epochs"])


def test_config_files_json_and_yaml(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 4\nmodel:\n  filters: [8, 8]\n")
    (tmp_path / "c.json").write_text(json.dumps({"train": {"learning_rate": 0.01}}))
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    assert read_config_file(tmp_path / "c.yaml") == {"train.epochs": 4, "model.filters": [8, 8]}
    config = make_config("cnn", overrides=read_config_file(tmp_path / "c.yaml"))
    assert config.model.filters == (8, 8) and config.train.epochs == 4
    assert read_config_file(tmp_path / "c.json") == {"train.learning_rate": 0.01}
    with pytest.raises(UserError, match="not valid yaml"):
        read_config_file(tmp_path / "bad.yaml")
    with pytest.raises(UserError, match="does not exist"):
        read_config_file(tmp_path / "missing.json")


def test_config_round_trips_through_json_and_names_its_run_dir():
    config = make_config("cnn", overrides={"model.filters": "8,16"})
    again = config_from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert default_run_dir(again) == default_run_dir(config)
    other = make_config("cnn", overrides={"train.seed": 2})
    assert default_run_dir(other) != default_run_dir(config)
    assert str(default_run_dir(config)).startswith("runs/cnn/mnist5k-default-")
