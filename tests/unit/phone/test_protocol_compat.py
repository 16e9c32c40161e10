"""The protocol version rule (edge_agent.protocol): the rule itself, the phone client against a real device over mutual
TLS stating another version, discovery's usable/reason, and the web app's compat.js on the same cases in node."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_agent import protocol
from edge_agent.phone import client as phone
from edge_agent.phone.keys import ClientError
from tests.cli_runner import run_cli
from tests.delivery_fixtures import Pki, ServerThread, pki, server_config, srv  # noqa: F401 (pytest fixtures)
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
COMPAT_JS = ROOT / "tools" / "phone-web" / "src" / "compat.js"


# ---- the rule ----------------------------------------------------------------------------------------


def test_the_rule_says_which_side_to_update() -> None:
    now = protocol.PROTOCOL_VERSION
    same = protocol.compatibility(now)
    assert same.usable and same.reason == "" and same.device_version == now
    newer = protocol.compatibility(now + 1)
    assert not newer.usable and newer.action == protocol.UPDATE_APP
    assert "update the app" in newer.reason and f"protocol {now + 1}" in newer.reason and "\n" not in newer.reason
    for unstated in (0, None, "", "x", "-1", "1.5", True):
        old = protocol.compatibility(unstated)
        assert not old.usable and old.action == protocol.UPDATE_DEVICE and "update the room device" in old.reason, unstated
    # the mDNS TXT "v" is a string: the same rule
    assert protocol.compatibility(str(now)).usable and not protocol.compatibility(str(now + 1)).usable
    # a client whose range spans two versions (the release that raises the protocol) uses both, and says which side is behind
    assert protocol.compatibility(2, oldest=1, newest=2).usable and protocol.compatibility(1, oldest=1, newest=2).usable
    behind = protocol.compatibility(1, oldest=2, newest=3)
    assert not behind.usable and behind.action == protocol.UPDATE_DEVICE and "older than this app supports (from 2)" in behind.reason
    assert protocol.OLDEST_DEVICE_PROTOCOL <= protocol.PROTOCOL_VERSION


def test_the_device_states_this_releases_protocol_everywhere() -> None:
    from edge_agent.device import mdns
    from edge_agent.device.grpc import service

    assert service.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION
    assert mdns.txt_record("Room 4", "ab" * 32)["v"] == str(protocol.PROTOCOL_VERSION)


# ---- the Python phone client against a real device (mutual TLS on loopback) --------------------------------


def test_phone_refuses_a_device_of_a_newer_protocol_before_starting_anything(pki: Pki, srv: ServerThread) -> None:
    service = srv.server.agent_service if srv.server is not None else None
    assert service is not None
    assert phone.device_info(pki.keys_a, srv.target).protocol_version == protocol.PROTOCOL_VERSION  # usable as shipped
    service.protocol_version = protocol.PROTOCOL_VERSION + 1  # the device was updated past this client
    with pytest.raises(ClientError, match="newer than this app understands.*update the app"):
        phone.device_info(pki.keys_a, srv.target)
    with pytest.raises(ClientError, match="update the app"):
        phone.start(pki.keys_a, srv.target, room_code=srv.room_code())
    assert srv.runner.contexts == [] and srv.server.visits is not None and not srv.server.visits.active  # nothing started
    with pytest.raises(ClientError, match="update the app"):
        phone.feedback(pki.keys_a, srv.target)
    service.protocol_version = 0  # a device that states no version: older than anything this client supports
    with pytest.raises(ClientError, match="update the room device"):
        phone.device_info(pki.keys_a, srv.target)
    service.protocol_version = protocol.PROTOCOL_VERSION
    assert phone.start(pki.keys_a, srv.target, room_code=srv.room_code())  # and the same device, back in range, works


def test_phone_cli_says_update_the_app_in_one_line(pki: Pki, srv: ServerThread) -> None:
    assert srv.server is not None and srv.server.agent_service is not None
    srv.server.agent_service.protocol_version = protocol.PROTOCOL_VERSION + 1
    res = run_cli("phone", "start", "--keys", str(pki.keys_a), "--device", f"127.0.0.1:{srv.port}", "--fingerprint",
                  srv.server.fingerprint, "--room", "Room 4", "--room-code", srv.room_code(), timeout=120)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "update the app" in lines[0] and f"protocol {protocol.PROTOCOL_VERSION + 1}" in lines[0], lines[0]
    assert srv.runner.contexts == []


# ---- discovery: a device of another protocol is listed, usable: false, with the reason ---------------------------

DISCOVER_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, subprocess, sys
    sys.path.insert(0, sys.argv[1])
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
    from edge_agent.device.mdns import SERVICE_TYPE, Advertiser, instance_name

    async def main():
        adv = Advertiser(room="Room 4", port=50443, fingerprint="ab" * 32, interfaces=["127.0.0.1"], poll_s=0.2)
        await adv.start()
        newer = AsyncZeroconf(interfaces=["127.0.0.1"])  # a room device of a later release
        info = AsyncServiceInfo(SERVICE_TYPE, instance_name("cd" * 32), port=50443,
                                properties={"v": str(int(sys.argv[2]) + 1), "room": "Room 9", "fp": "cd" * 32},
                                parsed_addresses=["127.0.0.1"], server="edge-agent-cdcdcdcdcdcd.local.")
        await (await newer.async_register_service(info))
        run = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "edge_agent.cli", "phone", "discover", "--json",
                                                       "--timeout", "4"], capture_output=True, text=True)
        await (await newer.async_unregister_service(info))
        await newer.async_close()
        await adv.stop()
        print(json.dumps({"rc": run.returncode, "stdout": run.stdout, "stderr": run.stderr}))

    asyncio.run(main())
    """
)


