"""`nhi-console doctor`'s checks (deploy/doctor.py) and the trust stores' bookkeeping (deploy/trust.py), pure parts."""

from __future__ import annotations

import datetime as _dt
import os
import stat
from pathlib import Path

import pytest

from deploy import doctor
from deploy.doctor import (
    FAIL,
    OK,
    WARN,
    CertificateState,
    DirState,
    PortAccess,
    ServiceUser,
    check_certificate,
    check_data_center,
    check_data_dir,
    check_pcscd,
    check_port,
    check_readers,
    check_serial,
    listening_inodes,
    may,
    report,
)
from deploy.trust import _same_certificate, install_name, nss_databases, system_store_file

CLINIC = ServiceUser("nhi-console", 990, frozenset({990, 20}))  # 20: dialout
NOW = _dt.datetime(2026, 12, 3, tzinfo=_dt.UTC)
DATA = Path("/var/lib/nhi-console")


@pytest.mark.parametrize(
    ("mode", "owner", "group", "want", "allowed"),
    [
        (0o700, 990, 990, os.R_OK | os.W_OK, True),  # its own
        (0o700, 0, 0, os.W_OK, False),  # root's, private
        (0o660, 0, 20, os.R_OK | os.W_OK, True),  # dialout's, and it is in dialout
        (0o660, 0, 5, os.R_OK | os.W_OK, False),  # tty's, not in it
        (0o606, 0, 5, os.R_OK | os.W_OK, True),  # anyone's
        (0o640, 990, 20, os.W_OK, True),
        (0o460, 990, 20, os.W_OK, False),  # owner bits, not group bits, apply to the owner
    ],
)
def test_permissions_are_judged_like_the_kernel_does(
    mode: int, owner: int, group: int, want: int, allowed: bool
) -> None:
    assert may(CLINIC, mode, owner, group, want) is allowed


def test_root_may_everything() -> None:
    assert may(ServiceUser("root", 0, frozenset({0})), 0o000, 5, 5, os.R_OK | os.W_OK)


def test_each_check_names_the_problem_and_its_fix() -> None:
    assert check_pcscd(True, True).verdict == OK
    down = check_pcscd(False, True)
    assert down.verdict == FAIL and "systemctl enable --now pcscd.socket" in down.fix
    assert "apt-get install pcscd" in check_pcscd(False, False).fix
    assert check_readers(False, None).verdict == WARN
    assert check_readers(True, []).verdict == WARN and "pcsc_scan" in check_readers(True, []).fix
    assert check_readers(True, ["ACS 00 00"]).detail == "1 seen: ACS 00 00"
    [locked] = check_serial(CLINIC, [PortAccess("/dev/ttyUSB0", True, stat.S_IFCHR | 0o660, 0, 5, "tty")])
    assert locked.verdict == FAIL and locked.fix.startswith("sudo usermod -aG tty nhi-console")
    [gone] = check_serial(CLINIC, [PortAccess("/dev/ttyUSB9", False)])
    assert gone.verdict == FAIL
    assert check_serial(CLINIC, [])[0].verdict == OK
    unwritable = check_data_dir(CLINIC, DirState(DATA, True, False, "root"))
    assert unwritable.verdict == FAIL and "not writable by nhi-console (owner root)" in unwritable.detail
    assert "chown -R nhi-console:" in unwritable.fix
    loose = check_data_dir(
        CLINIC, DirState(DATA, True, True, "nhi-console", ("/var/lib/nhi-console/tls/server-key.pem",))
    )
    assert loose.verdict == FAIL and loose.fix == "chmod 0600 /var/lib/nhi-console/tls/server-key.pem"
    assert check_data_center(None, None).verdict == WARN
    assert check_data_center("https://dc.example", "not reachable (Connection refused)").verdict == FAIL
    assert check_port(5066, None, "pid 42 (nginx)").detail == "5066 is taken by pid 42 (nginx)"
    assert check_port(5066, 812, None).verdict == OK


def certificate(days_left: float, trusted: dict[str, bool]) -> CertificateState:
    return CertificateState(True, NOW + _dt.timedelta(days=days_left), True, True, trusted)


