"""Deploying the console: the systemd units (the console's and a reader agent's), browsers trusting it after
`cert --install` (and not after `--uninstall`), the system store, and `nhi-console doctor` on a healthy bench and
on broken ones.

Real parts throughout: systemd-analyze, certutil and NSS, Debian's Chromium with a fresh profile and no
`--ignore-certificate-errors`, update-ca-certificates, pcscd. The user's NSS databases are a fresh $HOME's.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from zmq.utils import z85

from tests.integration.browser import CHROMIUM_FLAGS, chromium_path
from tests.integration.console import RunningConsole, running_console
from tests.pcscd import Pcscd
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "nhi-console.service"
AGENT_UNIT = ROOT / "deploy" / "systemd" / "nhi-console-agent.service"
INSTALLED_SCRIPT = "/opt/nhi-console/venv/bin/nhi-console"
SCRIPT = Path(sys.executable).with_name("nhi-console")


def required(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI") or os.environ.get("NHI_REQUIRE_DEPLOY_TOOLS") == "1":
            pytest.fail(f"{tool} is needed here (deploy/install-debian-packages.sh installs it)")
        pytest.skip(f"{tool} is not installed")
    return found


def nhi_console(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "SUDO_USER"}
    env["HOME"] = str(home)
    run = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert run.returncode == 0, f"{args}: {run.stdout}\n{run.stderr}"
    return run


@pytest.fixture
def console(tmp_path: Path) -> Iterator[RunningConsole]:
    with running_console(tmp_path / "data") as running:
        yield running


def assert_systemd_analyze_verify_passes(source: Path, tmp_path: Path) -> None:
    analyze = required("systemd-analyze")
    unit = tmp_path / source.name
    # The unit names the installed program's path (docs/deploy.md); here that is this checkout's venv.
    unit.write_text(source.read_text().replace(INSTALLED_SCRIPT, str(SCRIPT)))
    run = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (run.stdout + run.stderr).splitlines() if unit.name in line]
    assert run.returncode == 0 and complaints == [], run.stdout + run.stderr  # a directive it ignores is a warning


SHARED_HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "PrivateTmp=yes",
    "ProtectHome=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "SupplementaryGroups=dialout",
)
"""What both units hold: the console's and a reader agent's."""


def test_systemd_analyze_verify_passes_on_the_unit(tmp_path: Path) -> None:
    assert_systemd_analyze_verify_passes(UNIT, tmp_path)
    text = UNIT.read_text()
    for hardening in (
        *SHARED_HARDENING,
        "StateDirectory=nhi-console",
        "IPAddressDeny=any",
        "IPAddressAllow=localhost",
        "Wants=pcscd.socket",
    ):
        assert hardening in text


def test_systemd_analyze_verify_passes_on_the_agent_unit(tmp_path: Path) -> None:
    assert_systemd_analyze_verify_passes(AGENT_UNIT, tmp_path)
    text = AGENT_UNIT.read_text()
    for hardening in (
        *SHARED_HARDENING,
        "StateDirectory=nhi-console-agent",
        "StateDirectoryMode=0700",
        "Wants=pcscd.socket network-online.target",
        "Restart=always",
        "RestartPreventExitStatus=2",
    ):
        assert hardening in text


def _agent_exec_start(environment: dict[str, str]) -> list[str]:
    """The agent unit's ExecStart as systemd would run it: `${NAME}` is one word, `$NAME` is split on spaces."""
    line = next(line for line in AGENT_UNIT.read_text().splitlines() if line.startswith("ExecStart="))
    argv: list[str] = []
    for word in line.removeprefix("ExecStart=").split():
        if word.startswith("${") and word.endswith("}"):
            argv.append(environment[word[2:-1]])
        elif word.startswith("$"):
            argv.extend(environment.get(word[1:], "").split())
        else:
            argv.append(str(SCRIPT) if word == INSTALLED_SCRIPT else word)
    return argv


