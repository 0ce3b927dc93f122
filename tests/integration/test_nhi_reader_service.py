"""The bench's NHI reader as its own process (`python -m sim.nhi_reader_service`): its control socket and the
serial line on its real pseudo-terminal, as the console's serial worker and the control API meet them."""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from broker.credentials.cloud_sam_file import parse_cloud_sam_file
from sim.dc import BENCH_HOSPITAL_ID, BENCH_HOSPITAL_NAME, BENCH_NHI_SAM_ID, prepare
from sim.dc.state import DcState
from sim.nhi_control import NhiControlError, NhiReaderControl
from tests.typed_secrets import HC_PROFILE_PIN, WRONG_PIN, files_holding_secrets
from tests.waiting import wait_for
from workers.apdu import HC_AID, HC_PIN_P2, select_aid
from workers.serial_link import CODE_NOT_ANSWERING, SerialLink, SerialLinkError
from workers.serial_protocol import (
    CMD_INFO,
    CMD_KEYPAD_VERIFY,
    CMD_SAM_INFO,
    CMD_STATUS,
    CMD_TRANSMIT,
    SLOT_HC,
    STATUS_KEYPAD_CANCELLED,
    STATUS_OK,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

KEYPAD_SECONDS = 10


@dataclass
class RunningReader:
    process: subprocess.Popen[bytes]
    link: Path
    control: NhiReaderControl
    log: Path


@pytest.fixture(scope="module")
def nhi_sam_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bench NHI reader's SAM as the DC simulator's prepare issues it (one per module: it mints keys)."""
    return prepare(tmp_path_factory.mktemp("dc") / "state").bench_nhi_sam_file


@pytest.fixture
def reader(tmp_path_factory: pytest.TempPathFactory, nhi_sam_file: Path) -> Iterator[RunningReader]:
    # A short directory of pytest's own: an ipc:// path must stay under the ~107-byte Unix socket limit.
    base = tmp_path_factory.mktemp("nhi")
    link, endpoint, log = base / "ttyNHI0", f"ipc://{base / 'control.sock'}", base / "service.log"
    assert len(endpoint) < 100
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sim.nhi_reader_service",
                "--link",
                str(link),
                "--sam-file",
                str(nhi_sam_file),
                "--control",
                endpoint,
                "--card",
                "hc=hc-basic",
                "--card",
                "hpc=hpc-doctor",
            ],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = RunningReader(process, link, NhiReaderControl(endpoint), log)
    try:
        wait_for(lambda: link.is_symlink() or process.poll() is not None, 30, "the reader's link")
        assert process.poll() is None, log.read_text()
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        # Typed on the keypad, so never in the log: the long entry anywhere, the short PIN as a bare digit run
        # (once the paths, whose pytest-N could hold it, are taken out).
        assert files_holding_secrets([log]) == []
        assert not re.search(rf"(?<!\d){HC_PROFILE_PIN}(?!\d)", log.read_text().replace(str(base), "")), (
            "a keypad entry reached the log"
        )


@pytest.fixture
def link(reader: RunningReader) -> Iterator[SerialLink]:
    serial_link = SerialLink()
    serial_link.open(str(reader.link))
    try:
        yield serial_link
    finally:
        serial_link.close()


def slots_present(link: SerialLink) -> dict[int, bool]:
    """STATUS's per-slot presence: slot, present, counter (4 bytes), ATR length, ATR."""
    status, rest = link.call(CMD_STATUS)
    assert status == STATUS_OK
    present: dict[int, bool] = {}
    while rest:
        slot, flag, atr_length = rest[0], rest[1], rest[6]
        present[slot] = bool(flag)
        rest = rest[7 + atr_length :]
    return present


def keypad_verify(link: SerialLink, reader: RunningReader, **keypad: object) -> tuple[int, bytes]:
    """A KEYPAD_VERIFY on the line while the bench types on the keypad, in either order: keys typed ahead wait
    in the keypad's queue, so the outcome does not depend on which reaches the reader first."""
    outcome: list[tuple[int, bytes] | BaseException] = []

    def verify() -> None:
        try:
            outcome.append(link.call(CMD_KEYPAD_VERIFY, bytes([SLOT_HC, HC_PIN_P2, KEYPAD_SECONDS])))
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    thread = threading.Thread(target=verify, daemon=True)
    thread.start()
    reader.control.call("keypad", **keypad)
    thread.join(KEYPAD_SECONDS + 10)
    assert not thread.is_alive() and len(outcome) == 1
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.mark.timeout(90)
def test_describe_info_sam_and_status(reader: RunningReader, link: SerialLink) -> None:
    assert reader.control.call("describe") == {
        "port": str(reader.link),
        "plugged": True,
        "slots": {"hc": {"profile": "hc-basic"}, "hpc": {"profile": "hpc-doctor"}},
        "cardCommands": 0,
    }
    status, rest = link.call(CMD_INFO)
    assert status == STATUS_OK and json.loads(rest)["slots"] == ["hc", "hpc"] and json.loads(rest)["sam"] is True
    status, rest = link.call(CMD_SAM_INFO)
    sam = json.loads(rest)
    assert status == STATUS_OK and (sam["samId"], sam["hospitalId"]) == (BENCH_NHI_SAM_ID, BENCH_HOSPITAL_ID)
    assert sam["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert slots_present(link) == {0: True, 1: True}
    assert reader.control.call("describe")["cardCommands"] == 1, "SAM_INFO reached the SAM; INFO and STATUS did not"


@pytest.mark.timeout(90)
def test_cards_go_in_and_out_through_the_controls(reader: RunningReader, link: SerialLink) -> None:
    reader.control.call("remove", slot="hpc")
    assert slots_present(link) == {0: True, 1: False}
    reader.control.call("insert", slot="hpc", profile="hc-veteran")  # the wrong card in the staff card's slot
    assert reader.control.call("describe")["slots"] == {"hc": {"profile": "hc-basic"}, "hpc": {"profile": "hc-veteran"}}
    assert slots_present(link) == {0: True, 1: True}
    for bad, status in (({"slot": "sam", "profile": "hc-pin"}, 404), ({"slot": "hc", "profile": "hc-nobody"}, 400)):
        with pytest.raises(NhiControlError) as refused:
            reader.control.call("insert", **bad)
        assert refused.value.status == status
    assert reader.control.call("describe")["slots"]["hc"] == {"profile": "hc-basic"}  # unchanged


@pytest.mark.timeout(90)
def test_the_keypad_verifies_the_pin_and_cancels(reader: RunningReader, link: SerialLink) -> None:
    reader.control.call("insert", slot="hc", profile="hc-pin")
    status, rest = link.call(CMD_TRANSMIT, bytes([SLOT_HC]) + select_aid(HC_AID))
    assert (status, rest[-2:]) == (STATUS_OK, b"\x90\x00")
    assert keypad_verify(link, reader, keys=HC_PROFILE_PIN) == (STATUS_OK, b"\x90\x00")
    status, word = keypad_verify(link, reader, keys=WRONG_PIN)
    assert status == STATUS_OK and word != b"\x90\x00"  # the card's own refusal, passed on
    assert keypad_verify(link, reader, cancel=True) == (STATUS_KEYPAD_CANCELLED, b"")
    with pytest.raises(NhiControlError) as refused:
        reader.control.call("keypad", keys="12ab")
    assert refused.value.status == 400 and "12ab" not in refused.value.message


@pytest.mark.timeout(90)
def test_unplug_and_replug(reader: RunningReader, link: SerialLink) -> None:
    reader.control.call("unplug")
    assert reader.control.call("describe")["plugged"] is False
    assert not reader.link.exists()
    with pytest.raises(SerialLinkError) as failed:
        link.call(CMD_INFO)
    assert failed.value.code == CODE_NOT_ANSWERING
    reader.control.call("replug")
    assert reader.control.call("describe")["plugged"] is True
    link.open(str(reader.link))  # a new pseudo-terminal behind the same name
    assert link.call(CMD_INFO)[0] == STATUS_OK
    assert slots_present(link) == {0: True, 1: True}  # the cards stayed in through the power cycle


@pytest.mark.timeout(60)
def test_sigterm_stops_it_cleanly(reader: RunningReader) -> None:
    control_file = Path(reader.control.endpoint.removeprefix("ipc://"))
    assert control_file.exists()
    reader.process.send_signal(signal.SIGTERM)
    assert reader.process.wait(timeout=15) == 0
    assert not reader.link.is_symlink() and not control_file.exists()
    assert "stopped" in reader.log.read_text()


LAUNCHER = """
import subprocess, sys, time
from pathlib import Path
link = Path(sys.argv[1])
with open(sys.argv[2], "wb") as log:
    child = subprocess.Popen(sys.argv[3:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
print(child.pid, flush=True)
deadline = time.monotonic() + 30
while not link.is_symlink() and child.poll() is None and time.monotonic() < deadline:
    time.sleep(0.02)
sys.exit(0 if link.is_symlink() else 1)
"""
"""Starts the reader (its output in a file, not our pipe), waits for its link, then exits without stopping it:
the reader is orphaned. Exits 1 if the reader never served."""


@pytest.mark.timeout(90)
def test_it_stops_when_its_parent_is_gone(tmp_path_factory: pytest.TempPathFactory, nhi_sam_file: Path) -> None:
    base = tmp_path_factory.mktemp("orphan")
    link, control_file, log = base / "ttyNHI0", base / "control.sock", base / "service.log"
    launcher = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            str(link),
            str(log),
            sys.executable,
            "-m",
            "sim.nhi_reader_service",
            "--link",
            str(link),
            "--sam-file",
            str(nhi_sam_file),
            "--control",
            f"ipc://{control_file}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    orphan = int(launcher.stdout.split()[0])
    try:
        wait_for(lambda: not link.is_symlink() and not control_file.exists(), 15, "the orphaned reader to stop")
        wait_for(lambda: _zombie(orphan), 15, "the orphaned reader to exit")
        assert "the console is gone" in log.read_text()
    finally:
        if not _zombie(orphan) and b"sim.nhi_reader_service" in _cmdline(orphan):
            os.kill(orphan, signal.SIGKILL)  # ours, started by this test's launcher (not a reused pid)


def _zombie(pid: int) -> bool:
    """Gone or a zombie: either way it runs no more."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.timeout(60)
def test_prepare_issues_the_readers_sam_once_and_the_dc_knows_it(tmp_path: Path) -> None:
    first = prepare(tmp_path / "dc")
    issued = first.bench_nhi_sam_file.read_bytes()
    assert first.bench_nhi_sam_file == tmp_path / "dc" / "bench-nhi-sam.sam"
    assert stat.S_IMODE(first.bench_nhi_sam_file.stat().st_mode) == 0o600
    sam = parse_cloud_sam_file(issued)
    assert (sam.sam_id, sam.hospital_id, sam.hospital_name) == (
        BENCH_NHI_SAM_ID,
        BENCH_HOSPITAL_ID,
        BENCH_HOSPITAL_NAME,
    )
    assert sam.sam_id != parse_cloud_sam_file(first.bench_sam_file.read_bytes()).sam_id
    state = DcState(first.database)
    try:
        record = state.sam(BENCH_NHI_SAM_ID)
        hospital = state.hospital(BENCH_HOSPITAL_ID)
    finally:
        state.close()
    assert record is not None and not record.revoked
    assert x509.load_pem_x509_certificate(record.certificate_pem.encode("ascii")) == sam.certificate
    assert hospital is not None and not hospital.suspended and hospital.contract_covers(datetime.date.today())
    assert prepare(tmp_path / "dc") == first and first.bench_nhi_sam_file.read_bytes() == issued  # idempotent
    first.bench_nhi_sam_file.unlink()
    assert parse_cloud_sam_file(prepare(tmp_path / "dc").bench_nhi_sam_file.read_bytes()).sam_id == BENCH_NHI_SAM_ID
