"""The local Label Studio: a real server in its own venv, reachable only with its preset token."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from dataops_cv.lib.services.labelstudio_server import (
    LabelStudioServerError,
    LocalLabelStudio,
    port_is_free,
)


def _get(url: str, token: str | None) -> tuple[int, dict]:
    headers = {"Authorization": f"Token {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def test_preset_admin_token_works_and_others_are_refused(label_studio_server):
    creds = label_studio_server.credentials()
    status, me = _get(f"{label_studio_server.url}/api/current-user/whoami", creds.token)
    assert status == 200 and me["email"] == creds.email
    assert _get(f"{label_studio_server.url}/api/projects/", "not-the-token")[0] == 401
    assert _get(f"{label_studio_server.url}/api/projects/", None)[0] in (401, 403)
    status, version = _get(f"{label_studio_server.url}/api/version", creds.token)
    assert version["release"] == "1.23.2"


def _own_ipv4_addresses() -> set[str]:
    """The machine's non-loopback IPv4 addresses, from the kernel's routing view."""
    found = set()
    with open("/proc/net/fib_trie") as f:
        lines = f.read().splitlines()
    for prev, line in zip(lines, lines[1:], strict=False):
        if "/32 host LOCAL" in line:
            found.add(prev.split()[-1])
    return {a for a in found if not a.startswith("127.")}


def test_binds_loopback_only(label_studio_server):
    """--internal-host 127.0.0.1: nothing answers on the machine's other addresses."""
    others = _own_ipv4_addresses()
    if not others:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    for address in others:
        with pytest.raises(OSError):
            socket.create_connection((address, label_studio_server.port), timeout=1).close()


def test_start_is_idempotent_and_credentials_are_kept(label_studio_server):
    before = label_studio_server.credentials()
    assert label_studio_server.start() == label_studio_server.pid()
    assert label_studio_server.credentials() == before
    assert label_studio_server.client_env() == {"LABEL_STUDIO_URL": label_studio_server.url,
                                                "LABEL_STUDIO_API_KEY": before.token}


def test_a_taken_port_is_a_clear_error_not_a_silent_move(label_studio_server, tmp_path):
    other = LocalLabelStudio(tmp_path, port=label_studio_server.port)
    assert not port_is_free(label_studio_server.port)
    with pytest.raises(LabelStudioServerError, match="is taken"):
        other.start()
