"""Strategy resolution: TF_CONFIG validation, Slurm, refusals, and the cross-worker helpers."""

import json

import pytest
import tensorflow as tf

from bigmodel_tf import cli_parser
from bigmodel_tf.errors import UserError
from bigmodel_tf.launch import tf_config
from bigmodel_tf.training.config import STRATEGIES
from bigmodel_tf.training.strategy import (
    cluster_resolver,
    from_chief,
    gather_rows,
    is_chief,
    resolve_strategy,
    task_name,
)
from tests.helpers import run_cli


def test_cli_strategies_match_the_config():
    assert cli_parser.STRATEGIES == STRATEGIES


@pytest.fixture
def env(monkeypatch):
    """A clean cluster environment: no TF_CONFIG, no Slurm job step."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("SLURM_STEP_NUM_TASKS", raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "raw, message",
    [
        ("{", "not JSON"),
        ('["worker"]', "no 'cluster' mapping"),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "unsupported role"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
        ('{"cluster": {"worker": ["a:1", "b"]}, "task": {}}', "address 'b' is not 'host:port'"),
        ('{"cluster": {"worker": ["a:99999"]}, "task": {}}', "is not 'host:port'"),
        ('{"cluster": {"worker": ["a:1"]}}', "'task' must name a role"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief"}}', "'task' must name"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker"}}', "must be an integer"),
        (
            '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
            "task.index 2 is out of range for 2 worker task",
        ),
    ],
)
def test_malformed_tf_config_is_named(env, raw, message):
    env.setenv("TF_CONFIG", raw)
    with pytest.raises(UserError, match="TF_CONFIG is malformed") as raised:
        cluster_resolver()
    assert message in str(raised.value)


def test_tf_config_of_a_launch_resolves(env):
    env.setenv("TF_CONFIG", tf_config([23456, 23457], 1))
    resolver = cluster_resolver()
    assert resolver.cluster_spec().as_dict() == {"worker": ["127.0.0.1:23456", "127.0.0.1:23457"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)


def test_a_cluster_member_refuses_to_train_alone(env):
    env.setenv("TF_CONFIG", tf_config([23456, 23457], 0))
    with pytest.raises(UserError, match=r"one of 2 cluster tasks .* use auto or multiworker"):
        resolve_strategy("default")


def test_slurm_job_step_is_a_cluster(env):
    # Task 3 of a 4-task step on two nodes with two tasks each.
    for name, value in {
        "SLURM_STEP_NUM_TASKS": "4",
        "SLURM_PROCID": "3",
        "SLURM_STEP_NODELIST": "node[07-08]",
        "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
        "BIGMODEL_TF_SLURM_PORT": "30000",
    }.items():
        env.setenv(name, value)
    resolver = cluster_resolver()
    assert resolver.cluster_spec().as_dict() == {
        "worker": ["node07:30000", "node07:30001", "node08:30000", "node08:30001"]
    }
    assert (resolver.task_type, resolver.task_id) == ("worker", 3)


def test_broken_slurm_environment_is_a_user_error(env):
    env.setenv("SLURM_STEP_NUM_TASKS", "2")
    env.delenv("SLURM_PROCID", raising=False)
    with pytest.raises(UserError, match="Slurm job step's layout: SLURM_PROCID not found"):
        cluster_resolver()


def test_multiworker_without_a_cluster_says_how_to_get_one(env):
    with pytest.raises(UserError, match="needs a cluster: set TF_CONFIG"):
        resolve_strategy("multiworker")


def test_single_process_is_its_own_chief(env):
    strategy = resolve_strategy("default")
    assert isinstance(strategy, type(tf.distribute.get_strategy()))
    assert is_chief(strategy) and task_name(strategy) == "main"
    assert gather_rows(strategy, [3.0, 4.0]).tolist() == [[3.0, 4.0]]
    assert from_chief(strategy, 2.5) == 2.5


def test_unknown_strategy_and_bad_cpu_replicas(env):
    with pytest.raises(UserError, match="unknown strategy 'ring'"):
        resolve_strategy("ring")
    env.setenv("BIGMODEL_TF_CPU_REPLICAS", "two")
    with pytest.raises(UserError, match="BIGMODEL_TF_CPU_REPLICAS='two': expected a positive"):
        resolve_strategy("mirrored")


def test_launch_tf_config_is_what_tensorflow_reads():
    parsed = json.loads(tf_config([1000, 1001, 1002], 2))
    assert parsed == {
        "cluster": {"worker": ["127.0.0.1:1000", "127.0.0.1:1001", "127.0.0.1:1002"]},
        "task": {"type": "worker", "index": 2},
    }


def test_tpu_strategy_without_a_tpu_is_a_one_line_error():
    result = run_cli("train", "cnn", "--strategy", "tpu", "--epochs", "1", timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bigmodel-tf train: error: no TPU found: ")
