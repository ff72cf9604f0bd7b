"""Configuration: defaults, precedence, Pyro's variables, validation."""

from __future__ import annotations

import pytest

from es.config import ConfigError, Limits, Policy, QueuePolicy, ServerConfig, from_env
from es.daemon.storage import storage_path
from naming.config import NsConfig, NsConfigError


def test_defaults_are_pyros() -> None:
    config = from_env({})
    assert (config.host, config.port, config.policy, config.queue_size) == (
        "127.0.0.1",
        7766,
        "block",
        1000,
    )


def test_pyro_variables_are_understood() -> None:
    config = from_env({"PYRO_ES_QUEUESIZE": "50", "PYRO_ES_BLOCKQUEUE": "0"})
    assert (config.queue_size, config.policy) == (50, "drop")
    assert from_env({"PYRO_ES_BLOCKQUEUE": "1"}).policy == "block"


def test_explicit_values_beat_pyro_variables() -> None:
    config = from_env({"PYRO_ES_QUEUESIZE": "50"}, queue_size=70, port=None)
    assert (config.queue_size, config.port) == (70, 7766)


@pytest.mark.parametrize(
    ("env", "explicit"),
    [
        ({"PYRO_ES_QUEUESIZE": "many"}, {}),
        ({"PYRO_ES_BLOCKQUEUE": "yes"}, {}),
        ({}, {"policy": "sometimes"}),
        ({}, {"port": 70000}),
        ({}, {"queue_size": -1}),
        ({}, {"queue_size": 0}),  # unbounded needs max_queue_size 0
        ({}, {"max_stall": float("nan")}),
        ({}, {"max_stall": 120.0}),
        ({}, {"max_items_per_publish": 255}),  # below what a client may gather unasked
        ({}, {"max_publish_bytes": 1000}),
        ({}, {"colour": "blue"}),
        ({}, {"cluster": " , "}),  # no server
        ({}, {"cluster": "http://127.0.0.1:4222"}),
        ({}, {"node_name": "a.b"}),  # one NATS token: no dots
        ({}, {"node_name": "x" * 65}),
        ({}, {"cluster": "nats://h:1", "max_message_bytes": (64 << 20) + 1}),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], explicit: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        from_env(env, **explicit)


def test_a_cluster_node_has_servers_and_a_name() -> None:
    config = from_env({}, cluster="nats://127.0.0.1:4222, nats://127.0.0.1:4223", port=7000)
    assert config.cluster_servers == ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
    assert config.node.endswith("-7000")  # the host's name and the port, unless named
    assert from_env({}, cluster="nats://h:1", node_name="a_1").node == "a_1"
    assert from_env({}).cluster_servers == []


def test_unbounded_queues_are_an_explicit_choice() -> None:
    config = from_env({}, queue_size=0, max_queue_size=0)
    assert config.queue_size == 0 and config.limits.max_queue_size == 0


def test_config_is_frozen_and_hides_the_passphrase() -> None:
    config = ServerConfig(ident="secret", limits=Limits())
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]
    assert config.as_dict()["ident"] == "(set)"


@pytest.mark.parametrize("spec", ["sqlite:", "redis://x", "Memory", ""])
def test_both_daemons_refuse_a_storage_that_is_not_memory_or_sqlite_path(spec: str) -> None:
    with pytest.raises(ConfigError, match="'memory' or 'sqlite:PATH'"):
        from_env({}, storage=spec)
    with pytest.raises(NsConfigError, match="'memory' or 'sqlite:PATH'"):
        NsConfig(storage=spec)


def test_a_storage_spec_names_a_path_or_memory() -> None:
    assert storage_path("memory") is None
    assert storage_path("sqlite:/tmp/es.db") == "/tmp/es.db"


def test_the_queue_policy_is_one_typed_value() -> None:
    config = ServerConfig(policy="drop", queue_size=50, max_stall=2.0)  # text, as from the CLI
    assert config.policy is Policy.DROP
    assert config.queue_policy == QueuePolicy(Policy.DROP, 50, 2.0)
    assert not config.queue_policy.blocks and ServerConfig().queue_policy.blocks