def test_discover_lists_a_device_of_a_newer_protocol_as_not_usable_with_the_reason(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2)")
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    script = tmp_path / "discover.py"
    script.write_text(DISCOVER_SCRIPT)
    setup = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
    result = subprocess.run(["unshare", "-rn", "sh", "-c", f'{setup} && exec "$0" "$1" "$2" "$3"', sys.executable, str(script),
                             str(ROOT), str(protocol.PROTOCOL_VERSION)],
                            capture_output=True, text=True, timeout=90, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0 and "Traceback" not in out["stderr"], out
    rooms = {d["room"]: d for d in json.loads(out["stdout"])}
    assert set(rooms) == {"Room 4", "Room 9"}, rooms
    assert rooms["Room 4"]["usable"] is True and rooms["Room 4"]["reason"] == ""
    assert rooms["Room 9"]["usable"] is False and "update the app" in rooms["Room 9"]["reason"], rooms["Room 9"]
    assert rooms["Room 9"]["version"] == str(protocol.PROTOCOL_VERSION + 1)


# ---- the web app: compat.js applies the same rule --------------------------------------------------------------


def test_web_app_compat_js_applies_the_same_rule_in_node(tmp_path: Path) -> None:
    """tools/phone-web/test/compat.test.mjs runs compat.js on cases whose expected answers come from edge_agent.protocol."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node missing (apt-get install nodejs)")
    now = protocol.PROTOCOL_VERSION
    cases = []
    for oldest, newest in ((protocol.OLDEST_DEVICE_PROTOCOL, now), (1, 2), (2, 3)):
        for version in (0, 1, 2, 3, 4, now, now + 1):
            c = protocol.compatibility(version, oldest, newest)
            cases.append({"version": version, "oldest": oldest, "newest": newest, "usable": c.usable, "action": c.action})
    fixtures = tmp_path / "compat.json"
    fixtures.write_text(json.dumps({"protocol_version": now, "oldest": protocol.OLDEST_DEVICE_PROTOCOL, "cases": cases}))
    res = subprocess.run([node, "--test", str(ROOT / "tools" / "phone-web" / "test" / "compat.test.mjs")],
                         env={**os.environ, "EDGE_AGENT_COMPAT_CASES": str(fixtures)}, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "# fail 0" in res.stdout and "# pass 5" in res.stdout, res.stdout[-1500:]
    app = (ROOT / "tools" / "phone-web" / "src" / "device.js").read_text()
    assert "deviceCompatibility(" in app  # the app applies it where it reads the device's info
