"""Broker URLs: mqtt:// and mqtts://, as every process is configured."""

# ruff: noqa: S106 - the passwords here are examples of URL syntax, not secrets

import pytest

from protocol import ProtocolError
from protocol.mqtt import BadBrokerURL, BrokerURL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://localhost", BrokerURL("localhost", 1883)),
        ("mqtts://broker.atelier.example", BrokerURL("broker.atelier.example", 8883, tls=True)),
        ("mqtt://127.0.0.1:18830", BrokerURL("127.0.0.1", 18830)),
        ("mqtts://broker:9883", BrokerURL("broker", 9883, tls=True)),
        ("mqtt://gw-1:s3cret@broker", BrokerURL("broker", 1883, username="gw-1", password="s3cret")),
        ("mqtt://gw-1@broker:1884", BrokerURL("broker", 1884, username="gw-1")),
        (
            "mqtts://atelier-server:p%40ss%3Aw%2Ford%25@broker",
            BrokerURL("broker", 8883, tls=True, username="atelier-server", password="p@ss:w/ord%"),
        ),
        ("mqtt://user%20name:x@broker", BrokerURL("broker", 1883, username="user name", password="x")),
        ("mqtt://[::1]:1883", BrokerURL("::1", 1883)),
        ("mqtt://Broker.Example", BrokerURL("broker.example", 1883)),
    ],
)
def test_parse(url: str, expected: BrokerURL) -> None:
    assert BrokerURL.parse(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("tcp://broker:1883", "must start with mqtt:// or mqtts://"),
        ("http://broker", "must start with mqtt:// or mqtts://"),
        ("ws://broker", "must start with mqtt:// or mqtts://"),
        ("broker:1883", "must start with mqtt:// or mqtts://"),
        ("", "must start with mqtt:// or mqtts://"),
        ("mqtt://", "has no host"),
        ("mqtt:///atelier", "has no host"),
        ("mqtt://user:pw@", "has no host"),
        ("mqtt://:1883", "has no host"),
        ("mqtt://broker:abc", "has a bad port"),
        ("mqtt://broker:65536", "has a bad port"),
        ("mqtt://broker:-1", "has a bad port"),
        ("mqtts://broker:88 83", "has a bad port"),
    ],
)
def test_parse_refuses_what_cannot_be_used(url: str, problem: str) -> None:
    with pytest.raises(BadBrokerURL, match=problem):
        BrokerURL.parse(url)


def test_bad_broker_url_is_a_value_error_and_a_protocol_error() -> None:
    with pytest.raises(ValueError, match="no host"):
        BrokerURL.parse("mqtt://")
    assert issubclass(BadBrokerURL, ProtocolError)


def test_str_shows_the_user_but_never_the_password() -> None:
    url = BrokerURL.parse("mqtts://gw-1:s3cret@broker")
    assert str(url) == "mqtts://gw-1@broker:8883"
    assert "s3cret" not in str(url)
    assert str(BrokerURL.parse("mqtt://broker")) == "mqtt://broker:1883"


def test_str_of_a_simple_url_parses_back_to_the_same_url() -> None:
    for text in ("mqtt://broker:1883", "mqtts://gw-1@broker.example:8883"):
        assert str(BrokerURL.parse(text)) == text
        assert BrokerURL.parse(str(BrokerURL.parse(text))) == BrokerURL.parse(text)
