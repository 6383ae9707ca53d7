"""What an API call's audit event keeps of its texts: desensitized, or sealed in full."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import openai
import pytest

from appliance.audit.content import KEY_PURPOSE, open_sealed
from appliance.errors import InvalidRequest
from appliance.models import AuditEvent
from appliance.services import Services
from tests.api.conftest import gateway_with_policies, new_caller
from tests.api.test_desensitize import PHONE, PRIVACY, SECRET, EchoUpstream
from tests.conftest import wait_for_events


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoUpstream]:
    upstream = EchoUpstream()
    yield upstream
    upstream.server.stop()


def ask(
    services: Services, folder_factory: pytest.TempPathFactory, mode: str, echo: EchoUpstream,
    stream: bool,
) -> AuditEvent:  # fmt: skip
    from appliance.upstream.registry import add_model
    from tests.conftest import unique

    model = unique("echo")
    with services.db.session() as session:
        add_model(session, model, upstream_urls=[echo.server.url])
    caller = new_caller(services, role="app")
    policy = PRIVACY + f"audit_content: {mode}\n"
    with gateway_with_policies(services, folder_factory.mktemp(mode), privacy=policy) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=caller.key, max_retries=0)
        messages = [{"role": "user", "content": SECRET}]
        if stream:
            chunks = client.chat.completions.create(model=model, messages=messages, stream=True)  # type: ignore[arg-type]
            "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
        (event,) = wait_for_events(services, AuditEvent.api_key_prefix == caller.prefix)
    return event


@pytest.mark.parametrize("stream", [False, True])
def test_desensitized_content_holds_no_personal_data(
    pg_services: Services, tmp_path_factory: pytest.TempPathFactory, echo: EchoUpstream,
    stream: bool,
) -> None:  # fmt: skip
    event = ask(pg_services, tmp_path_factory, "desensitized", echo, stream)
    content = event.details["content"]
    assert content["prompt"] == [echo.bodies[-1]["messages"][0]["content"]]
    assert "[CN_PHONE_1]" in content["prompt"][0]
    (answer,) = content["answers"]
    assert answer.startswith(content["prompt"][0]) and answer.endswith("139****5678。")
    assert PHONE not in json.dumps(event.details, ensure_ascii=False)


def test_encrypted_content_opens_only_with_the_key_and_its_request(
    pg_services: Services, tmp_path_factory: pytest.TempPathFactory, echo: EchoUpstream
) -> None:
    event = ask(pg_services, tmp_path_factory, "encrypted", echo, stream=True)
    sealed = event.details["content_sealed"]
    assert "content" not in event.details and PHONE not in sealed
    key = pg_services.derived_key(KEY_PURPOSE)
    opened = open_sealed(key, sealed, event.request_id)
    assert opened["prompt"] == [SECRET]  # what the caller sent, in full
    assert opened["answers"][0].startswith(SECRET)  # and what the caller got back
    with pytest.raises(InvalidRequest, match="integrity"):
        open_sealed(key, sealed, "another-request")
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "audit", "content", event.event_id],
        env={
            "APPLIANCE_HOME": str(pg_services.settings.home),
            "APPLIANCE_DATABASE_URL": pg_services.settings.effective_database_url,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["prompt"] == [SECRET]
    (read,) = wait_for_events(pg_services, AuditEvent.target == event.event_id)
    assert read.action == "admin.audit.content.read"


def test_no_content_by_default(
    pg_services: Services, tmp_path_factory: pytest.TempPathFactory, echo: EchoUpstream
) -> None:
    event = ask(pg_services, tmp_path_factory, "none", echo, stream=False)
    assert "content" not in event.details and "content_sealed" not in event.details


def test_an_unknown_content_mode_stops_the_policy(tmp_path_factory: pytest.TempPathFactory) -> None:
    from appliance.errors import PolicyError
    from appliance.privacy.policy import load_privacy_policy

    path = tmp_path_factory.mktemp("bad") / "desensitization.yaml"
    path.write_text("restore: true\naudit_content: everything\n")
    with pytest.raises(PolicyError, match=r":2: audit_content must be one of none"):
        load_privacy_policy(path)
