"""Claims on store keys: exclusive between processes, stale ones taken over by the writers' rule."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brain_workbench.store import Store
from brain_workbench.store.claims import Claims, claims_dir
from brain_workbench.store.entries import writer_identity

KEY = "results/race/s1-abc"

HOLDER = """
import sys, time
from brain_workbench.store import Store
from brain_workbench.store.claims import Claims
claims = Claims(Store(sys.argv[1]))
assert claims.try_claim(sys.argv[2])
print("held", flush=True)
time.sleep(120)
"""


def _claim_file(store: Store, key: str = KEY) -> Path:
    return claims_dir(store) / (key.replace("/", "~") + ".json")


def test_a_claim_is_exclusive_until_its_process_dies(tmp_store: Store) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, tmp_store.url, KEY], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with Claims(tmp_store) as claims:
            assert not claims.try_claim(KEY)
            assert claims.holder(KEY)["pid"] == holder.pid
            assert claims.try_claim("results/race/other")
        holder.kill()
        holder.wait(timeout=10)
        with Claims(tmp_store) as claims:
            assert claims.try_claim(KEY), "a dead holder's claim is stale and taken over"
            assert json.loads(_claim_file(tmp_store).read_text())["pid"] == writer_identity()["pid"]
        assert not _claim_file(tmp_store).exists(), "closing releases every claim"
    finally:
        if holder.poll() is None:
            holder.kill()


def _plant(store: Store, **changes) -> None:
    claim = {**writer_identity(), **changes}
    _claim_file(store).parent.mkdir(parents=True, exist_ok=True)
    _claim_file(store).write_text(json.dumps(claim))


def test_a_reused_pid_does_not_hold_a_claim(tmp_store: Store) -> None:
    _plant(tmp_store, pid=1, pid_start=1)  # pid 1 is alive, but it is not the process that claimed
    with Claims(tmp_store) as claims:
        assert claims.try_claim(KEY)


@pytest.mark.parametrize("age_h, held", [(1, True), (7, False)])
def test_another_hosts_claim_holds_until_its_heartbeat_is_six_hours_old(tmp_store: Store, age_h: float,
                                                                       held: bool) -> None:
    then = time.time() - age_h * 3600
    _plant(tmp_store, host=socket.gethostname() + "-elsewhere", started=then, updated=then)
    with Claims(tmp_store) as claims:
        assert claims.try_claim(KEY) is not held


def test_the_heartbeat_refreshes_held_claims(tmp_store: Store) -> None:
    with Claims(tmp_store, heartbeat_s=0.05) as claims:
        assert claims.try_claim(KEY)
        first = json.loads(_claim_file(tmp_store).read_text())["updated"]
        time.sleep(0.3)
        assert json.loads(_claim_file(tmp_store).read_text())["updated"] > first


def test_claims_are_not_taken_on_url_stores() -> None:
    claims = Claims(Store("memory://claims-test.zarr"))
    assert not claims.enabled and claims.try_claim(KEY)


def test_a_store_reached_through_a_symlink_or_another_spelling_is_claimed_as_one(tmp_store: Store,
                                                                                tmp_path: Path, monkeypatch) -> None:
    link = tmp_path / "link.zarr"
    link.symlink_to(Path(tmp_store.url))
    monkeypatch.chdir(tmp_path)
    spellings = [Store(link), Store("s.zarr"), Store(f"{tmp_path}/./s.zarr")]
    assert {claims_dir(s) for s in spellings} == {claims_dir(tmp_store)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, tmp_store.url, KEY], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with Claims(spellings[0]) as claims:
            assert not claims.try_claim(KEY), "the claim taken through the real path holds through the symlink"
    finally:
        holder.kill()
        holder.wait(timeout=10)
