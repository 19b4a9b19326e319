"""Robot routes through the API: created with their credentials masked everywhere they
are shown or audited, tested with a real request to a 127.0.0.1 receiver whose answer
comes back, and hostile URLs refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.alerts.robot_receivers import RobotReceiver

SECRET = "SEC0123456789abcdefAPITEST"
TOKEN = "apitoken0123456789abcdef0123"


def admin(api_keys: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_keys['admin']}"}


@pytest.fixture
def dingtalk() -> Iterator[RobotReceiver]:
    robot = RobotReceiver("dingtalk", secret=SECRET, token=TOKEN)
    yield robot
    robot.close()


def audit_details(engine: Engine) -> str:
    with engine.connect() as conn:
        return " ".join(
            str(r[0]) for r in conn.execute(text("SELECT detail FROM audit_log ORDER BY id"))
        )


def test_a_robot_route_is_created_masked_and_tested_with_the_robot_answer(
    client: TestClient, api_keys: dict[str, str], seeded_engine: Engine, dingtalk: RobotReceiver
) -> None:
    headers = admin(api_keys)
    created = client.post(
        "/api/v1/webhooks",
        json={
            "name": "北门值班群",
            "kind": "dingtalk",
            "url": dingtalk.url,
            "secret": SECRET,
            "mentions": ["13800000001"],
            "min_severity": "major",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    route = created.json()
    assert route["kind"] == "dingtalk" and route["language"] == "zh-CN"
    assert route["has_secret"] is True and route["secret"] == "…TEST"
    listed = client.get("/api/v1/webhooks", headers=headers)
    for shown in (created.text, listed.text, audit_details(seeded_engine)):
        assert TOKEN not in shown and SECRET not in shown and "13800000001" not in shown
    assert listed.json()[0]["url"].endswith("access_token=…0123")
    assert listed.json()[0]["mentions"] == ["138****0001"]

    tested = client.post(f"/api/v1/webhooks/{route['id']}/test", headers=headers)
    assert tested.status_code == 200, tested.text
    answer = tested.json()
    assert answer["ok"] is True and answer["robot_code"] == 0 and '"errcode": 0' in answer["answer"]
    [request] = dingtalk.received
    assert request.signed and "测试消息" in request.body["markdown"]["text"]

    # a wrong secret: the robot's refusal comes back as it is, and would not be retried
    patched = client.patch(
        f"/api/v1/webhooks/{route['id']}",
        json={"secret": "SEC0000000000000000WRONG", "language": "en"},
        headers=headers,
    )
    assert patched.status_code == 200, patched.text
    refused = client.post(f"/api/v1/webhooks/{route['id']}/test", headers=headers).json()
    assert refused["ok"] is False and refused["robot_code"] == 310000
    assert refused["retryable"] is False and "sign not match" in refused["answer"]
    assert "SEC0000000000000000WRONG" not in audit_details(seeded_engine)
    with seeded_engine.connect() as conn:
        codes = [r[0] for r in conn.execute(text("SELECT robot_code FROM robot_send ORDER BY id"))]
    assert codes == [0, 310000]  # tests count against the robot's rate budget


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"kind": "dingtalk", "url": "javascript:alert(1)"}, "http"),
        ({"kind": "dingtalk", "url": "http://u:p@127.0.0.1/robot/send?access_token=x"}, "user"),
        ({"kind": "dingtalk", "url": "http://127.0.0.1/robot/send"}, "access_token"),
        ({"kind": "dingtalk", "url": "http://127.0.0.1/robot/send?access_token=a b"}, "spaces"),
        ({"kind": "dingtalk", "url": "http://127.0.0.1:99999/x?access_token=a"}, "port"),
        ({"kind": "dingtalk", "url": "http://[::1/robot/send?access_token=a"}, "valid URL"),
        ({"kind": "standard", "url": "http://[::1/hook"}, "http"),
        ({"kind": "wecom", "url": "http://127.0.0.1/cgi-bin/webhook/send"}, "key="),
        ({"kind": "feishu", "url": "http://127.0.0.1/open-apis/bot/v2/hook/"}, "hook"),
        ({"kind": "wecom", "url": "http://127.0.0.1/s?key=k", "secret": "abc"}, "no signing"),
        ({"kind": "dingtalk", "url": "http://127.0.0.1/s?access_token=t", "secret": "x"}, "SEC"),
        (
            {"kind": "dingtalk", "url": "http://127.0.0.1/s?access_token=t", "mentions": ["x"]},
            "phone",
        ),
        ({"kind": "telegram", "url": "http://127.0.0.1/s"}, "kind"),
        ({"kind": "standard", "url": "http://127.0.0.1/s", "mentions": ["138"]}, "robot"),
        ({"kind": "wecom", "url": "http://127.0.0.1/s?key=k", "language": "fr"}, "language"),
    ],
)
def test_hostile_or_wrong_robot_routes_are_refused_with_a_reason(
    client: TestClient, api_keys: dict[str, str], body: dict[str, Any], complaint: str
) -> None:
    response = client.post("/api/v1/webhooks", json={"name": "x", **body}, headers=admin(api_keys))
    assert response.status_code == 422, response.text
    assert complaint in response.text
    assert client.get("/api/v1/webhooks", headers=admin(api_keys)).json() == []


def test_a_standard_route_test_is_a_signed_standard_webhook(
    client: TestClient, api_keys: dict[str, str]
) -> None:
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from services.alerts import signing

    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append((dict(self.headers), self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        created = client.post(
            "/api/v1/webhooks", json={"name": "sms", "url": url}, headers=admin(api_keys)
        ).json()
        tested = client.post(f"/api/v1/webhooks/{created['id']}/test", headers=admin(api_keys))
        assert tested.json()["ok"] is True and tested.json()["status_code"] == 204
    finally:
        server.shutdown()
        server.server_close()
    [(headers, body)] = got
    signing.verify(created["secret"], headers, body, time.time())
    assert json.loads(body)["type"] == "webhook.test"
