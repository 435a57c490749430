"""Lifecycle operations on one container run one at a time (``containers/serializer.py``).

The races of the issue, each with the test that showed it: a prune during a start (it deleted the
directory under a spawning container and leaked its shim), ``run --rm`` whose auto-remove fails
(the waiter hung forever), ``logs -f`` started while the container writes (lines were lost
between reading the file and following it); then a stress run of every verb on 50 containers.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors

from tests.integration.daemon_harness import Daemon, processes_mentioning

CGROUP_ROOT = Path("/sys/fs/cgroup")
# A container that answers SIGTERM at once (PID 1 ignores a signal it has no handler for).
QUICK_TO_STOP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


def api_of(d: Daemon, timeout: int = 120) -> Any:
    return docker.APIClient(base_url=d.host, version="auto", timeout=timeout)


def cgroup_dirs(cid: str) -> list[Path]:
    return [p for p in CGROUP_ROOT.glob(f"*/dockyard/{cid}") if p.exists()]


def leftovers(d: Daemon, cid: str) -> list[str]:
    """What a removed container ``cid`` left behind: processes, cgroups, directories."""
    data = d.root / "data"
    found = [f"process {pid}" for pid in processes_mentioning(cid)]
    found += [f"cgroup {p}" for p in cgroup_dirs(cid)]
    found += [f"directory {p}" for p in (data / "containers" / cid, data / "snapshots" / "containers" / cid)
              if p.exists()]
    return found


def wait_for_no_leftovers(d: Daemon, cid: str, seconds: float = 15) -> list[str]:
    """Leftovers of ``cid`` once its shim had time to exit (it does so after the daemon's answer)."""
    deadline = time.monotonic() + seconds
    found = leftovers(d, cid)
    while found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = leftovers(d, cid)
    return found


# -- (1) prune racing start --------------------------------------------------------------------------
def test_prune_during_start_leaks_no_shim_or_directory(daemon: Daemon) -> None:
    label = f"prune-race-{random.randrange(1 << 30)}"
    api = api_of(daemon)
    try:
        for attempt in range(6):
            cid = api.create_container("busybox", QUICK_TO_STOP, labels={label: ""})["Id"]
            outcome: dict[str, Any] = {}

            def start(cid: str = cid, outcome: dict[str, Any] = outcome) -> None:
                client = api_of(daemon)
                try:
                    client.start(cid)
                    outcome["start"] = "ok"
                except docker.errors.APIError as exc:
                    outcome["start"] = exc.status_code
                finally:
                    client.close()

            starter = threading.Thread(target=start)
            starter.start()
            time.sleep(0.005 * attempt)  # the prune lands at different points of the start
            pruned = api.prune_containers(filters={"label": [label]})
            starter.join(120)
            assert not starter.is_alive(), "start did not answer"
            deleted = pruned.get("ContainersDeleted") or []
            if cid in deleted:
                # The prune went first: the start finds no container.
                assert outcome["start"] == 404, outcome
            else:
                # The start went first: the prune saw a running container and left it.
                assert outcome["start"] == "ok", outcome
                assert api.inspect_container(cid)["State"]["Running"]
                api.remove_container(cid, force=True)
            assert wait_for_no_leftovers(daemon, cid) == [], f"attempt {attempt}"
    finally:
        for c in api.containers(all=True, filters={"label": label}):
            api.remove_container(c["Id"], force=True)
        api.close()


# -- (2) run --rm whose removal fails ---------------------------------------------------------------
def test_auto_remove_failure_answers_the_removal_waiter(daemon: Daemon) -> None:
    api = api_of(daemon, timeout=60)
    cid = api.create_container("busybox", ["sh", "-c", "mkdir /pinned; exec sleep 60"],
                               host_config=api.create_host_config(auto_remove=True))["Id"]
    upper = Path(api.inspect_container(cid)["GraphDriver"]["Data"]["UpperDir"])
    pinned = upper / "pinned"
    try:
        api.start(cid)
        deadline = time.monotonic() + 30
        while not pinned.is_dir():
            assert time.monotonic() < deadline, "the container never wrote /pinned"
            time.sleep(0.05)
        # A mount point in the writable layer: rmdir fails (EBUSY), which remove_tree cannot clear.
        subprocess.run(["mount", "-t", "tmpfs", "pin", str(pinned)], check=True)
        with ThreadPoolExecutor(1) as pool:
            # What `docker run --rm` does: wait for the removal, then take the exit code.
            waiter = pool.submit(api.wait, cid, 60, "removed")
            time.sleep(0.2)
            api.kill(cid)
            answer = waiter.result(90)  # before the fix: the request never answered
        assert answer["StatusCode"] == 137
        assert "unable to remove filesystem" in (answer.get("Error") or {}).get("Message", ""), answer
        state = api.inspect_container(cid)["State"]
        assert state["Status"] == "dead" and "unable to remove filesystem" in state["Error"], state
    finally:
        subprocess.run(["umount", str(pinned)], check=False)
    api.remove_container(cid, force=True)  # a dead container: rm tries again, and now succeeds
    assert wait_for_no_leftovers(daemon, cid) == []
    api.close()


# -- (3) logs -f started while the container writes ------------------------------------------------------
def test_logs_follow_started_mid_output_sends_every_line_once_in_order(daemon: Daemon) -> None:
    lines = 100000  # ~8 MB of json-file log, written as fast as seq and the shim go; no rotation
    api = api_of(daemon)
    cid = api.create_container("busybox", ["seq", "0", str(lines - 1)], host_config=api.create_host_config(
        log_config={"Type": "json-file", "Config": {"max-size": "1g"}}))["Id"]
    log_path = Path(api.inspect_container(cid)["LogPath"])

    def follow() -> list[str]:
        client = api_of(daemon)
        try:
            return b"".join(client.logs(cid, stream=True, follow=True)).decode().splitlines()
        finally:
            client.close()

    try:
        api.start(cid)
        followers = []
        with ThreadPoolExecutor(5) as pool:
            for size in (1 << 16, 1 << 20, 2 << 20, 4 << 20, 6 << 20):  # each follows from a later point
                while not log_path.exists() or log_path.stat().st_size < size:
                    time.sleep(0.001)
                followers.append(pool.submit(follow))
            results = [f.result(120) for f in followers]
        assert api.inspect_container(cid)["State"]["Status"] == "exited"
        for got in results:
            missing = sorted(set(range(lines)) - {int(x) for x in got})
            assert not missing, f"{len(missing)} lines lost, the first: {missing[:10]}"
            assert got == [str(i) for i in range(lines)]
    finally:
        api.remove_container(cid, force=True)
        api.close()


# -- stress: every verb on 50 containers at once ---------------------------------------------------------
WEIGHTS = {"create": 3, "start": 3, "stop": 2, "kill": 1, "rm": 1, "prune": 0.3, "exec": 3}
"""How often each verb is drawn: prune (which removes every stopped container) now and then."""


def test_concurrent_lifecycle_on_fifty_containers_hangs_and_leaks_nothing(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    names = [f"stress-{i}" for i in range(50)]
    seen: set[str] = set()
    seen_lock = threading.Lock()
    failures: list[str] = []
    counts: dict[str, int] = {}
    deadline = time.monotonic() + 35

    def act(api: Any, rng: random.Random) -> None:
        name = rng.choice(names)
        verb = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        try:
            if verb == "create":
                cid = api.create_container("busybox", QUICK_TO_STOP, name=name)["Id"]
                with seen_lock:
                    seen.add(cid)
            elif verb == "start":
                api.start(name)
            elif verb == "stop":
                api.stop(name, timeout=2)
            elif verb == "kill":
                api.kill(name)
            elif verb == "rm":
                api.remove_container(name, force=True)
            elif verb == "prune":
                api.prune_containers()
            elif verb == "exec":
                exec_id = api.exec_create(name, ["sh", "-c", "echo hi > /tmp/x"])["Id"]
                api.exec_start(exec_id, detach=True)
            outcome = "ok"
        except docker.errors.APIError as exc:
            outcome = str(exc.status_code)
            # 404/409/304: the container was not in a state for this verb; a 500 must be one of
            # the answers Docker gives when a process ends under a verb.
            if exc.status_code not in (304, 404, 409) and "OCI runtime exec failed" not in str(exc):
                failures.append(f"{verb} {name}: {exc}")
        with seen_lock:
            counts[f"{verb} {outcome}"] = counts.get(f"{verb} {outcome}", 0) + 1

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        api = api_of(d)  # a request that does not answer in 120 s fails the test (no hang)
        try:
            while time.monotonic() < deadline:
                act(api, rng)
        except Exception as exc:  # a timeout or a broken connection
            failures.append(f"worker {seed}: {exc!r}")
        finally:
            api.close()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert not failures, "\n".join(failures[:20])
    print(sorted(counts.items()))
    assert counts.get("start ok", 0) > 0 and counts.get("exec ok", 0) > 0 and counts.get("prune ok", 0) > 0, counts

    api = api_of(d)
    for c in api.containers(all=True):
        api.remove_container(c["Id"], force=True)
    assert api.containers(all=True) == []
    data = d.root / "data"
    left = {cid: wait_for_no_leftovers(d, cid) for cid in seen}
    assert {cid: found for cid, found in left.items() if found} == {}
    assert list((data / "containers").iterdir()) == []
    assert not (data / "snapshots" / "containers").exists() or list((data / "snapshots" / "containers").iterdir()) == []
    with sqlite3.connect(f"file:{data / 'metadata.db'}?mode=ro", uri=True) as db:
        assert db.execute("SELECT COUNT(*) FROM containers").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM container_snapshots").fetchone()[0] == 0
    report = api._result(api._post(api._url("/dockyard/system/check")), json=True)
    assert report["Problems"] == [], report
    api.close()
