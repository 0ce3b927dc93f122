"""The DC simulator as the bench runs it: `python -m sim.dc prepare`, then `serve`, over real HTTPS."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from broker.credentials.cloud_sam_file import CloudSamFile, parse_cloud_sam_file
from broker.credentials.virtual_hc_token import load_issuers, verify_token
from broker.dc.client import HttpsDataCenter
from broker.dc.seam import DcError
from contract.status_codes import StatusCode
from sim.dc import BENCH_SAM_ID
from sim.dc.server import JsonRequestHandler, LoopbackHttpsServer
from sim.dc.service import Reply
from sim.dc.state import StateDir
from sim.dc.tls import client_context, server_context
from sim.pki import bench_pki
from tests.integration.console import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run_sim_dc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim.dc", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )


@dataclass
class RunningDc:
    port: int
    state_dir: Path
    context: ssl.SSLContext
    log: Path

    def connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("localhost", self.port, context=self.context, timeout=10)

    def call(
        self, method: str, path: str, body: object = None, session: str | None = None
    ) -> tuple[int, dict[str, object]]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if session is not None:
            headers["Authorization"] = f"Bearer {session}"
        connection = self.connection()
        try:
            connection.request(method, path, None if body is None else json.dumps(body), headers)
            response = connection.getresponse()
            assert response.getheader("Content-Type", "").startswith("application/json")
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def login(self, sam_file: CloudSamFile) -> dict[str, object]:
        status, challenge = self.call("POST", "/dc/v1/Sam/Challenge", {"samId": sam_file.sam_id})
        assert status == 200, challenge
        nonce = base64.b64decode(str(challenge["nonce"]))
        body = {
            "samId": sam_file.sam_id,
            "nonce": challenge["nonce"],
            "signature": b64(sam_file.login_signature(nonce)),
        }
        status, login = self.call("POST", "/dc/v1/Sam/Login", body)
        assert status == 200, login
        return login


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _answers(running: RunningDc, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"the DC simulator exited with {process.returncode}: {running.log.read_text()}")
    try:
        status, _ = running.call("GET", f"/sim/v1/Sams/{BENCH_SAM_ID}")
    except (ConnectionError, OSError):
        return False
    return status == 200


@pytest.fixture
def dc(tmp_path: Path) -> Iterator[RunningDc]:
    state_dir = tmp_path / "dc"
    run_sim_dc("prepare", "--state-dir", str(state_dir))
    port = free_port()
    log = tmp_path / "dc.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "sim.dc", "serve", "--state-dir", str(state_dir), "--port", str(port)],
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = RunningDc(port, state_dir, client_context(state_dir), log)
    try:
        wait_for(lambda: _answers(running, process), timeout=30, what="the DC simulator to answer")
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.timeout(60)
def test_prepare_twice_keeps_the_same_state(tmp_path: Path) -> None:
    state_dir = tmp_path / "dc"
    run_sim_dc("prepare", "--state-dir", str(state_dir))
    files = {
        name: (state_dir / name).read_bytes()
        for name in (
            "bench-sam.sam",
            "ca.pem",
            "server.pem",
            "sam-ca.pem",
            "hca-trust.pem",
            "vhc-issuer.pem",
            "vhc-issuer.key",
        )
    }
    run_sim_dc("prepare", "--state-dir", str(state_dir))
    assert {name: (state_dir / name).read_bytes() for name in files} == files
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir / "bench-sam.sam").stat().st_mode) == 0o600
    assert stat.S_IMODE((state_dir / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((state_dir / "vhc-issuer.key").stat().st_mode) == 0o600
    assert parse_cloud_sam_file(files["bench-sam.sam"]).sam_id == BENCH_SAM_ID


@pytest.mark.timeout(60)
def test_the_bench_sam_logs_in_and_reads_the_time_over_https(dc: RunningDc) -> None:
    sam_file = parse_cloud_sam_file((dc.state_dir / "bench-sam.sam").read_bytes())
    login = dc.login(sam_file)
    assert login["hospitalId"] == "777777777" and login["hospitalName"] == "測試機構"
    status, time = dc.call("GET", "/dc/v1/Time", session=str(login["session"]))
    assert status == 200 and str(time["serverTime"]).endswith("+08:00")
    status, refused = dc.call("GET", "/dc/v1/Time")
    assert status == 401 and refused["error"] == "sessionExpired"
    status, _ = dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 3600})
    assert status == 200
    status, refused = dc.call("GET", "/dc/v1/Time", session=str(login["session"]))
    assert status == 401 and refused["error"] == "sessionExpired"


@pytest.mark.timeout(60)
def test_the_console_client_gets_the_bench_hca_crl_over_https(dc: RunningDc) -> None:
    client = HttpsDataCenter(f"https://127.0.0.1:{dc.port}", dc.state_dir / "ca.pem")
    (der,) = client.hca_crls()
    crl = x509.load_der_x509_crl(der)
    pki = bench_pki()
    assert crl.issuer == pki.issuing_ca.certificate.subject
    assert crl.get_revoked_certificate_by_serial_number(pki.staff["hpc-revoked"].certificate.serial_number) is not None
    # Faults count it like any /dc/v1/ call; the client retries it once.
    status, _ = dc.call("POST", "/sim/v1/Faults", {"statusCode": 1702, "count": 1})
    assert status == 200
    assert client.hca_crls() == [der]
    assert "GET /dc/v1/Crl 503" in dc.log.read_text()


@pytest.mark.timeout(60)
def test_the_console_client_verifies_moves_and_reads_notes_over_https(dc: RunningDc) -> None:
    """A bench token verified by the console's verifier, counted, exported, imported and counted again; card notes."""
    client = HttpsDataCenter(f"https://127.0.0.1:{dc.port}", dc.state_dir / "ca.pem")
    sam_file = parse_cloud_sam_file((dc.state_dir / "bench-sam.sam").read_bytes())
    nonce = client.sam_challenge(sam_file.sam_id)
    session = client.sam_login(sam_file.sam_id, nonce, sam_file.login_signature(nonce)).token
    status, issued = dc.call("POST", "/sim/v1/VirtualHc/Token", {"profile": "hc-basic", "maxUses": 2})
    assert status == 200
    status, clock = dc.call("POST", "/sim/v1/Clock", {"advanceSeconds": 0})
    assert status == 200
    now = int(dt.datetime.fromisoformat(str(clock["serverTime"])).timestamp())
    token = verify_token(
        str(issued["token"]), issuers=load_issuers((dc.state_dir / "vhc-issuer.pem").read_bytes()), now=now
    )
    assert token.card_id == "900000000711" and token.max_uses == 2

    assert client.virtual_hc_verify(session, token.token_id, token.max_uses, token.expires_at) == 1
    card = {
        "cardId": token.card_id,
        "name": token.name,
        "idNo": token.id_no,
        "birthday": token.birthday,
        "sex": token.sex,
        "identityStatus": token.identity_status,
    }
    transfer = client.virtual_hc_export(session, token.token_id, card, token.expires_at, token.max_uses)
    with pytest.raises(DcError) as raised:
        client.virtual_hc_verify(session, token.token_id, token.max_uses, token.expires_at)
    assert (raised.value.code, raised.value.reason) == (StatusCode.TRANSFER_DONE_OR_VOID, "virtualCardVoid")
    imported = client.virtual_hc_import(session, transfer)
    assert imported.card == card and imported.token_id != token.token_id
    assert (imported.expires_at, imported.max_uses) == (token.expires_at, 2)
    assert client.virtual_hc_verify(session, imported.token_id, imported.max_uses, imported.expires_at) == 1
    with pytest.raises(DcError) as raised:
        client.virtual_hc_import(session, transfer)
    assert (raised.value.code, raised.value.reason) == (StatusCode.TRANSFER_USED_ELSEWHERE, "transferUsed")

    notes = client.card_notes(session, "900000000711")
    assert notes.startswith(b"NHI-SIM-NOTES v1 900000000711 ") and len(notes) == 38
    log = dc.log.read_text()
    assert "POST /dc/v1/VirtualHc/Import 200" in log and "POST /dc/v1/VirtualHc/Import 409" in log
    for secret in (transfer, *transfer.split("."), str(issued["token"])[:40], token.name, token.id_no, session):
        assert secret not in log


