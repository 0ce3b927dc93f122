"""A reader agent's own PC/SC readers through the real stack (issue 23): pcscd with vpcd, the agent's workers on
pyscard, the cards in this test on vpcd's socket; the console (the bench, serving no pcscd reader itself) reads
them over the agent link."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.profiles import make_card
from sim.vpcd import VpcdCardBridge
from tests.integration.agents import console_key, enrol, init_agent, kill_agent_group, start_agent
from tests.integration.console import free_port, running_console
from tests.pcscd import Pcscd
from tests.typed_secrets import PROFILE_PIN
from tests.waiting import wait_for

INITIAL = "/api/common/v1/Initial"
DEFAULT_READER = "/api/settings/v1/PcscReader/Default"
HC_BASIC = "/api/hc/v1/Basic"
HPC_VERIFY = "/api/hpc/v1/Verification/Hpc"
VETERAN_CARD = "900000000735"


@pytest.mark.timeout(180)
def test_an_agent_serves_its_pcscd_readers_to_the_console(pcscd: Pcscd, tmp_path: Path) -> None:
    agent_port = free_port()
    with running_console(tmp_path / "data", "--agents", f"tcp://127.0.0.1:{agent_port}") as console:
        enrol(console.data_dir, "desk-2", init_agent(tmp_path / "agent"))
        patient, staff = f"desk-2/{pcscd.reader(0, 0)}", f"desk-2/{pcscd.reader(0, 1)}"
        with (
            VpcdCardBridge(make_card("hc-veteran"), port=pcscd.port(0, 0)),
            VpcdCardBridge(make_card("hpc-nurse"), port=pcscd.port(0, 1)),
        ):
            agent = start_agent(
                tmp_path / "agent", f"tcp://127.0.0.1:{agent_port}", console_key(console.data_dir), "--pcsc"
            )
            try:
                wait_for(lambda: {patient, staff} <= console.attached_readers(), 30, "the agent's pcscd readers")
                wait_for(
                    lambda: console.card_kinds().get(patient) == "hc" and console.card_kinds().get(staff) == "hpc",
                    30,
                    "the cards identified through the agent",
                )
                assert console.request("POST", INITIAL, timeout=70).body == {"statusCode": 0}
                assert console.request("POST", DEFAULT_READER, {"readerName": patient}).body == {"statusCode": 0}
                basic = console.request("GET", HC_BASIC, timeout=30).body
                assert basic["statusCode"] == 0 and basic["cardId"] == VETERAN_CARD
                assert console.request("POST", DEFAULT_READER, {"readerName": staff}).body == {"statusCode": 0}
                verified = console.request("POST", HPC_VERIFY, {"pin": PROFILE_PIN}, timeout=70).body
                assert verified == {"statusCode": 0}
            finally:
                agent.stop()
                kill_agent_group(agent)
