"""Behind nginx the apps trust exactly the configured number of forwarding hops."""

from __future__ import annotations

from flask import Flask, request

from appliance.proxies import behind_proxies


def client_seen(hops: int, forwarded_for: str) -> tuple[str, str]:
    app = Flask(__name__)

    @app.get("/")
    def whoami() -> str:
        return f"{request.remote_addr} {request.scheme}"

    behind_proxies(app, hops)
    response = app.test_client().get(
        "/",
        headers={"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    address, scheme = response.get_data(as_text=True).split()
    return address, scheme


def test_without_a_proxy_the_headers_are_ignored() -> None:
    assert client_seen(0, "203.0.113.9") == ("127.0.0.1", "http")


def test_one_hop_trusts_the_last_address_only() -> None:
    # A client cannot spoof its address by sending its own X-Forwarded-For: nginx appends
    # the real one, and only that last entry is trusted.
    assert client_seen(1, "10.9.9.9, 203.0.113.9") == ("203.0.113.9", "https")