def test_the_certificate_its_renewal_and_where_it_is_trusted() -> None:
    [valid, trusted] = check_certificate(certificate(400, {"system store": True}), NOW, DATA)
    assert (valid.verdict, trusted.verdict) == (OK, OK)
    [soon, _] = check_certificate(certificate(10, {"system store": True}), NOW, DATA)
    assert soon.verdict == WARN and "new CA" in soon.detail
    [expired, _] = check_certificate(certificate(-1, {"system store": True}), NOW, DATA)
    assert expired.verdict == FAIL
    [_, nowhere] = check_certificate(certificate(400, {}), NOW, DATA)
    assert nowhere.verdict == FAIL and nowhere.fix == f"sudo nhi-console cert --install --data-dir {DATA}"
    [_, stale] = check_certificate(
        certificate(400, {"NSS database ~/.pki/nssdb": False, "system store": True}), NOW, DATA
    )
    assert stale.verdict == FAIL and "an old CA" in stale.detail and "~/.pki/nssdb" in stale.detail


def test_the_report_fails_only_on_failures() -> None:
    text, code = report([check_pcscd(True, True), check_readers(True, [])])
    assert code == 0 and text.endswith("all checks passed: the console has what it needs")
    text, code = report([check_pcscd(False, True), check_readers(False, None)])
    assert code == 1 and text.endswith("1 problem found")
    assert text.splitlines()[0].startswith("FAIL  pcscd ")


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:13CA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 48211 1 0000
   1: 0100007F:13CA 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 48300 1 0000
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 48212 1 0000
"""


def test_the_listening_socket_on_a_port_is_found_in_proc_net_tcp() -> None:
    assert listening_inodes(TCP, 5066) == {48211}  # 0x13CA; the established one on it is not a listener
    assert listening_inodes(TCP, 8080) == {48212}
    assert listening_inodes(TCP, 443) == set()


def test_one_name_per_data_dir_in_every_store(tmp_path: Path) -> None:
    assert install_name(tmp_path / "a") == install_name(tmp_path / "a" / ".." / "a")
    assert install_name(tmp_path / "a") != install_name(tmp_path / "b")
    assert system_store_file(tmp_path / "a", Path("/usr/local/share/ca-certificates")).suffix == ".crt"
    assert " " not in system_store_file(tmp_path / "a").name


def test_the_users_nss_databases_are_chromiums_and_each_firefox_profiles(tmp_path: Path) -> None:
    home = tmp_path
    assert nss_databases(home) == []
    assert nss_databases(home, for_install=True) == [home / ".pki/nssdb"]  # made on install
    for profile in (".mozilla/firefox/ab12.default-release", "snap/firefox/common/.mozilla/firefox/x.default"):
        (home / profile).mkdir(parents=True)
        (home / profile / "cert9.db").write_bytes(b"")
    (home / ".mozilla/firefox/no-db").mkdir()
    assert nss_databases(home) == [
        home / ".mozilla/firefox/ab12.default-release",
        home / "snap/firefox/common/.mozilla/firefox/x.default",
    ]


def test_certificates_are_compared_by_content_not_by_layout() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\nAbCd\n-----END CERTIFICATE-----\n"
    assert _same_certificate(pem, b"-----BEGIN CERTIFICATE-----\r\nMIIBAbCd\r\n-----END CERTIFICATE-----")
    assert not _same_certificate(pem, b"-----BEGIN CERTIFICATE-----\nMIIBAbCe\n-----END CERTIFICATE-----")
    assert not _same_certificate(pem, b"")


def test_the_doctor_reads_what_a_serving_console_wrote(tmp_path: Path) -> None:
    from deploy.paths import console_paths

    run_dir = console_paths(tmp_path).run_dir
    run_dir.mkdir(parents=True)
    (run_dir / "serve.json").write_text(
        f'{{"pid": {os.getpid()}, "port": 6001, "dcUrl": "https://127.0.0.1:1", '
        '"dcCa": null, "serialPorts": ["/dev/ttyNHI"]}'
    )
    served = doctor.read_served(tmp_path)
    assert served is not None and (served.port, served.dc_url, served.serial_ports) == (
        6001,
        "https://127.0.0.1:1",
        ["/dev/ttyNHI"],
    )
    (run_dir / "serve.json").write_text('{"pid": 999999999, "port": 6001}')  # a console that is gone
    assert doctor.read_served(tmp_path) is None
