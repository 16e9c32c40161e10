"""Issue 16, "every trust decision holds after the handshake": certificate validity per call, CRLs that must be
current and never older, a CRL that is mandatory, and a phone that checks the room, the CRL and what it opens.

Real device on loopback, real certificates from the project's CA code, the real phone client.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from edge_agent.crypto import ca, seal
from edge_agent.crypto.errors import CertificateError
from edge_agent.device.grpc.server import EdgeAgentServer
from edge_agent.errors import ConfigError
from edge_agent.phone import client as phone
from edge_agent.phone import commands as cli
from edge_agent.phone.discover import DiscoveredDevice
from edge_agent.phone.keys import ClientError, install_certificate, load_key_file, request_key_file, update_key_file
from edge_agent.proto.edge_agent.v1 import agent_pb2, agent_pb2_grpc
from tests.cli_runner import run_cli
from tests.delivery_fixtures import Pki, ServerThread, raw_channel, server_config
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller


def _crl(authority: ca.CertificateAuthority, number: int, next_update: dt.datetime, revoked: tuple[int, ...] = ()) -> bytes:
    """A CA-signed CRL with a chosen number and next update (what `ca crl` makes, with other dates)."""
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateRevocationListBuilder().issuer_name(authority.cert.subject)
        .last_update(min(now, next_update) - dt.timedelta(minutes=5)).next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    return builder.sign(authority.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _status(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined,no-any-return]
    return grpc.StatusCode.OK


# ---- certificate validity per call ----------------------------------------------------------------


def test_certificate_expiring_on_an_open_connection_is_refused_issue16(tmp_path: Path) -> None:
    """A connection opened before the certificate expired could still call StartVisit after it."""
    pki = Pki.make(tmp_path / "pki")
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        lifetime = dt.timedelta(seconds=4)
        keys = pki.issue_clinician_keys("short", valid_from=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1) + lifetime, days=1)
        loaded = load_key_file(keys)
        stub = agent_pb2_grpc.EdgeAgentStub(raw_channel(loaded, srv.port))
        assert stub.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=5).room == "Room 4"  # handshake done, valid
        not_after = x509.load_pem_x509_certificate(loaded.cert_pem.encode()).not_valid_after_utc
        time.sleep(max(0.0, (not_after - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.5)
        request = agent_pb2.StartVisitRequest(consent=True, sealing_public_key=loaded.sealing_public, room_code=srv.room_code())
        with pytest.raises(grpc.RpcError) as exc:  # same channel, same TLS connection
            stub.StartVisit(request, timeout=5)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in (exc.value.details() or "")
        assert srv.runner.started == 0
    finally:
        srv.stop()


def test_connection_age_is_bounded() -> None:
    from edge_agent.mtls.server import ServerLimits, grpc_options

    opts = dict(grpc_options(ServerLimits()))
    assert opts["grpc.max_connection_age_ms"] == 3_600_000 and opts["grpc.max_connection_age_grace_ms"] > 900_000
    assert opts["grpc.server_handshake_timeout_ms"] == 5000


# ---- CRLs: current, never older, mandatory ------------------------------------------------------------


def test_older_or_stale_crl_cannot_let_a_revoked_clinician_back_in_issue16(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    first = pki.crl.read_bytes()  # CRL number 1
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        phone.device_info(pki.keys_b, srv.target)
        ca.revoke(pki.authority, load_key_file(pki.keys_b).pseudonym)  # CRL number 2
        time.sleep(1.2)
        with pytest.raises(ClientError, match="revoked"):
            phone.device_info(pki.keys_b, srv.target)
        # an older CA-signed CRL swapped in: ignored, the revocation stays
        pki.crl.write_bytes(first)
        time.sleep(1.2)
        with pytest.raises(ClientError, match="revoked"):
            phone.device_info(pki.keys_b, srv.target)
        # a newer-numbered but out-of-date CRL without the revocation: ignored too
        pki.crl.write_bytes(_crl(pki.authority, 50, dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)))
        time.sleep(1.2)
        with pytest.raises(ClientError, match="revoked"):
            phone.device_info(pki.keys_b, srv.target)
        assert phone.device_info(pki.keys_a, srv.target).room == "Room 4"
        # the held CRL running out while no newer one arrives: nothing is trusted
        soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
        b_serial = x509.load_pem_x509_certificate(load_key_file(pki.keys_b).cert_pem.encode()).serial_number
        pki.crl.write_bytes(_crl(pki.authority, 60, soon, (b_serial,)))
        time.sleep(1.2)
        stub = agent_pb2_grpc.EdgeAgentStub(raw_channel(pki.clinician_a, srv.port))
        assert _status(lambda: stub.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=5)) == grpc.StatusCode.OK
        time.sleep(max(0.0, (soon - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.3)
        with pytest.raises(grpc.RpcError) as exc:
            stub.GetDeviceInfo(agent_pb2.GetDeviceInfoRequest(), timeout=5)
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "revocation list expired" in (exc.value.details() or "")
    finally:
        srv.stop()
    # a restart does not accept an older CRL than the one already used (the number is kept in the data dir)
    pki.crl.write_bytes(first)
    with pytest.raises(CertificateError, match="older than number 60"):
        EdgeAgentServer(server_config(pki, tmp_path / "data"), ScriptedVisitRunner(), SpectralVoiceEnroller())
    # nor one past its next update
    pki.crl.write_bytes(_crl(pki.authority, 70, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    with pytest.raises(CertificateError, match="out of date"):
        EdgeAgentServer(server_config(pki, tmp_path / "data"), ScriptedVisitRunner(), SpectralVoiceEnroller())


def test_ca_crl_refresh_numbers_up(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca")
    one = ca.read_crl(tmp_path / "ca" / ca.CRL, authority.cert)
    out = run_cli("ca", "crl", "--ca-dir", str(tmp_path / "ca"), "--json")
    assert out.returncode == 0, out.stderr
    two = ca.read_crl(tmp_path / "ca" / ca.CRL, authority.cert)
    assert two.number == one.number + 1 and two.next_update >= one.next_update


def test_serve_refuses_to_start_without_a_crl_issue16(tmp_path: Path) -> None:
    authority = ca.init_ca(tmp_path / "ca")
    ca.issue_device(authority, "Room 4", tmp_path / "device.pem")
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nroom = "Room 4"\nbundle = "{tmp_path / "device.pem"}"\ncrl = ""\nadvertise = false\n'
                      f'[outbox]\npath = "{tmp_path / "state"}"\n')
    out = run_cli("serve", "--config", str(config), timeout=120)
    assert out.returncode != 0 and "server.crl is not set" in out.stderr and "Traceback" not in out.stderr
    assert len([ln for ln in out.stderr.splitlines() if ln.strip()]) == 1


def test_device_room_must_be_the_certified_room(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    with pytest.raises(ConfigError, match="issued for 'Room 4'"):
        EdgeAgentServer(replace(server_config(pki, tmp_path / "data"), room="Room 5"), ScriptedVisitRunner(), SpectralVoiceEnroller())


# ---- the phone ----------------------------------------------------------------------------------------


def test_phone_learns_the_crl_and_refuses_a_revoked_device_issue16(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    ca.issue_device(pki.authority, "Room 5", tmp_path / "room5.pem", ips=("127.0.0.1",))
    stale_copy = tmp_path / "room4-crl.pem"  # the revoked device keeps serving the CRL from before its revocation
    shutil.copy(pki.crl, stale_copy)
    room4 = ServerThread(replace(server_config(pki, tmp_path / "d4"), crl=stale_copy)).start()
    room5 = ServerThread(replace(server_config(pki, tmp_path / "d5"), bundle=tmp_path / "room5.pem", room="Room 5")).start()
    try:
        assert phone.device_info(pki.keys_a, room4.target).room == "Room 4"
        assert load_key_file(pki.keys_a).crl_pem  # the phone keeps the CRL the device handed over
        ca.revoke(pki.authority, str(ca.identity_of(ca.load_bundle(pki.device).cert).serial))  # IT revokes room 4's device
        time.sleep(1.2)
        phone.device_info(pki.keys_a, room5.target)  # any honest device hands the phone the newer CRL
        with pytest.raises(ClientError, match="revoked by the site"):
            phone.device_info(pki.keys_a, room4.target)
        # a phone that has met no other device gets the CRL from IT
        fresh = pki.issue_clinician_keys("fresh")
        assert cli.phone_crl(fresh, pki.crl)["installed"]
        with pytest.raises(ClientError, match="revoked by the site"):
            phone.start(fresh, room4.target, room_code=room4.room_code())
    finally:
        room4.stop()
        room5.stop()


def test_phone_checks_the_certified_room_not_mdns_issue16(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    ca.issue_device(pki.authority, "Room 5", tmp_path / "room5.pem", ips=("127.0.0.1",))
    ca.issue_device(pki.authority, "Room 4", tmp_path / "room4b.pem", ips=("127.0.0.1",))
    room5 = ServerThread(replace(server_config(pki, tmp_path / "d5"), bundle=tmp_path / "room5.pem", room="Room 5")).start()
    twin = ServerThread(replace(server_config(pki, tmp_path / "d4b"), bundle=tmp_path / "room4b.pem")).start()
    real = ServerThread(server_config(pki, tmp_path / "d4")).start()
    try:
        # mDNS (unauthenticated) says "Room 4" with room 5's fingerprint: it only picks an address
        spoofed = DiscoveredDevice("x", "Room 4", "1", room5.server.fingerprint, room5.port, ("127.0.0.1",))  # type: ignore[union-attr]
        target = spoofed.target(room="Room 4")
        assert target.fingerprint is None and target.room == "Room 4"
        with pytest.raises(ClientError, match="certified for 'Room 5', not 'Room 4'"):
            phone.start(pki.keys_a, target, room_code=room5.room_code())
        # a fingerprint pinned at provisioning: another Room 4 certificate (same CA) is refused
        cli.phone_pin(pki.keys_a, "Room 4", real.server.fingerprint)  # type: ignore[union-attr]
        with pytest.raises(ClientError, match="does not match the expected"):
            phone.device_info(pki.keys_a, phone.Target("127.0.0.1", twin.port, None, "Room 4"))
        assert phone.device_info(pki.keys_a, phone.Target("127.0.0.1", real.port, None, "Room 4")).room == "Room 4"
    finally:
        for s in (room5, twin, real):
            s.stop()


def test_phone_install_trusts_only_the_site_ca_issue16(tmp_path: Path) -> None:
    site = ca.init_ca(tmp_path / "site")
    rogue = ca.init_ca(tmp_path / "rogue")
    # pinned at request time (the CA certificate IT hands out, checked against its published fingerprint)
    request_key_file(tmp_path / "a.json", tmp_path / "a.req", site_ca=tmp_path / "site" / ca.CA_CERT,
                     ca_fingerprint=ca.fingerprint(site.cert))
    ca.sign_clinician_request(rogue, tmp_path / "a.req", tmp_path / "a-rogue.pem")
    with pytest.raises(ClientError, match="signed by another CA"):
        install_certificate(tmp_path / "a.json", tmp_path / "a-rogue.pem")
    ca.sign_clinician_request(site, tmp_path / "a.req", tmp_path / "a-site.pem")
    assert install_certificate(tmp_path / "a.json", tmp_path / "a-site.pem").pseudonym.startswith("c-")
    # not pinned: the fingerprint must be given, and must match
    request_key_file(tmp_path / "b.json", tmp_path / "b.req")
    ca.sign_clinician_request(rogue, tmp_path / "b.req", tmp_path / "b-rogue.pem")
    with pytest.raises(ClientError, match="does not know the site CA"):
        install_certificate(tmp_path / "b.json", tmp_path / "b-rogue.pem")
    with pytest.raises(ClientError, match="not the site's"):
        install_certificate(tmp_path / "b.json", tmp_path / "b-rogue.pem", ca_fingerprint=ca.fingerprint(site.cert))
    with pytest.raises(ClientError, match="does not match the site CA fingerprint"):
        request_key_file(tmp_path / "c.json", tmp_path / "c.req", site_ca=tmp_path / "rogue" / ca.CA_CERT,
                         ca_fingerprint=ca.fingerprint(site.cert))


def test_phone_checks_visit_id_and_sequence_of_what_it_opens_issue16(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    srv = ServerThread(server_config(pki, tmp_path / "data")).start()
    try:
        visit = phone.start(pki.keys_a, srv.target, room_code=srv.room_code())
        phone.stop(pki.keys_a, srv.target)
        outbox = srv.server.outbox  # type: ignore[union-attr]
        env = outbox.fetch(load_key_file(pki.keys_a).pseudonym)[0].envelope  # type: ignore[union-attr]
        [report] = phone.feedback(pki.keys_a, srv.target)
        assert report.visit_id == visit
        me = load_key_file(pki.keys_a)
        # the device re-delivers the same sealed report under a new id: a replay
        outbox.put(me.pseudonym, env)  # type: ignore[union-attr]
        with pytest.raises(ClientError, match="replayed"):
            phone.feedback(pki.keys_a, srv.target)
        outbox.ack(me.pseudonym, [i.id for i in outbox.fetch(me.pseudonym)])  # type: ignore[union-attr]
        # a report sealed to my key for a visit I never started (the device knows my public key)
        outbox.put(me.pseudonym, seal.seal(b"", seal.load_public_key(me.sealing_public), "v-made-up", 1))  # type: ignore[union-attr]
        with pytest.raises(ClientError, match="did not start or claim"):
            phone.feedback(pki.keys_a, srv.target)
        outbox.ack(me.pseudonym, [i.id for i in outbox.fetch(me.pseudonym)])  # type: ignore[union-attr]
        # my visit, under another sequence number than a report's
        outbox.put(me.pseudonym, seal.seal(b"", seal.load_public_key(me.sealing_public), visit, 2))  # type: ignore[union-attr]
        with pytest.raises(ClientError, match="sequence number 2"):
            phone.feedback(pki.keys_a, srv.target)
    finally:
        srv.stop()


def test_phone_without_a_current_crl_refuses(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    stale = tmp_path / "stale.pem"
    stale.write_bytes(_crl(pki.authority, 9, dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)))
    srv = ServerThread(replace(server_config(pki, tmp_path / "data"), crl=stale)).start()
    try:
        time.sleep(2.5)  # the device's CRL is now out of date and no phone has a newer one
        with pytest.raises(ClientError):
            phone.device_info(pki.keys_a, srv.target)
        with update_key_file(pki.keys_a) as keys:
            assert not keys.crl_pem or phone.held_crl(keys) is None
    finally:
        srv.stop()


@pytest.mark.parametrize("when", ["expired", "not yet valid"])
def test_device_certificate_out_of_its_dates_is_said_on_both_sides(tmp_path: Path, when: str, caplog: pytest.LogCaptureFixture) -> None:
    """The device's own certificate expired (or the clock is behind it): the daemon says so in its journal at
    start, and the phone is told the device's certificate is out of date - not that it is 'not from this site's CA'."""
    import logging

    pki = Pki.make(tmp_path / "pki")
    now = dt.datetime.now(dt.timezone.utc)
    start = now - dt.timedelta(days=40) if when == "expired" else now + dt.timedelta(days=3)
    ca.issue_device(pki.authority, "Room 4", tmp_path / "dated.pem", ips=("127.0.0.1",), days=30, valid_from=start)
    with caplog.at_level(logging.ERROR, logger="edge_agent"):
        srv = ServerThread(replace(server_config(pki, tmp_path / "data"), bundle=tmp_path / "dated.pem")).start()
    try:
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert "device certificate" in logged and ("expired" in logged if when == "expired" else "not valid until" in logged), logged
        with pytest.raises(ClientError) as exc:
            phone.device_info(pki.keys_a, srv.target)
        message = exc.value.message
        assert "not from this site's CA" not in message and "IT" in message, message
        assert ("expired" in message) if when == "expired" else ("not valid yet" in message), message
    finally:
        srv.stop()
