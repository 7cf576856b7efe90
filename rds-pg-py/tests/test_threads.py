"""Threads: calls release the GIL, a shared Provisioner serialises its calls, separate
Provisioners work in parallel."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import rds_pg
from conftest import hold_database_lock
from rds_pg import DatabaseSpec, ReadOnlyGrant

N = 8


class Ticker:
    """A pure-Python thread that records a timestamp every millisecond or so: it can only run
    while no other thread holds the GIL."""

    def __init__(self):
        self.ticks: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.ticks.append(time.perf_counter())
            time.sleep(0.001)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def within(self, start: float, end: float) -> list[float]:
        return [t for t in self.ticks if start <= t <= end]


def max_concurrency(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    level = best = 0
    for _, delta in events:
        level += delta
        best = max(best, level)
    return best


def test_a_call_in_flight_lets_python_threads_run_and_serialises_a_shared_provisioner(sandbox, tmp_path):
    with sandbox.connect() as setup:
        waiter = setup.ensure_user("waiter").generated_password
        setup.ensure_database(DatabaseSpec("waiter", "waiter"))
    shared = sandbox.connect(lock_timeout=20)
    separate = sandbox.connect()
    times: dict[str, tuple[float, float]] = {}

    def timed(name, call):
        start = time.perf_counter()
        call()
        times[name] = (start, time.perf_counter())

    holder = hold_database_lock(sandbox, tmp_path, "waiter", "waiter", waiter, 3.0)
    try:
        with Ticker() as ticker:
            # A: waits (in Rust) for the lock another deploy holds for about 2 s more.
            a = threading.Thread(target=timed, args=("a", lambda: shared.ensure_extensions("waiter", ["citext"])))
            a.start()
            time.sleep(0.3)
            # B: same provisioner, so it waits for A; C: its own provisioner, so it does not.
            b = threading.Thread(target=timed, args=("b", lambda: shared.ensure_user("serialised")))
            c = threading.Thread(target=timed, args=("c", lambda: separate.ensure_user("parallel")))
            b.start()
            c.start()
            for t in (a, b, c):
                t.join(60)
    finally:
        holder.wait(30)
        shared.close()
        separate.close()
    assert set(times) == {"a", "b", "c"}, "a call failed (see the thread's exception above)"
    a_start, a_end = times["a"]
    assert a_end - a_start > 1.0, "A did wait for the lock"
    # The GIL was free while A waited: the ticker kept ticking all through the wait.
    ticks = ticker.within(a_start, a_end)
    gaps = [t2 - t1 for t1, t2 in zip(ticks, ticks[1:])]
    assert len(ticks) > 100 and max(gaps) < 0.25, (len(ticks), max(gaps, default=None))
    # C ran in parallel with A; B waited for A to finish.
    assert times["c"][1] < a_end - 0.5, times
    assert times["b"][1] >= a_end, times


def provision(rds: rds_pg.Provisioner, name: str) -> tuple[rds_pg.Secret, rds_pg.Secret, float, float]:
    start = time.perf_counter()
    user = rds.ensure_user(name)
    rds.ensure_database(DatabaseSpec(name, name, extensions=["hstore"]))
    ro = rds.ensure_user(f"{name}_ro")
    rds.grant_read_only(ReadOnlyGrant(name, f"{name}_ro"))
    return user.generated_password, ro.generated_password, start, time.perf_counter()


def provision_all(provisioners: list[rds_pg.Provisioner], prefix: str):
    barrier = threading.Barrier(N)

    def one(i: int):
        barrier.wait()
        return provision(provisioners[i % len(provisioners)], f"{prefix}{i}")

    started = time.perf_counter()
    with ThreadPoolExecutor(N) as pool:
        results = list(pool.map(one, range(N)))
    return results, time.perf_counter() - started


def check_projects(sandbox, prefix: str, results) -> None:
    with sandbox.connect() as rds:
        for i, (password, ro_password, _, _) in enumerate(results):
            name = f"{prefix}{i}"
            assert isinstance(password, rds_pg.Secret) and isinstance(ro_password, rds_pg.Secret)
            assert not rds.plan_ensure_database(DatabaseSpec(name, name, extensions=["hstore"]))
            assert not rds.plan_grant_read_only(ReadOnlyGrant(name, f"{name}_ro"))
            # Each user logs in to its own database with its generated password.
            for user, secret in ((name, password), (f"{name}_ro", ro_password)):
                rds_pg.connect(sandbox.dsn_for(user, name), password=secret).close()
    assert len({r[0].reveal() for r in results}) == N


def test_eight_threads_one_and_several_provisioners(sandbox):
    with sandbox.connect() as shared:
        one_results, one_time = provision_all([shared], "one")
    check_projects(sandbox, "one", one_results)

    several = [sandbox.connect() for _ in range(N)]
    try:
        several_results, several_time = provision_all(several, "many")
    finally:
        for p in several:
            p.close()
    check_projects(sandbox, "many", several_results)

    print(f"8 projects: one shared Provisioner {one_time:.2f} s, eight Provisioners {several_time:.2f} s")
    # With separate provisioners the projects were provisioned at the same time. That calls run
    # without the GIL, and that a shared Provisioner serialises them, is proven by the mechanism
    # in the test above (a Python thread keeps running during a call; B waits for A, C does not).
    # Wall-clock times are printed, not compared: on a loaded 2-core machine concurrent CREATE
    # DATABASEs contend inside the server, and such an assertion failed in CI for that reason.
    assert max_concurrency([(s, e) for *_, s, e in several_results]) >= 4
