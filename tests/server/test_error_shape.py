"""Every non-2xx reply of every route has exactly the {"status", "error"} shape."""

from __future__ import annotations

from support import Service


async def test_every_route_error_has_the_shape(service: Service) -> None:
    ingest = {"Authorization": f"Bearer {service.default.ingest_key}"}
    json_type = {"Content-Type": "application/json"}
    requests = [
        ("POST", "/v1/batch", {}, b"{}"),
        ("POST", "/v1/batch", {**ingest, **json_type}, b"{}"),
        ("POST", "/v1/batch", {**ingest, "Content-Type": "text/csv"}, b"a,b"),
        ("GET", "/v1/batch", {}, None),
        ("GET", "/v1/config/1", {}, None),
        ("GET", "/v1/config/x", ingest, None),
        ("DELETE", "/v1/config/1", ingest, None),
        ("GET", "/", {}, None),
        ("GET", "/v1/projects/1/zoning", {}, None),
        ("POST", "/v1/touches", {}, b"{}"),
        ("POST", "/v1/snapshots", {}, b"{}"),
    ]
    for method, path, headers, data in requests:
        resp = await service.client.request(method, path, headers=headers, data=data)
        assert resp.status >= 400, (method, path)
        assert resp.content_type == "application/json", (method, path)
        body = await resp.json()
        assert set(body) == {"status", "error"}, (method, path)
        assert body["status"] == resp.status
        assert isinstance(body["error"], str) and body["error"].endswith(".")
        assert "\n" not in body["error"] and "Traceback" not in body["error"]
