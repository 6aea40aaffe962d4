"""Every console route, found by walking the app: dealer B's records are 404 to dealer A's staff, anonymous
requests are refused, and a POST without the CSRF token is refused. A new route is covered the day it lands;
a new kind of path parameter fails here until this file learns which record it names."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.console.conftest import World, sign_in

pytestmark = pytest.mark.db

# what each path parameter names: the key into World's ids
RECORD_PARAMS = {"conversation_id", "customer_id", "ticket_id", "appointment_id"}
PUBLIC = {"/console/login", "/console/lang/{lang}"}


def console_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    found = []
    for route in _walk(app.routes):
        if route.path.startswith("/console") and route.path not in PUBLIC:
            for method in sorted(route.methods - {"HEAD"}):
                found.append((method, route.path))
    return found


def _walk(routes) -> Iterator[APIRoute]:  # type: ignore[no-untyped-def]
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI keeps an included router whole (0.16x)
            yield from _walk(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


def _fill(path: str, ids: dict[str, int]) -> str:
    for name in RECORD_PARAMS:
        path = path.replace("{" + name + "}", str(ids[name]))
    assert "{" not in path, f"{path}: teach this test which record the parameter names"
    return path


def _form(world: World) -> dict[str, object]:
    """A form every console POST accepts, so only the record's dealer decides the answer."""
    return {"text": "测试", "result": "已处理完毕", "staff_id": world.a.staff["manager"], "assignee_id": world.a.staff["manager"],
            "status": "acknowledged", "to": "acknowledged", "day": "2026-11-25", "date": "2026-11-25", "time": "10:00",
            "bay": 1, "reason": "车主改期", "notes": "备注", "tier": "A", "category": "service", "department": "售后服务部"}


def test_the_walk_finds_the_console(app) -> None:  # type: ignore[no-untyped-def]
    paths = {path for _, path in console_routes(app)}
    assert {"/console/", "/console/conversations/{conversation_id}", "/console/api/events"} <= paths


def test_dealer_bs_records_are_not_found_for_dealer_as_agent(app, client: TestClient, world: World, clock) -> None:  # type: ignore[no-untyped-def]
    agent = sign_in(client, "agent")
    checked = 0
    for method, path in console_routes(app):
        if not RECORD_PARAMS & set(_params(path)):
            continue
        url = _fill(path, world.b.ids)
        response = agent.get(url) if method == "GET" else agent.post(url, _form(world))
        assert response.status_code == 404, f"{method} {url}: {response.status_code} {response.text[:200]}"
        checked += 1
    assert checked >= 5


def test_dealer_as_own_records_answer_on_every_get(app, client: TestClient, world: World, clock) -> None:  # type: ignore[no-untyped-def]
    # the other side of the 404s: the same routes do work for the dealer's own records
    agent = sign_in(client, "admin")
    for method, path in console_routes(app):
        if method != "GET" or path == "/console/api/events":
            continue
        url = _fill(path, world.a.ids)
        response = agent.get(url)
        assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:200]}"


def test_anonymous_requests_are_refused_everywhere(app, client: TestClient, world: World, clock) -> None:  # type: ignore[no-untyped-def]
    for method, path in console_routes(app):
        url = _fill(path, world.a.ids)
        if method == "GET":
            response = client.get(url, follow_redirects=False)
            if path.startswith("/console/api/"):
                assert response.status_code == 401, url
            else:
                assert response.status_code == 303 and response.headers["location"].startswith("/console/login"), url
        else:
            response = client.post(url, data=_form(world), follow_redirects=False)
            assert response.status_code in (303, 401, 403), f"POST {url}: {response.status_code}"
            assert response.status_code != 303 or response.headers["location"].startswith("/console/login")


def test_a_form_without_the_csrf_token_is_refused_everywhere(app, client: TestClient, world: World, clock) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, "admin")
    posts = [path for method, path in console_routes(app) if method == "POST"]
    assert "/console/conversations/{conversation_id}/reply" in posts
    for path in posts:
        url = _fill(path, world.a.ids)
        response = client.post(url, data=_form(world), follow_redirects=False)
        assert response.status_code == 403, f"POST {url}: {response.status_code}"
        wrong = client.post(url, data={**_form(world), "csrf_token": "forged"}, follow_redirects=False)
        assert wrong.status_code == 403, f"POST {url} with a forged token: {wrong.status_code}"


def _params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_page_reads_in_both_languages_with_no_text_key_left_showing(app, client: TestClient, world: World, clock,  # type: ignore[no-untyped-def]
                                                                          lang: str) -> None:
    import re

    from bot.console.text import TEXT

    sign_in(client, "admin")
    client.get(f"/console/lang/{lang}")
    keys = set(TEXT[lang])
    for method, path in console_routes(app):
        if method != "GET" or path == "/console/api/events" or path.endswith(".csv"):
            continue
        html = client.get(_fill(path, world.a.ids)).text
        visible = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL))
        leftovers = {word for word in re.findall(r"\b[a-z]+_[a-z_]+\b", visible) if word in keys}
        assert not leftovers, f"{path} ({lang}) shows text keys: {sorted(leftovers)}"
        if "<html" in html:  # a whole page, not a fragment the page swaps in
            assert f'<html lang="{"zh-CN" if lang == "zh" else "en"}">' in html, path
