"""The call's X-Request-Id reaches the upstream, so gateway and vLLM logs can be joined.

A caller's own id is kept when it is sane (1 to 64 of letters, digits, '.', '_', '-');
anything else is replaced by one made here. Either way the answer and every request the
call sends upstream carry the same id.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests import timing
from tests.api.conftest import Caller
from tests.api.vllm_standin import VllmStandIn
from tests.conftest import LiveServer, unique

MADE_HERE = re.compile(r"^[0-9a-f]{32}$")


def chat(
    server: LiveServer,
    caller: Caller,
    standin_model: str,
    request_id: str | bytes | None,
    *,
    stream: bool = False,
) -> httpx.Response:
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {caller.key}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    body = {
        "model": standin_model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    return httpx.post(
        f"{server.url}/v1/chat/completions", headers=headers, json=body, timeout=timing.scaled(10)
    )


def last_sent_id(standin: VllmStandIn) -> str | None:
    return standin.sent("/v1/chat/completions")[-1].get("X-Request-Id")


@pytest.mark.parametrize("stream", [False, True])
def test_a_sane_caller_id_is_returned_and_sent_upstream(
    api_server: LiveServer, caller: Caller, standin_model: str, standin: VllmStandIn, stream: bool
) -> None:
    request_id = f"trace-{unique('x')}.1_a"
    answer = chat(api_server, caller, standin_model, request_id, stream=stream)
    assert answer.status_code == 200
    assert answer.headers["X-Request-Id"] == request_id
    assert last_sent_id(standin) == request_id


@pytest.mark.parametrize(
    "insane",
    ["a" * 65, "two words", "<script>", "semi;colon", "tab\tinside", "caf\u00e9".encode()],
)
def test_an_insane_caller_id_is_replaced_and_the_new_one_sent_upstream(
    api_server: LiveServer,
    caller: Caller,
    standin_model: str,
    standin: VllmStandIn,
    insane: str | bytes,
) -> None:
    answer = chat(api_server, caller, standin_model, insane)
    assert answer.status_code == 200
    made = answer.headers["X-Request-Id"]
    assert MADE_HERE.match(made)
    assert last_sent_id(standin) == made


def test_without_an_id_one_is_made_and_sent_upstream(
    api_server: LiveServer, caller: Caller, standin_model: str, standin: VllmStandIn
) -> None:
    first, second = (chat(api_server, caller, standin_model, None) for _ in range(2))
    ids = [first.headers["X-Request-Id"], second.headers["X-Request-Id"]]
    assert all(MADE_HERE.match(i) for i in ids) and ids[0] != ids[1]
    sent = [h.get("X-Request-Id") for h in standin.sent("/v1/chat/completions")[-2:]]
    assert sent == ids
