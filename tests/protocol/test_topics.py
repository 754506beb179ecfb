"""Topic names: ids, builders, the parser and subscription filters."""

import pytest
from paho.mqtt.client import topic_matches_sub

from protocol import PROTOCOL_VERSION, BadTopic, ProtocolError
from protocol.ids import check_id, is_valid_id
from protocol.topics import (
    QOS,
    RETAINED,
    ROOT,
    Channel,
    TopicAddress,
    parse_topic,
    shared,
    subscription,
    topic,
)

GOOD_IDS = ["a", "0", "a-b", "a--b", "atelier-textile", "gw-01", "9lives", "a" * 64, "a" + "-" * 62 + "b"]
BAD_IDS = [
    "",  # empty
    "Atelier",  # upper case
    "ATELIER",
    "-gw",  # leading hyphen
    "gw-",  # trailing hyphen
    "-",
    "a" * 65,  # one too long
    "+",  # wildcards
    "#",
    "gw+1",
    "gw#",
    "a/b",  # a topic separator
    "/",
    "a b",
    "gw_1",
    "gw.1",
    "atelier-é",
    "$sys",
]
NON_MACHINE_CHANNELS = [c for c in Channel if c is not Channel.MACHINE_STATE]


def test_root_carries_the_protocol_version() -> None:
    assert ROOT.split("/") == ["atelier", f"v{PROTOCOL_VERSION}"]


@pytest.mark.parametrize("value", GOOD_IDS)
def test_valid_ids_are_accepted(value: str) -> None:
    assert is_valid_id(value)
    assert check_id(value) == value


@pytest.mark.parametrize("value", BAD_IDS)
def test_invalid_ids_are_refused_with_a_clear_error(value: str) -> None:
    assert not is_valid_id(value)
    with pytest.raises(BadTopic, match=r"invalid machine id .*a-z, 0-9 and '-', 1 to 64 characters"):
        check_id(value, "machine id")


def test_bad_topic_is_also_a_value_error_and_a_protocol_error() -> None:
    with pytest.raises(ValueError, match="invalid"):
        check_id("UPPER")
    assert issubclass(BadTopic, ProtocolError)


@pytest.mark.parametrize("channel", NON_MACHINE_CHANNELS)
def test_every_gateway_channel_builds_and_parses_back(channel: Channel) -> None:
    name = topic("atelier-lyon", "gw-1", channel)
    assert name == f"atelier/v1/atelier-lyon/gw-1/{channel.value}"
    assert parse_topic(name) == TopicAddress("atelier-lyon", "gw-1", channel)


def test_the_machine_state_topic_builds_and_parses_back() -> None:
    name = topic("atelier-lyon", "gw-1", Channel.MACHINE_STATE, "brother-s7200")
    assert name == "atelier/v1/atelier-lyon/gw-1/machine/brother-s7200"
    assert parse_topic(name) == TopicAddress("atelier-lyon", "gw-1", Channel.MACHINE_STATE, "brother-s7200")


def test_the_channel_suffixes_are_those_of_the_contract() -> None:
    assert {c.value for c in Channel} == {
        "status",
        "machine",
        "access/request",
        "access/reply",
        "events",
        "events/ack",
        "command",
        "telemetry",
        "certify/request",
        "certify/reply",
        "allowlist",
    }


def test_the_machine_state_topic_needs_a_machine() -> None:
    with pytest.raises(BadTopic, match="needs a machine id"):
        topic("site", "gw", Channel.MACHINE_STATE)


@pytest.mark.parametrize("channel", NON_MACHINE_CHANNELS)
def test_other_channels_refuse_a_machine(channel: Channel) -> None:
    with pytest.raises(BadTopic, match="takes no machine id"):
        topic("site", "gw", channel, "overlocker")


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("part", ["site", "gateway", "machine"])
def test_building_a_topic_refuses_bad_ids(part: str, bad: str) -> None:
    ids = {"site": "site", "gateway": "gw", "machine": "overlocker"} | {part: bad}
    with pytest.raises(BadTopic, match=f"invalid {part} id"):
        topic(ids["site"], ids["gateway"], Channel.MACHINE_STATE, ids["machine"])


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("part", ["site", "gateway", "machine"])
def test_parsing_a_topic_refuses_bad_ids(part: str, bad: str) -> None:
    ids = {"site": "site", "gateway": "gw", "machine": "overlocker"} | {part: bad}
    with pytest.raises(BadTopic):
        parse_topic(f"atelier/v1/{ids['site']}/{ids['gateway']}/machine/{ids['machine']}")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "atelier",
        "atelier/v1",
        "atelier/v1/site/gw",  # no channel
        "atelier/v2/site/gw/status",  # another version
        "atelier/v0/site/gw/status",
        "Atelier/v1/site/gw/status",
        "other/v1/site/gw/status",
        "/atelier/v1/site/gw/status",
        "atelier/v1/site/gw/status/",  # trailing level
        "atelier/v1/site/gw/status/extra",
        "atelier/v1/site/gw/state",  # unknown channel
        "atelier/v1/site/gw/access",  # half a channel
        "atelier/v1/site/gw/access/ack",
        "atelier/v1/site/gw/events/nack",
        "atelier/v1/site/gw/certify",  # half a channel
        "atelier/v1/site/gw/certify/ack",
        "atelier/v1/site/gw/machine",  # machine state without a machine
        "atelier/v1/site/gw/machine/m1/extra",
        "atelier/v1/site/gw/machine/",
        "atelier/v1/+/gw/status",  # filters are not topic names
        "atelier/v1/site/#",
        "atelier/v1/site/gw/machine/+",
        "$share/server/atelier/v1/site/gw/events",
    ],
)
def test_parse_refuses_what_is_not_a_topic_of_the_contract(name: str) -> None:
    with pytest.raises(BadTopic):
        parse_topic(name)


