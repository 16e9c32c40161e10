"""Runs INSIDE the container booted by tests/system/test_systemd_live.py, as a oneshot unit after boot.

Installs the wheel into /opt/edge-agent/venv as docs/operations.md says, provisions the
device with `edge-agent provision`, installs systemd/edge-agent.service, then drives the live
unit with systemctl and records what it saw in /results/results.json; powers off at the end.
Standard library only (the container's /usr/bin/python3).

Inputs in /systemtest: the wheel, device.pem, crl.pem, phone.json (clinician key file),
params.json (port, metrics_port).
"""

from __future__ import annotations

import glob
import json
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

IN = Path("/systemtest")
OUT = Path("/results")
VENV = Path("/opt/edge-agent/venv")
EDGE = str(VENV / "bin" / "edge-agent")
UNIT = "edge-agent.service"
results: dict[str, object] = {"steps": []}


def sh(cmd: str, check: bool = True, timeout: float = 300) -> str:
    started = time.monotonic()
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
    results["steps"].append({"cmd": cmd, "rc": proc.returncode, "s": round(time.monotonic() - started, 2),  # type: ignore[union-attr]
                             "err": proc.stderr[-400:]})
    if check and proc.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed ({proc.returncode}): {proc.stderr[-1500:]}{proc.stdout[-500:]}")
    return proc.stdout


