"""mDNS inside a private network namespace the test makes (never touches a real network)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_agent.device import mdns
from edge_agent.errors import ConfigError
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, subprocess, sys, threading, time
    sys.path.insert(0, sys.argv[1])
    from zeroconf import ServiceBrowser, ServiceListener, Zeroconf
    from edge_agent.phone.discover import discover
    from edge_agent.device.mdns import SERVICE_TYPE, Advertiser

    FP = "ab" * 32
    out = {}

    async def main():
        adv = Advertiser(room="Room 4", port=50443, fingerprint=FP, interfaces=["127.0.0.1"], poll_s=0.2)
        await adv.start()
        found = await asyncio.to_thread(discover, 3.0, ["127.0.0.1"], 1)
        out["first"] = [d.__dict__ for d in found]
        zc = Zeroconf(interfaces=["127.0.0.1"])
        info = await asyncio.to_thread(zc.get_service_info, SERVICE_TYPE, found[0].name, 3000)
        out["txt_keys"] = sorted(k.decode() for k in info.properties)
        # Address change: the advertiser notices and re-announces.
        subprocess.run(["ip", "addr", "add", "10.77.0.1/24", "dev", "lo"], check=True)
        for _ in range(50):
            await asyncio.sleep(0.1)
            if adv.announcements >= 2:
                break
        out["announcements"] = adv.announcements
        again = await asyncio.to_thread(discover, 3.0, ["127.0.0.1"], 1)
        out["after_change"] = [list(d.addresses) for d in again]
        # Withdraw: a live browser sees the service go away.
        removed = threading.Event()
        class L(ServiceListener):
            def add_service(self, *a): pass
            def update_service(self, *a): pass
            def remove_service(self, *a): removed.set()
        browser = ServiceBrowser(zc, SERVICE_TYPE, listener=L())
        await asyncio.sleep(1.0)
        await adv.stop()
        out["withdrawn"] = await asyncio.to_thread(removed.wait, 5)
        browser.cancel()
        zc.close()

    asyncio.run(main())
    print(json.dumps(out))
    """
)


def test_txt_record_holds_exactly_three_keys() -> None:
    record = mdns.txt_record("Room 4", "ab" * 32)
    assert set(record) == {"v", "room", "fp"}
    assert len(mdns.instance_name("ab" * 32).split(".")[0]) <= 63
    with pytest.raises(ConfigError, match="room label"):
        mdns.txt_record("r" * 300, "ab" * 32)


def test_advertise_discover_reannounce_withdraw_in_netns(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2)")
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    setup = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
    result = subprocess.run(
        ["unshare", "-rn", "sh", "-c", f'{setup} && exec "$0" -c "$1" "$2"', sys.executable, SCRIPT, str(ROOT)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    (dev,) = out["first"]
    assert dev["room"] == "Room 4" and dev["fingerprint"] == "ab" * 32 and dev["version"] == "1"
    assert dev["port"] == 50443 and "127.0.0.1" in dev["addresses"]
    assert out["txt_keys"] == ["fp", "room", "v"]
    assert out["announcements"] >= 2
    assert out["after_change"] == [["10.77.0.1"]]
    assert out["withdrawn"] is True


NO_NETWORK_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, subprocess, sys
    sys.path.insert(0, sys.argv[1])
    from edge_agent.phone.discover import discover
    from edge_agent.device.mdns import Advertiser

    out = {}

    async def main():
        adv = Advertiser(room="Room 4", port=50443, fingerprint="ab" * 32, poll_s=0.2)
        await adv.start()  # no interface is up: must not raise
        out["at_start"] = adv.announcements
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)  # the network comes up later
        for _ in range(50):
            await asyncio.sleep(0.1)
            if adv.announcements >= 1:
                break
        out["later"] = adv.announcements
        found = await asyncio.to_thread(discover, 3.0, ["127.0.0.1"], 1)
        out["found"] = len(found)
        await adv.stop()

    asyncio.run(main())
    print(json.dumps(out))
    """
)


def _netns_or_skip() -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2)")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")


def test_no_network_at_start_the_device_advertises_once_it_comes_up(tmp_path: Path) -> None:
    """A room device booting with no interface up used to die with 'internal error (RuntimeError: No interfaces
    to listen on)'; it keeps serving and advertises as soon as an interface is up."""
    _netns_or_skip()
    script = tmp_path / "nonet.py"
    script.write_text(NO_NETWORK_SCRIPT)
    run = subprocess.run(["unshare", "-rn", sys.executable, str(script), str(ROOT)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["at_start"] == 0 and out["later"] >= 1 and out["found"] == 1, out


def test_phone_discover_without_network_is_one_line(tmp_path: Path) -> None:
    """Wi-Fi off: one line that says what to do, no zeroconf tracebacks, no internal error."""
    _netns_or_skip()
    run = subprocess.run(["unshare", "-rn", sys.executable, "-m", "edge_agent.cli", "phone", "discover", "--timeout", "1"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode == 2 and "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    assert len(lines) == 1 and "--device" in lines[0], run.stderr


def test_doctor_mdns_check_without_network_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    """No interface up: the doctor said 'check crashed (RuntimeError) - report this as a bug'."""
    _netns_or_skip()
    code = f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); from edge_agent.site.doctor import check_mdns; print(json.dumps(check_mdns('ab' * 32, 1.0).__dict__))"
    run = subprocess.run(["unshare", "-rn", sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    check = json.loads(run.stdout.strip().splitlines()[-1])
    assert not check["ok"] and "network interface" in check["message"] and "bug" not in check["fix"], check


def test_phone_discover_finding_nothing_says_so(tmp_path: Path) -> None:
    """An empty network: the text output used to be nothing at all (exit 0), indistinguishable from a hang-up."""
    _netns_or_skip()
    run = subprocess.run(["unshare", "-rn", "sh", "-c", f"ip link set lo up && {sys.executable} -m edge_agent.cli phone discover --timeout 1"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0 and "no room devices answered" in run.stderr and "--device" in run.stderr, (run.stdout, run.stderr)
