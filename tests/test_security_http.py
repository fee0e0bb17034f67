"""The HTTP facade against hostile web pages and malformed requests, on a real daemon."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator

import pytest

from framerelay.service.discovery import Discovery
from framerelay.service.http_facade import MAX_BODY
from framerelay.service.http_guard import MAX_JSON_DEPTH, json_depth, split_host
from tests.daemon_harness import authorized, raw_http, running_daemon


@pytest.fixture(scope="module")
def found(tmp_path_factory) -> Iterator[Discovery]:
    root = tmp_path_factory.mktemp("http")
    config = {"allowed_origins": ("http://localhost:5173",)}
    with running_daemon(root, **config) as (daemon, _):
        yield daemon.discovery


def error_of(body: bytes) -> dict:
    return json.loads(body)["error"]


def assert_no_wildcard_cors(headers: dict[str, str]) -> None:
    assert headers.get("access-control-allow-origin") != "*"
    assert "access-control-allow-credentials" not in headers


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",  # DNS rebinding: the attacker's name now resolves to 127.0.0.1
        "evil.example",
        "127.0.0.1.nip.io:{port}",
        "localhost.:{port}",
        "127.0.0.1:{other}",
        "localhost",
        "[::1]:{other}",
        "127.0.0.1:{port}:80",
        "[::1",
        "",
    ],
    ids=lambda h: h or "missing",
)
def test_a_foreign_host_is_refused_before_the_token(found, host):
    host = host.format(port=found.http_port, other=found.http_port + 1)
    status, headers, body = raw_http(found, "/v1/GetStatus", headers=authorized(found), host=host)
    assert status == 403
    assert error_of(body)["code"] == "ERROR_CODE_FORBIDDEN"
    assert "rebinding" in error_of(body)["hint"] or "Host" in error_of(body)["hint"]
    assert_no_wildcard_cors(headers)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
def test_loopback_hosts_with_the_daemons_port_are_served(found, host):
    host = host.format(port=found.http_port)
    status, _, body = raw_http(found, "/v1/GetStatus", headers=authorized(found), host=host)
    assert status == 200 and json.loads(body)["version"]


def test_two_host_headers_are_refused(found):
    headers = authorized(found, Host="evil.example")
    status, _, _ = raw_http(found, "/v1/GetStatus", headers=headers)
    assert status == 403


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://localhost:5174", "http://127.0.0.1"]
)
def test_a_web_page_is_refused_even_with_the_token(found, origin):
    submit = json.dumps({"spec": {"sourcePath": "/nowhere.mov"}}).encode()
    headers = authorized(found, Origin=origin, **{"Content-Type": "text/plain"})
    status, reply_headers, body = raw_http(found, "/v1/SubmitJob", submit, headers)
    assert status == 403
    assert error_of(body)["code"] == "ERROR_CODE_FORBIDDEN"
    assert origin in error_of(body)["message"]
    assert not any(name.startswith("access-control-") for name in reply_headers)
    _, _, listed = raw_http(found, "/v1/ListJobs", headers=authorized(found))
    assert json.loads(listed).get("jobs", []) == []


def test_a_foreign_preflight_gets_no_cors_headers(found):
    headers = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    status, reply_headers, _ = raw_http(found, "/v1/GetStatus", b"", headers, method="OPTIONS")
    assert status == 403
    assert not any(name.startswith("access-control-") for name in reply_headers)


def test_an_allowed_origin_gets_exactly_its_own_cors_headers(found):
    origin = "http://localhost:5173"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    status, headers, _ = raw_http(found, "/v1/GetStatus", b"", preflight, method="OPTIONS")
    assert status == 204
    assert headers["access-control-allow-origin"] == origin
    assert headers["access-control-allow-methods"] == "POST"
    status, headers, body = raw_http(
        found, "/v1/GetStatus", headers=authorized(found, Origin=origin)
    )
    assert status == 200 and json.loads(body)["version"]
    assert headers["access-control-allow-origin"] == origin and headers["vary"] == "Origin"
    status, headers, _ = raw_http(found, "/v1/GetStatus", headers={"Origin": origin})
    assert status == 401, "an allowed origin still needs the token"


def test_responses_without_an_origin_carry_no_cors_headers(found):
    for token in (found.token, "wrong"):
        status, headers, _ = raw_http(
            found, "/v1/GetStatus", headers={"Authorization": f"Bearer {token}"}
        )
        assert status in (200, 401)
        assert not any(name.startswith("access-control-") for name in headers)


@pytest.mark.parametrize("with_header", [False, True], ids=["query-only", "query-and-header"])
def test_a_token_in_the_query_string_is_refused(found, caplog, with_header):
    headers = authorized(found) if with_header else {}
    with caplog.at_level(logging.DEBUG):
        status, _, body = raw_http(found, f"/v1/GetStatus?token={found.token}", headers=headers)
    assert status == 400
    error = error_of(body)
    assert "query string" in error["message"] and "Authorization header" in error["hint"]
    assert found.token not in body.decode()
    assert found.token not in caplog.text


def test_an_oversize_body_is_refused_without_reading_it(found):
    status, headers, body = raw_http(
        found,
        "/v1/SubmitJob",
        b"",
        authorized(found, **{"Content-Length": str(MAX_BODY + 1)}),
    )
    assert status == 400
    assert f"limit is {MAX_BODY}" in error_of(body)["message"]
    assert headers.get("connection") == "close"


def test_a_body_just_under_the_limit_is_parsed(found):
    padding = " " * (MAX_BODY - 2)
    status, _, _ = raw_http(
        found, "/v1/GetStatus", b"{" + padding.encode() + b"}", authorized(found)
    )
    assert status == 200


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"Content-Length": "-1"}, "not a size"),
        ({"Content-Length": "1e3"}, "not a size"),
        ({"Transfer-Encoding": "chunked"}, "chunked"),
    ],
    ids=["negative", "float", "chunked"],
)
def test_odd_body_framing_is_refused(found, headers, words):
    status, _, body = raw_http(found, "/v1/GetStatus", b"", authorized(found, **headers))
    assert status == 400 and words in error_of(body)["message"]


def test_a_body_shorter_than_its_length_is_refused_not_waited_for(found):
    with socket.create_connection(("127.0.0.1", found.http_port), timeout=10) as connection:
        connection.sendall(
            (
                f"POST /v1/GetStatus HTTP/1.1\r\nHost: 127.0.0.1:{found.http_port}\r\n"
                f"Authorization: Bearer {found.token}\r\nContent-Length: 100\r\n\r\n{{}}"
            ).encode()
        )
        connection.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400")
    assert b"ended after 2 of 100 bytes" in reply


@pytest.mark.parametrize("opener", ["[", '{"a":'], ids=["arrays", "objects"])
def test_deeply_nested_json_is_refused(found, opener):
    depth = 100_000
    body = (opener * depth).encode()
    status, _, reply = raw_http(found, "/v1/SubmitJob", body, authorized(found))
    assert status == 400
    assert f"deeper than {MAX_JSON_DEPTH}" in error_of(reply)["message"]
    status, _, _ = raw_http(found, "/v1/GetStatus", headers=authorized(found))
    assert status == 200


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth('{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth(r'{"a": "\"[[[["}') == 1
    assert json_depth("[" * 1000) == MAX_JSON_DEPTH + 1


@pytest.mark.parametrize("verb", ["GET", "HEAD", "PUT", "DELETE", "PATCH", "TRACE", "BREW"])
def test_other_verbs_are_405_never_5xx(found, verb):
    status, headers, _ = raw_http(found, "/v1/GetStatus", b"", authorized(found), method=verb)
    assert status == 405
    assert_no_wildcard_cors(headers)


def test_host_parsing():
    assert split_host("LocalHost:8080") == ("localhost", 8080)
    assert split_host("[::1]:9") == ("::1", 9)
    assert split_host("127.0.0.1") == ("127.0.0.1", 80)
    for bad in ("[::1", "[::1]x", "a:b", "a:1:2", "a:٣"):
        with pytest.raises(ValueError):
            split_host(bad)