def test_parse_errors_say_what_is_wrong() -> None:
    with pytest.raises(BadTopic, match="not an atelier/v1 topic"):
        parse_topic("atelier/v2/site/gw/status")
    with pytest.raises(BadTopic, match="unknown channel 'state'"):
        parse_topic("atelier/v1/site/gw/state")


@pytest.mark.parametrize("channel", list(Channel))
def test_default_subscription_covers_every_site_and_gateway(channel: Channel) -> None:
    suffix = "machine/+" if channel is Channel.MACHINE_STATE else channel.value
    assert subscription(channel) == f"atelier/v1/+/+/{suffix}"


def test_subscription_for_one_site_and_one_gateway() -> None:
    assert subscription(Channel.COMMAND, "atelier-lyon", "gw-1") == "atelier/v1/atelier-lyon/gw-1/command"
    assert subscription(Channel.EVENTS, "atelier-lyon") == "atelier/v1/atelier-lyon/+/events"
    assert subscription(Channel.MACHINE_STATE, gateway="gw-1") == "atelier/v1/+/gw-1/machine/+"


@pytest.mark.parametrize("bad", ["#", "Site", "", "a/b", "-a", "a+"])
def test_subscription_refuses_bad_ids_and_multi_level_wildcards(bad: str) -> None:
    with pytest.raises(BadTopic):
        subscription(Channel.EVENTS, site=bad)
    with pytest.raises(BadTopic):
        subscription(Channel.EVENTS, gateway=bad)


@pytest.mark.parametrize("channel", list(Channel))
def test_a_subscription_matches_its_own_channel_and_no_other(channel: Channel) -> None:
    """Checked with paho's own MQTT filter matcher: ``events`` must not catch ``events/ack``."""
    filter_ = subscription(channel)
    for other in Channel:
        name = topic("site", "gw", other, "m1" if other is Channel.MACHINE_STATE else None)
        assert topic_matches_sub(filter_, name) is (other is channel), (filter_, name)


def test_a_gateway_subscription_does_not_match_another_gateway() -> None:
    mine = subscription(Channel.COMMAND, "site", "gw-1")
    assert topic_matches_sub(mine, topic("site", "gw-1", Channel.COMMAND))
    assert not topic_matches_sub(mine, topic("site", "gw-10", Channel.COMMAND))
    assert not topic_matches_sub(mine, topic("other", "gw-1", Channel.COMMAND))


def test_shared_wraps_a_filter_in_a_shared_subscription() -> None:
    assert shared("server", subscription(Channel.EVENTS)) == "$share/server/atelier/v1/+/+/events"
    assert (
        shared("workers-2", subscription(Channel.ACCESS_REQUEST, "lyon"))
        == "$share/workers-2/atelier/v1/lyon/+/access/request"
    )


@pytest.mark.parametrize("bad", ["", "Server", "a/b", "+", "#", "-x", "a" * 65])
def test_shared_refuses_a_bad_group_name(bad: str) -> None:
    with pytest.raises(BadTopic, match="invalid shared subscription group"):
        shared(bad, subscription(Channel.EVENTS))


def test_qos_is_defined_for_every_channel_and_only_telemetry_is_at_most_once() -> None:
    assert set(QOS) == set(Channel)
    assert {c for c, q in QOS.items() if q == 0} == {Channel.TELEMETRY}
    assert all(q == 1 for c, q in QOS.items() if c is not Channel.TELEMETRY)


def test_only_states_and_the_allowlist_are_retained() -> None:
    assert frozenset({Channel.STATUS, Channel.MACHINE_STATE, Channel.ALLOWLIST}) == RETAINED
    assert Channel.COMMAND not in RETAINED