def test_the_agent_unit_runs_the_agent_and_a_missing_key_pair_is_the_exit_it_does_not_restart(
    tmp_path: Path,
) -> None:
    """RestartPreventExitStatus=2 is right only if the unit's own command line parses and an agent with no key
    pair exits 2 at once, saying what to do. After an --init in that directory the same line starts an agent,
    which stops cleanly on SIGTERM (the unit's KillMode=mixed signals the agent first)."""
    agent_dir = tmp_path / "agent"
    console_key = z85.encode(bytes(32)).decode()  # well-formed; the agent never gets as far as using it
    argv = _agent_exec_start({"CONSOLE": "tcp://127.0.0.1:9", "CONSOLE_KEY": console_key, "AGENT_OPTIONS": "--no-pcsc"})
    argv[argv.index("/var/lib/nhi-console-agent")] = str(agent_dir)
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"no key pair in {agent_dir}: run with --init first" in run.stderr
    init = subprocess.run(
        [str(SCRIPT), "reader-agent", "--init", "--agent-dir", str(agent_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0 and "nhi-console agents add NAME " in init.stdout, init.stdout + init.stderr
    assert oct((agent_dir / "agent.key_secret").stat().st_mode & 0o777) == "0o600"
    log = tmp_path / "agent.log"
    with log.open("wb") as log_file:
        agent = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _said(agent, log, "reader agent serving its readers to tcp://127.0.0.1:9"), 30, "the agent")
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0, log.read_text()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def _said(process: subprocess.Popen[bytes], log: Path, wanted: str) -> bool:
    """Whether the process's log holds `wanted` yet; fails at once if it exited first."""
    if wanted in log.read_text(errors="replace"):
        return True
    if process.poll() is not None:
        pytest.fail(f"it exited ({process.returncode}) before saying {wanted!r}: {log.read_text(errors='replace')}")
    return False


def _status_in_chromium(console: RunningConsole, home: Path) -> str:
    """Status in a fresh Chromium whose NSS database is $HOME's, with no certificate error switched off."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS, env={**os.environ, "HOME": str(home)}
        )
        try:
            page = browser.new_page()  # a fresh context: no certificate exceptions carried over
            try:
                answer = page.goto(f"https://localhost:{console.port}/api/common/v1/Status")
            except Error as error:
                return str(error).splitlines()[0]
            return f"{answer.status if answer else '?'} {page.inner_text('body')[:40]}"
        finally:
            browser.close()


def test_chromium_trusts_the_console_after_cert_install_and_not_after_uninstall(
    console: RunningConsole, tmp_path: Path
) -> None:
    required("certutil")
    home = tmp_path / "home"
    home.mkdir()
    assert "ERR_CERT_AUTHORITY_INVALID" in _status_in_chromium(console, home)  # a stranger to begin with
    installed = nhi_console("cert", "--install", "--no-system", "--data-dir", str(console.data_dir), home=home)
    assert f"NSS database {home}/.pki/nssdb: trusted as" in installed.stdout
    assert _status_in_chromium(console, home).startswith('200 {"statusCode": 0')
    nhi_console("cert", "--uninstall", "--no-system", "--data-dir", str(console.data_dir), home=home)
    assert "ERR_CERT_AUTHORITY_INVALID" in _status_in_chromium(console, home)


def test_a_renewed_certificate_is_a_new_ca_in_the_same_stores(console: RunningConsole, tmp_path: Path) -> None:
    required("certutil")
    home = tmp_path / "home"
    home.mkdir()
    data = str(console.data_dir)
    nhi_console("cert", "--install", "--no-system", "--data-dir", data, home=home)
    old_ca = (console.data_dir / "tls" / "ca.pem").read_bytes()
    renewed = nhi_console("cert", "--renew", "--no-system", "--data-dir", data, home=home)
    assert "restart the console" in renewed.stdout and (console.data_dir / "tls" / "ca.pem").read_bytes() != old_ca
    doctor = nhi_console("doctor", "--data-dir", data, home=home, check=False).stdout
    assert "ok    trust        the CA is trusted in NSS database" in doctor
    # A renewal that did not go through `cert` (the console's own, at a start) leaves the stores behind:
    from deploy.tls import renew_certificates

    renew_certificates(console.data_dir)
    doctor = nhi_console("doctor", "--data-dir", data, home=home, check=False).stdout
    assert "FAIL  trust        an old CA of this console is trusted in NSS database" in doctor


@pytest.mark.skipif(os.geteuid() != 0, reason="the system store is root's")
def test_the_system_store_makes_programs_trust_the_console(console: RunningConsole, tmp_path: Path) -> None:
    required("update-ca-certificates")
    home = tmp_path / "home"
    home.mkdir()
    url = f"https://localhost:{console.port}/api/common/v1/Status"

    def status_with_the_system_store() -> str:
        try:
            with urllib.request.urlopen(url, context=ssl.create_default_context(), timeout=10) as answer:
                return str(answer.status)
        except urllib.error.URLError as error:
            return str(error.reason)

    assert "CERTIFICATE_VERIFY_FAILED" in status_with_the_system_store()
    try:
        installed = nhi_console("cert", "--install", "--system", "--data-dir", str(console.data_dir), home=home)
        assert "system store (/usr/local/share/ca-certificates/nhi-console-local-CA-" in installed.stdout
        assert status_with_the_system_store() == "200"
    finally:
        nhi_console("cert", "--uninstall", "--system", "--data-dir", str(console.data_dir), home=home)
    assert "CERTIFICATE_VERIFY_FAILED" in status_with_the_system_store()
    assert not [link for link in Path("/etc/ssl/certs").iterdir() if "nhi-console" in link.name]  # nothing dangling


def test_doctor_says_a_healthy_bench_is_healthy_and_names_a_stopped_pcscd(
    pcscd: Pcscd, pcsc_console: RunningConsole, tmp_path: Path
) -> None:
    required("certutil")
    home = tmp_path / "home"
    home.mkdir()
    data = str(pcsc_console.data_dir)
    nhi_console("cert", "--install", "--no-system", "--data-dir", data, home=home)
    healthy = nhi_console("doctor", "--data-dir", data, home=home, check=False)
    lines = healthy.stdout.splitlines()
    assert healthy.returncode == 0, healthy.stdout
    assert lines[-1] == "all checks passed: the console has what it needs"
    assert not [line for line in lines[:-1] if not line.startswith(("ok ", "warn "))]
    assert lines[0].startswith("ok    pcscd        running")
    assert f"ok    readers      {len(pcscd.readers())} seen: {', '.join(pcscd.readers())}" in lines
    assert any(line.startswith("ok    serial       ") and "ttyNHI0" in line for line in lines)
    assert any(line.startswith("ok    data center  https://127.0.0.1:") for line in lines)  # the bench's simulator
    assert any(
        line.startswith(f"ok    port         {pcsc_console.port}: the console is serving on it") for line in lines
    )

    ports = list(pcscd.ports)
    pcscd.stop()
    try:
        broken = nhi_console("doctor", "--data-dir", data, home=home, check=False)
    finally:
        pcscd.start(ports=ports)
    assert broken.returncode == 1
    assert (
        "FAIL  pcscd        not running (/run/pcscd/pcscd.comm does not answer) — fix: sudo systemctl enable "
        "--now pcscd.socket" in broken.stdout.splitlines()
    )
    assert broken.stdout.splitlines()[-1] == "1 problem found"


def test_doctor_names_a_data_dir_its_user_cannot_write(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"
    data.mkdir(mode=0o700)  # this process's: nobody else may write it
    run = nhi_console("doctor", "--data-dir", str(data), "--service-user", "nobody", home=home, check=False)
    [line] = [line for line in run.stdout.splitlines() if "data dir" in line]
    assert line.startswith(f"FAIL  data dir     {data} is not writable by nobody")
    assert f"fix: sudo chown -R nobody: {data}" in line
    assert run.returncode == 1