@pytest.mark.timeout(60)
def test_fault_1700_closes_the_connection_without_an_answer(dc: RunningDc) -> None:
    status, _ = dc.call("POST", "/sim/v1/Faults", {"statusCode": 1700, "count": 1})
    assert status == 200
    connection = dc.connection()
    try:
        connection.request(
            "POST", "/dc/v1/Sam/Challenge", json.dumps({"samId": BENCH_SAM_ID}), {"Content-Type": "application/json"}
        )
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            connection.getresponse()
    finally:
        connection.close()
    status, challenge = dc.call("POST", "/dc/v1/Sam/Challenge", {"samId": BENCH_SAM_ID})
    assert status == 200 and "nonce" in challenge


@pytest.mark.timeout(60)
def test_keep_alive_serves_several_requests_on_one_connection(dc: RunningDc) -> None:
    connection = dc.connection()
    try:
        for _ in range(3):
            connection.request("GET", f"/sim/v1/Sams/{BENCH_SAM_ID}")
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["samId"] == BENCH_SAM_ID
    finally:
        connection.close()


@pytest.mark.timeout(60)
def test_a_bench_issued_sam_file_parses_and_logs_in(dc: RunningDc) -> None:
    status, issued = dc.call(
        "POST", "/sim/v1/CloudSam", {"samId": "901000000054", "hospitalId": "1234567890", "contract": "active"}
    )
    assert status == 200
    sam_file = parse_cloud_sam_file(base64.b64decode(str(issued["cloudSamContext"])))
    assert (sam_file.sam_id, sam_file.hospital_id, sam_file.hospital_name) == ("901000000054", "1234567890", "測試機構")
    session = str(dc.login(sam_file)["session"])
    card_number = "900000000711"
    status, challenge = dc.call(
        "POST", "/dc/v1/Cards/Challenge", {"cardNumber": card_number, "cardChallenge": b64(bytes(8))}, session
    )
    assert status == 200
    status, refused = dc.call(
        "POST", "/sim/v1/CloudSam", {"samId": "1", "hospitalId": "1234567890", "contract": "active"}
    )
    assert status == 400 and set(refused) == {"message"}
    status, unknown = dc.call("GET", "/elsewhere")
    assert status == 404 and "message" in unknown
    # The log has method, path and status; never a session, a nonce, a card number or a key.
    log = dc.log.read_text()
    assert "POST /dc/v1/Sam/Login 200" in log
    for secret in (session, card_number, str(issued["cloudSamContext"])[:40], str(challenge["authId"])):
        assert secret not in log


