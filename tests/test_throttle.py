"""The login throttle and the edge's name and address rules, as pure logic on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from hub.throttle import Throttle
from hub.web.access import Edge


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_few_mistakes_are_free_then_the_delay_doubles_up_to_the_cap() -> None:
    clock = Clock()
    t = Throttle(free=5, base=1, cap=60, half_life=600, clock=clock)
    for _ in range(5):
        t.failed("user:ann")
        assert t.retry_after("user:ann") == 0
    delays = []
    for _ in range(9):
        t.failed("user:ann")
        delays.append(t.retry_after("user:ann"))
        clock.now += delays[-1]
    assert delays[:6] == [1, 2, 4, 8, 16, 32]
    assert max(delays) == 60


def test_the_score_decays_by_itself() -> None:
    clock = Clock()
    t = Throttle(free=5, base=1, cap=900, half_life=600, clock=clock)
    for _ in range(8):
        t.failed("addr:10.0.0.9")
    assert t.retry_after("addr:10.0.0.9") > 0
    clock.now += 3 * 3600  # three hours later: eighteen half-lives
    assert t.retry_after("addr:10.0.0.9") == 0
    t.failed("addr:10.0.0.9")
    assert t.retry_after("addr:10.0.0.9") == 0  # counted afresh, not banned


def test_success_clears_the_account_not_the_address() -> None:
    clock = Clock()
    t = Throttle(free=2, clock=clock)
    for _ in range(3):
        t.failed("user:ann", "addr:a")
    clock.now += 10
    t.succeeded("user:ann")
    t.failed("user:bob", "addr:a")
    assert t.retry_after("user:bob", "addr:a") > 0


def test_memory_is_bounded() -> None:
    t = Throttle(max_keys=100, clock=Clock())
    for i in range(1000):
        t.failed(f"addr:{i}")
    assert len(t) == 100


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 5000)), max_size=60))
def test_the_wait_never_exceeds_the_cap(events: list[tuple[str, float]]) -> None:
    clock = Clock()
    t = Throttle(free=3, base=1, cap=120, clock=clock)
    for key, dt in events:
        clock.now += dt
        t.failed(key)
        assert 0 <= t.retry_after(key) <= 120


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8080", True), ("192.168.1.20", True), ("[::1]:8080", True),
    ("localhost:8080", True), ("LOCALHOST", True), ("hub.home.arpa", True), ("x.home.arpa", True),
    ("home.arpa", False), ("myhub", True), ("evil.example", False), ("127.0.0.1.evil.example", False),
    ("", False), (":8080", False),
])
def test_host_names(host: str, ok: bool) -> None:
    edge = Edge(allowed_hosts=["myhub", ".home.arpa"])
    assert edge.host_allowed(host) is ok


def test_config_names_trusted_proxies() -> None:
    from hub.config import ConfigError, load_config

    cfg = load_config(environ={"HUB_HTTP_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/24",
                               "HUB_HTTP_ALLOWED_HOSTS": "hub.home.arpa"})
    assert cfg.http.trusted_proxies == ["10.0.0.1", "192.168.0.0/24"]
    assert cfg.http.allowed_hosts == ["hub.home.arpa"]
    with pytest.raises(ConfigError, match="http.trusted_proxies"):
        load_config(environ={"HUB_HTTP_TRUSTED_PROXIES": "not-an-address"})


def _request(remote: str, **headers: str):
    from unittest import mock

    from aiohttp.test_utils import make_mocked_request

    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (remote, 1234) if name == "peername" else default
    return make_mocked_request("GET", "/", headers=headers, transport=transport)


def test_the_client_address_is_the_sockets_unless_a_trusted_proxy_forwards() -> None:
    edge = Edge(trusted_proxies=["10.0.0.1"])
    assert edge.client_address(_request("192.168.1.7", **{"X-Forwarded-For": "1.2.3.4"})) == "192.168.1.7"
    assert edge.client_address(_request("10.0.0.1", **{"X-Forwarded-For": "1.2.3.4, 5.6.7.8"})) == "5.6.7.8"
    assert edge.client_address(_request("10.0.0.1", **{"X-Forwarded-For": "garbage"})) == "10.0.0.1"
    assert edge.secure(_request("10.0.0.1", **{"X-Forwarded-Proto": "https"}))
    assert not edge.secure(_request("192.168.1.7", **{"X-Forwarded-Proto": "https"}))