def show(*props: str) -> dict[str, str]:
    out = sh(f"systemctl show {UNIT} " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(pred, timeout: float, step: float = 0.5):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return None


def install(params: dict[str, int]) -> None:
    # --- the package, as docs/operations.md "Install on a device" (dependencies from the host, read-only) ---
    sh(f"python3 -m venv --without-pip {VENV}")
    site = glob.glob(str(VENV / "lib" / "python3*" / "site-packages"))[0]
    Path(site, "host-deps.pth").write_text("/opt/host-site-packages\n")
    wheel = glob.glob(str(IN / "*.whl"))[0]
    sh(f"{VENV}/bin/python -m pip install --no-deps --no-index --no-compile -q {wheel}")
    sh("useradd --system --no-create-home --shell /usr/sbin/nologin --groups audio edge-agent")
    sh(f"install -m 0644 {IN}/edge-agent.service /etc/systemd/system/")
    # --- provisioning, the real command ---
    sh(f"{EDGE} provision --room 'Room 4' --bundle {IN}/device.pem --crl {IN}/crl.pem")
    # --- test-only drop-in: no microphone in a container (replay the bundled visit), loopback ports,
    #     the fault hook, and a sandbox probe that runs in the unit's own sandbox before the daemon ---
    replay = sh(f"{VENV}/bin/python -c 'from edge_agent.data import bundled; print(bundled())'").strip()
    probe = (
        "/bin/sh -c '"
        "for p in /etc/edge-agent/x /etc/x /opt/edge-agent/x /usr/x /root/x /home/x /var/lib/x /var/log/x /srv/x; do "
        "if touch $p 2>/dev/null; then echo PROBE write $p allowed; rm -f $p; else echo PROBE write $p denied; fi; done; "
        "if touch /var/lib/edge-agent/.probe; then echo PROBE write state allowed; rm -f /var/lib/edge-agent/.probe; "
        "else echo PROBE write state denied; fi; "
        "echo PROBE nofile $(ulimit -n) core $(ulimit -c) user $(id -un) "
        "'"
    )
    Path("/etc/systemd/system/edge-agent.service.d").mkdir(parents=True, exist_ok=True)
    Path("/etc/systemd/system/edge-agent.service.d/systemtest.conf").write_text(
        "[Service]\n"
        "ExecStart=\n"
        f"ExecStart={EDGE} serve --config /etc/edge-agent/config.toml --replay {replay}\n"
        f"ExecStartPre={probe}\n"
        f"Environment=EDGE_AGENT_SERVER__HOST=127.0.0.1 EDGE_AGENT_SERVER__PORT={params['port']} "
        "EDGE_AGENT_SERVER__ADVERTISE=false EDGE_AGENT_METRICS__ENABLED=true "
        f"EDGE_AGENT_METRICS__PORT={params['metrics_port']} EDGE_AGENT_FAULT_INJECTION=hang-on-sigusr2\n"
    )
    sh("systemctl daemon-reload")


def journal(since_cursor: str = "") -> str:
    return sh(f"journalctl -u {UNIT} -o cat --no-pager" + (f" --after-cursor='{since_cursor}'" if since_cursor else ""), check=False)


def main() -> None:
    params = json.loads((IN / "params.json").read_text())
    t0 = time.monotonic()
    install(params)
    results["install_s"] = round(time.monotonic() - t0, 1)

    # --- Type=notify: `systemctl start` returns only after READY=1 (models loaded, server listening) ---
    t0 = time.monotonic()
    sh(f"systemctl start {UNIT}", timeout=200)
    results["start_to_ready_s"] = round(time.monotonic() - t0, 1)
    st = show("ActiveState", "SubState", "Type", "NotifyAccess", "MainPID", "WatchdogUSec", "StatusText", "NRestarts",
              "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic", "LimitNOFILE")
    results["after_start"] = st
    pid = st["MainPID"]
    results["proc_limits_nofile"] = [line for line in Path(f"/proc/{pid}/limits").read_text().splitlines() if "open files" in line]
    status = Path(f"/proc/{pid}/status").read_text()
    results["proc_status"] = {k: v.strip() for k, v in (line.split(":", 1) for line in status.splitlines())
                              if k in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp", "Uid", "VmLck")}
    # port answers (TLS) and the metrics endpoint too, from outside the sandbox
    env = (f"EDGE_AGENT_SERVER__HOST=127.0.0.1 EDGE_AGENT_SERVER__PORT={params['port']} EDGE_AGENT_METRICS__ENABLED=true "
           f"EDGE_AGENT_METRICS__PORT={params['metrics_port']}")
    results["doctor"] = json.loads(sh(f"{env} {EDGE} doctor --skip audio --skip mdns --skip cpu --skip models --json "
                                      "--config /etc/edge-agent/config.toml", check=False) or "{}")

    # --- live exposure score of the installed unit (with its drop-in) ---
    sec = sh(f"systemd-analyze security {UNIT} --no-pager", check=False)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", sec)
    results["exposure"] = float(m.group(1)) if m else None
    results["exposure_text"] = sec[-3000:]

    # --- a real visit through the sandboxed daemon: phone start, stop, feedback ---
    keys = "/root/phone.json"
    sh(f"install -m 0600 {IN}/phone.json {keys}")
    target = f"--device 127.0.0.1:{params['port']}"
    # presence: the phone names the room it is in and gives the code printed on that room's device
    code = json.loads(sh(f"{EDGE} device room-code --json"))["code"]
    out = sh(f"{EDGE} phone start --keys {keys} {target} --room 'Room 4' --room-code {code} 2>&1")
    results["phone_start"] = out[-300:]
    time.sleep(12)
    results["phone_stop"] = sh(f"{EDGE} phone stop --keys {keys} {target} 2>&1")[-300:]
    results["phone_feedback"] = sh(f"{EDGE} phone feedback --keys {keys} {target} 2>&1")[-1500:]
    phone_state = json.loads(Path(keys).read_text())
    results["ids"] = [phone_state["pseudonym"]]

    # --- the watchdog: hang the event loop; systemd must kill and restart the daemon ---
    before = show("MainPID", "NRestarts")
    t0 = time.monotonic()
    sh(f"kill -USR2 {before['MainPID']}")
    restarted = wait_for(lambda: (s := show("MainPID", "NRestarts", "ActiveState"))["NRestarts"] != before["NRestarts"]
                         and s["ActiveState"] == "active" and s, timeout=150, step=1.0)
    results["watchdog"] = {"before": before, "after": restarted, "seconds": round(time.monotonic() - t0, 1)}

    # --- stop cleanly (SIGTERM path) ---
    sh(f"systemctl stop {UNIT}", timeout=90)
    results["after_stop"] = show("ActiveState", "Result", "ExecMainStatus")
    results["journal"] = journal()
    results["journal_system"] = sh("journalctl -o cat --no-pager -b | grep -iE 'edge-agent|watchdog' | tail -40", check=False)


if __name__ == "__main__":
    try:
        main()
        results["ok"] = True
    except Exception as exc:  # noqa: BLE001 - the host test reads the reason
        results["ok"] = False
        results["error"] = f"{type(exc).__name__}: {exc}"
        results["traceback"] = traceback.format_exc()[-3000:]
        results["journal"] = journal()
    OUT.joinpath("results.json").write_text(json.dumps(results, indent=1))
    subprocess.run(["systemctl", "poweroff", "--no-block"])
    sys.exit(0)
