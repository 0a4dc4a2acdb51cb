"""`train.precision` and `train.jit_compile`: what `auto` chooses, and a mixed_bfloat16 run
that trains, records its choice and evaluates and exports in float32."""

from __future__ import annotations

import keras
import pytest

from bigmodel_tf import machine, registry, training
from bigmodel_tf.errors import UserError
from bigmodel_tf.io import read_json
from bigmodel_tf.training import precision
from bigmodel_tf.training.runs import config_from_dict, default_run_dir
from tests.helpers import TINY_CNN


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretends the CPU has `flags` (the suite otherwise sets BIGMODEL_TF_NATIVE_BF16=0)."""

    def pretend(*flags: str) -> None:
        monkeypatch.delenv("BIGMODEL_TF_NATIVE_BF16", raising=False)
        monkeypatch.setattr(precision, "cpu", lambda: ("Test CPU", frozenset(flags)))

    return pretend


def resolve(jit_pays=None, mixed_pays=True, precision_="auto", jit_compile="auto", **kw):
    return precision.resolve(
        precision_, jit_compile, family="cnn", mixed_pays=mixed_pays, jit_pays=jit_pays or {}, **kw
    )


def test_auto_takes_bf16_only_where_the_cpu_computes_it_and_it_pays(cpu_with):
    cpu_with("avx2", "avx512f")
    assert resolve().precision == "float32"
    assert "no native bf16" in resolve().why
    cpu_with("avx512f", "avx512_bf16", "amx_bf16")
    chosen = resolve()
    assert chosen.precision == "mixed_bfloat16"
    assert chosen.why.startswith("mixed_bfloat16: AMX-BF16, AVX512-BF16 here")
    slower = resolve(mixed_pays=False)
    assert slower.precision == "float32" and "does not speed up cnn" in slower.why
    assert resolve(precision_="float32").precision == "float32"


def test_auto_xla_follows_the_measurement_of_the_precision_chosen(cpu_with):
    cpu_with("amx_bf16")
    pays = {"float32": True}
    assert resolve(pays).jit_compile is False  # bf16 chosen: XLA measured no faster there
    assert resolve(pays, mixed_pays=False).jit_compile is True
    assert resolve(pays, jit_compile="false", mixed_pays=False).jit_compile is False
    assert resolve(jit_compile="true").jit_compile is True
    distilling = resolve(pays, mixed_pays=False, distilling=True)
    assert distilling.jit_compile is False and "distilling" in distilling.why


def test_the_environment_can_deny_native_bf16(monkeypatch):
    monkeypatch.setenv("BIGMODEL_TF_NATIVE_BF16", "0")
    monkeypatch.setattr(precision, "cpu", lambda: ("Test CPU", frozenset({"amx_bf16"})))
    assert precision.native_bf16() == ""
    assert machine.RELEVANT_FLAGS  # the bench records these with every figure


def test_dtype_policy_is_restored_after_the_block():
    before = keras.config.dtype_policy().name
    with precision.dtype_policy("mixed_bfloat16"):
        assert keras.layers.Dense(2).compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == before


def test_auto_keeps_the_run_directory_and_old_configs_still_load():
    config = training.make_config("cnn")
    assert (config.train.precision, config.train.jit_compile) == ("auto", "auto")
    old = config.to_dict()
    del old["train"]["precision"]
    old["train"]["jit_compile"] = False
    restored = config_from_dict(old)
    # Runs from before the setting trained in float32 without XLA, and say so.
    assert (restored.train.precision, restored.train.jit_compile) == ("float32", "false")
    assert default_run_dir(restored) != default_run_dir(config)
    explicit = training.make_config("cnn", overrides={"train.precision": "float32"})
    assert default_run_dir(explicit) != default_run_dir(config)
    with pytest.raises(UserError, match="must be one of auto, float32, mixed_bfloat16"):
        training.make_config("cnn", overrides={"train.precision": "float16"})


def test_a_mixed_bfloat16_run_learns_and_is_evaluated_in_float32(tmp_path):
    config = training.make_config(
        "cnn",
        overrides={
            **TINY_CNN,
            "train.epochs": 1,
            "train.max_steps_per_epoch": 20,
            "train.precision": "mixed_bfloat16",
        },
    )
    result = training.train(config, tmp_path / "run", verbose=0)
    run_dir = tmp_path / "run"
    settings = read_json(run_dir / "settings.json")
    assert settings["precision"] == "mixed_bfloat16" and settings["why"].startswith("mixed")
    assert precision.is_mixed(run_dir / "checkpoints" / "best.keras")
    *_, model = training.load_trained(run_dir)
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    # 20 steps of 128 MNIST images: well above chance (0.1) unless bf16 broke the training.
    assert result["test"]["accuracy"] > 0.6


def test_a_run_says_when_keras_leaves_xla_off(tmp_path):
    # The CNN's augmentation resamples with an op XLA has no kernel for.
    overrides = {**TINY_CNN, "model.augment": True, "train.epochs": 1}
    overrides.update({"train.max_steps_per_epoch": 2, "train.jit_compile": "true"})
    with pytest.warns(UserWarning, match="jit_compile=False"):
        training.train(training.make_config("cnn", overrides=overrides), tmp_path, verbose=0)
    settings = read_json(tmp_path / "settings.json")
    assert settings["jit_compile"] is False
    assert settings["why"].endswith("XLA off: XLA cannot compile augment"), settings["why"]


def test_a_pretrained_encoder_is_decided_on_its_own_measurement(cpu_with):
    cpu_with("amx_bf16")
    task = registry.task_for("transformer")
    default = precision.settings_for(training.make_config("transformer"), task)
    minilm = training.make_config("transformer", preset="minilm")
    pretrained = precision.settings_for(minilm, task)
    assert (default.precision, default.jit_compile) == ("float32", True)
    assert (pretrained.precision, pretrained.jit_compile) == ("mixed_bfloat16", False)
    assert "pretrained transformer" in pretrained.why
