"""kill -9 of the broker mid-session and mid-replay, and a restart on the same port.

The gateway and the server both use clean MQTT sessions: nothing they need waits in
the broker, so billing relies on no broker persistence. What a kill -9 takes (events
in flight, the broker's queues) comes back from the gateway's journal, replayed when
it reconnects. With persistence on, Mosquitto keeps the retained messages (the gateway's
status) across the kill; without, it starts empty: both are checked, since the server's
view of a gateway comes from the retained status.

Who comes back first matters. If the server has subscribed again before the gateway
replays, the replay reaches it. If the gateway replays first, the broker drops the
replayed events (nobody subscribes yet) and only the contract's ack timeout (or a
``refresh`` from the server) brings them back: ``gateway_first`` checks that.
"""

from __future__ import annotations

import time

import pytest

from protocol.messages import GatewayState, GatewayStatus, decode
from protocol.topics import Channel, topic
from tests.faults.conftest import Stack
from tests.faults.harness import (
    AMINA,
    LUCAS,
    SITE,
    WORKING_A,
    AckSpy,
    assert_billed_exactly_once,
    assert_relays_safe,
    relay_changes,
    retained,
    wait_until,
)

CONVERGE_S = 15


@pytest.mark.parametrize(
    ("persistence", "order"),
    [(False, "server_first"), (True, "server_first"), (False, "gateway_first")],
    ids=["no-persistence", "persistence", "gateway-reconnects-first"],
)
def test_broker_killed_mid_session_and_restarted(
    killable_stack: Stack, persistence: bool, order: str
) -> None:
    stack = killable_stack
    stack.broker.reconfigure(persistence=persistence)
    proxy = stack.proxy()
    gateway = stack.gateway(1, through=proxy)
    gateway.wait_connected()
    machine = gateway.machines[0]
    granted_at = time.time()
    gateway.grant(machine, AMINA)
    gateway.amps(machine, WORKING_A)
    gateway.wait_machine(machine, state="running")
    time.sleep(0.3)

    if order == "server_first":
        proxy.cut("refuse")  # the gateway comes back only once the server has
    else:
        assert stack.server_proxy is not None
        stack.server_proxy.cut("blackhole")  # the server comes back only once the gateway has replayed
    stack.broker.kill()  # the machine is sewing
    wait_until("the gateway to see the broker gone", lambda: not gateway.state()["connected"], 10)
    gateway.amps(machine, 0.0)  # running_stopped, journaled with no broker
    gateway.wait_machine(machine, state="unlocked", relay=True)
    stack.broker.restart()

    if order == "server_first":
        # Held off by the proxy, the gateway has not said anything to the new broker yet.
        status = retained(stack.broker.url, topic(SITE, gateway.id, Channel.STATUS))
        if persistence:
            assert [decode(GatewayStatus, p).state for p in status] == [GatewayState.ONLINE], (
                "a persistent broker keeps the retained status across a kill -9"
            )
        else:
            assert status == [], "a broker without persistence starts empty"
        stack.server.wait_ready()
        proxy.restore()
        gateway.wait_connected()
    else:
        gateway.wait_connected()
        time.sleep(0.5)  # the replay is published, and dropped: nobody subscribes yet
        assert stack.server_proxy is not None
        stack.server_proxy.restore()
        stack.server.wait_ready()

    gateway.run_for(machine, 0.3)
    gateway.badge_out(machine, AMINA)
    assert relay_changes(gateway, machine, since=granted_at) == ["on", "off"], (
        "the relay stayed on through the broker's death, and went off at badge-out"
    )
    assert_billed_exactly_once(gateway, stack.database_url, timeout=CONVERGE_S, sessions=1)
    assert_relays_safe(gateway)


def test_broker_killed_mid_replay_and_restarted(killable_stack: Stack) -> None:
    """A backlog is being replayed when the broker dies: the replay starts over on the new broker."""
    stack = killable_stack
    proxy = stack.proxy()
    gateway = stack.gateway(2, through=proxy, running_after_s=0.04, idle_after_s=0.06)
    gateway.wait_connected()
    backlog = gateway.journal_offline(proxy, (AMINA, LUCAS))  # granted, cut off, running, badged out

    broker = stack.broker

    def kill_broker_and_hold_the_gateway() -> None:
        broker.kill()
        proxy.cut("refuse")

    spy = AckSpy(broker.url, gateway.id, on_first=kill_broker_and_hold_the_gateway)
    try:
        proxy.restore()  # the gateway replays; the broker dies at the first ack
        assert spy.wait(1, 15), "the server acknowledged the first replayed event"
    finally:
        spy.close()
    wait_until("the broker to be dead", lambda: not broker.running, 10)
    remaining = gateway.state()["backlog"]
    # Mid-replay: the broker died at the server's first ack, so at most the events acknowledged
    # by then left the journal (on a loaded machine, none may have reached the gateway yet).
    assert backlog > 0
    assert remaining <= backlog, f"killed mid-replay: {backlog - remaining} of {backlog} events acknowledged"

    broker.restart()
    stack.server.wait_ready()  # the server first: see gateway_first above for the other order
    proxy.restore()
    assert_billed_exactly_once(gateway, stack.database_url, timeout=CONVERGE_S, sessions=2)
    assert_relays_safe(gateway)
