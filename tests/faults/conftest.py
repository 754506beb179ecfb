"""Fixtures of the fault tests: a broker, a server and gateways as processes of their own.

A server takes seconds to start, so stacks are shared where they can be: the tests that
kill neither the server nor the broker share one for the package (:func:`shared_stack`),
those that kill them one per module (:func:`killable_stack`: each test finds it running
again), each test with gateways and proxies of its own; a test that needs another
database makes its own (:func:`stack_factory`). Nothing here skips: a service that
cannot start fails.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import Broker, GatewayProcess, MachinePlan, ServerProcess, seed
from tests.faults.proxy import TcpProxy

_numbers = itertools.count(1)


@dataclass
class Stack:
    """A broker, a server on ``database_url``, and whatever gateways and proxies a test adds."""

    broker: Broker
    server: ServerProcess
    database_url: str
    workdir: Path
    gateways: list[GatewayProcess] = field(default_factory=list)
    proxies: list[TcpProxy] = field(default_factory=list)
    server_proxy: TcpProxy | None = None
    """When the server reaches the broker through a proxy of its own (``make_stack(server_proxy=True)``)."""

    def gateway(
        self,
        machines: int = 1,
        *,
        through: TcpProxy | None = None,
        idle_timeout_s: float = 60.0,
        start: bool = True,
        **config: Any,
    ) -> GatewayProcess:
        """A new gateway with ``machines`` machines, registered on the server, connected
        to the broker (or through ``through``) and started."""
        number = next(_numbers)
        gateway_id = f"gw-{number}"
        plans = [MachinePlan(f"m{number}-{i}", idle_timeout_s) for i in range(1, machines + 1)]
        seed(self.database_url, {gateway_id: [plan.id for plan in plans]}, upgrade=False)
        url = through.url if through is not None else self.broker.url
        gateway = GatewayProcess(gateway_id, url, self.workdir / gateway_id, plans, **config)
        self.gateways.append(gateway)
        if start:
            gateway.start()
            self.server.wait_ready()  # it started with the stack: the two start side by side
        return gateway

    def proxy(self, **options: Any) -> TcpProxy:
        """A proxy to the broker, for gateways to connect through."""
        proxy = TcpProxy(self.broker.port, **options)
        self.proxies.append(proxy)
        return proxy

    def close_test_parts(self) -> None:
        for gateway in self.gateways:
            gateway.close()
        for proxy in self.proxies:
            proxy.close()
        self.gateways.clear()
        self.proxies.clear()

    def close(self) -> None:
        self.close_test_parts()
        self.server.stop()
        if self.server_proxy is not None:
            self.server_proxy.close()
        self.broker.stop()


def make_stack(
    workdir: Path, database_url: str, *, persistence: bool = False, server_proxy: bool = False
) -> Stack:
    broker = Broker(persistence=persistence)
    proxy = TcpProxy(broker.port) if server_proxy else None
    try:
        seed(database_url, {})
        server = ServerProcess(database_url, proxy.url if proxy else broker.url, workdir / "server")
        server.start()  # Stack.gateway() waits for it to be ready
    except BaseException:
        if proxy is not None:
            proxy.close()
        broker.stop()
        raise
    return Stack(broker, server, database_url, workdir, server_proxy=proxy)


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Makes a stack of the test's own (a broker and a server it may kill)."""
    made: list[Stack] = []

    def make(
        database_url: str | None = None, *, persistence: bool = False, server_proxy: bool = False
    ) -> Stack:
        url = database_url or f"sqlite:///{tmp_path / 'atelier.db'}"
        stack = make_stack(
            tmp_path / f"stack-{len(made)}", url, persistence=persistence, server_proxy=server_proxy
        )
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.close()


@pytest.fixture(scope="package")
def _shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("faults-shared")
    stack = make_stack(workdir, f"sqlite:///{workdir / 'atelier.db'}")
    stack.server.wait_ready()
    yield stack
    stack.close()


@pytest.fixture
def shared_stack(_shared: Stack) -> Iterator[Stack]:
    """The package's broker and server, which no test kills; gateways and proxies are the test's."""
    yield _shared
    _shared.close_test_parts()


@pytest.fixture(scope="module")
def _module_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("faults-module")
    stack = make_stack(workdir, f"sqlite:///{workdir / 'atelier.db'}", server_proxy=True)
    yield stack
    stack.close()


@pytest.fixture
def killable_stack(_module_stack: Stack) -> Iterator[Stack]:
    """A broker and a server (SQLite; it reaches the broker through a proxy of its own,
    ``server_proxy``) shared by the tests of one module, which may kill either: each test
    finds them running (broker without persistence, nothing cut, server ready)."""
    stack = _module_stack
    stack.broker.reconfigure(persistence=False)
    if stack.server_proxy is not None:
        stack.server_proxy.restore()
    if not stack.server.running:
        stack.server.start()
    stack.server.wait_ready()
    yield stack
    stack.close_test_parts()