@pytest.mark.timeout(60)
def test_the_server_is_only_trusted_through_its_own_ca(dc: RunningDc) -> None:
    connection = http.client.HTTPSConnection("localhost", dc.port, context=ssl.create_default_context(), timeout=10)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            connection.request("GET", "/dc/v1/Time")
    finally:
        connection.close()
    for host in ("127.0.0.1", "localhost"):
        ip_connection = http.client.HTTPSConnection(host, dc.port, context=dc.context, timeout=10)
        try:
            ip_connection.request("GET", f"/sim/v1/Sams/{BENCH_SAM_ID}")
            assert ip_connection.getresponse().status == 200
        finally:
            ip_connection.close()
    assert os.path.exists(dc.state_dir / "ca.pem")


class _NodelayReportingHandler(JsonRequestHandler):
    """Answers with what the accepted TLS socket's TCP_NODELAY is, as the bench servers' handlers leave it."""

    def _serve(self) -> None:
        nodelay = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        self._write(Reply(200, {"nodelay": bool(nodelay)}))


def test_bench_https_servers_answer_without_nagle_delay(tmp_path: Path) -> None:
    """The head and the body of an answer leave in two writes; with Nagle's algorithm on, the body waited for the
    client's delayed ACK (about 40 ms a call, bench/dc_round_trip.py). The DC simulator and the web-API twin share
    `JsonRequestHandler`, so its accepted sockets must have TCP_NODELAY set, over TLS."""
    state_dir = tmp_path / "dc"
    run_sim_dc("prepare", "--state-dir", str(state_dir))
    server = LoopbackHttpsServer(("127.0.0.1", 0), _NodelayReportingHandler, server_context(StateDir(state_dir)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        context = client_context(state_dir)
        connection = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"nodelay": True})
        connection.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
