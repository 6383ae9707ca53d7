"""The dashboard says when the API's rate limits are not shared through Redis (issue 18, item 9):
none configured (each host's workers share a file, hosts count apart), or Redis not answering."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from appliance.portal.app import create_app
from appliance.services import Services, build_services
from tests.conftest import REDIS_URL, free_port, make_settings, worker_redis_db
from tests.portal.helpers import sign_in


@pytest.fixture()
def dashboard(pg_services: Services) -> Iterator[object]:
    """The dashboard's HTML for a developer, with ``redis_url`` set as given."""
    made: list[Services] = []

    def page(redis_url: str | None) -> str:
        settings = make_settings(
            pg_services.settings.home,
            database_url=pg_services.settings.effective_database_url,
            redis_url=redis_url,
        )
        made.append(build_services(settings))
        client = create_app(services=made[-1]).test_client()
        sign_in(client, made[-1], ["developer"])
        response = client.get("/")
        assert response.status_code == 200
        return response.text

    yield page
    for services in made:
        services.db.dispose()


def rate_limits(html: str) -> tuple[str, str | None]:
    state = re.search(
        r'data-testid="rate-limits"><span class="badge[^"]*" data-state="([^"]+)"', html
    )
    assert state, "no rate-limit state on the dashboard"
    notice = re.search(r'data-testid="rate-limits-notice">([^<]+)</p>', html)
    return state.group(1), notice.group(1) if notice else None


def test_without_redis_the_dashboard_says_limits_are_per_host(dashboard) -> None:
    state, notice = rate_limits(dashboard(None))
    assert state == "per host"
    assert notice is not None and "not shared through Redis" in notice
    assert "each API host admits a key&#39;s full limits on its own" in notice


def test_with_redis_answering_there_is_no_notice(dashboard) -> None:
    state, notice = rate_limits(dashboard(f"{REDIS_URL}/{worker_redis_db()}"))
    assert (state, notice) == ("shared", None)


def test_with_redis_not_answering_the_dashboard_says_so(dashboard) -> None:
    html = dashboard(f"redis://127.0.0.1:{free_port()}/0")
    state, notice = rate_limits(html)
    assert state == "redis down"
    assert notice is not None and "does not answer" in notice
    assert "ConnectionError" in html
