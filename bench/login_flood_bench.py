"""Write throughput of a real server while a crowd of threads tries to sign in.

    python bench/login_flood_bench.py [--seconds 10] [--writers 4] [--flood 30]

Starts ``kefu serve`` on a fresh SQLite database (production argon2 parameters), then
measures for ``--seconds`` each, in the same run:

1. *unloaded*: ``--writers`` threads opening cases with an API token, nothing else;
2. *flood, one address*: the same writers while ``--flood`` threads try unknown
   usernames (no account lock applies) as fast as they can from the same address (the
   per-address limit answers 429 after ``KEFU_LOGIN_PER_ADDRESS`` failures, without
   hashing; every refusal comes ``KEFU_LOGIN_FAILURE_DELAY`` late);
3. *flood, limit off*: the same with the per-address limit set out of reach, as if the
   flood came from thousands of addresses: only the password pool
   (``KEFU_LOGIN_HASH_THREADS``, lowered priority) stands between the flood and the CPU.

It prints completed writes and their median latency per phase, and each flooded phase's
writes as a share of the unloaded ones (the bar: at least 70%). Compare figures only
within one run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
KEFU = str(Path(sys.executable).with_name("kefu"))
OPEN = {
    "channel": "phone",
    "customer_name": "张三",
    "phone": "13912345678",
    "symptom": "空调不制冷",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [KEFU, "serve", "--port", str(port), "--no-worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("kefu serve did not start") from None
            time.sleep(0.2)


def phase(base: str, token: str, seconds: float, writers: int, flood: int) -> tuple[int, float]:
    """Completed writes and their median latency (s) while ``flood`` threads sign in badly."""
    stop = threading.Event()
    latencies: list[float] = []
    lock = threading.Lock()

    def write() -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            headers = {"authorization": f"Bearer {token}"}
            while not stop.is_set():
                t0 = time.perf_counter()
                r = http.post(
                    "/api/v1/cases",
                    json={"procedure": "repair-desk", "fields": OPEN},
                    headers=headers,
                )
                if r.status_code == 201 and not stop.is_set():
                    with lock:
                        latencies.append(time.perf_counter() - t0)

    def guess() -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            i = 0
            while not stop.is_set():
                i += 1
                # unknown names: no account lock stops these, each costs a (dummy) hash
                http.post("/api/v1/auth/login", json={"username": f"ghost{i}", "password": "x"})

    threads = [threading.Thread(target=guess) for _ in range(flood)]
    threads += [threading.Thread(target=write) for _ in range(writers)]
    for th in threads:
        th.start()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    return len(latencies), statistics.median(latencies) if latencies else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--flood", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3, help="phases run interleaved this often")
    args = ap.parse_args()
    results: dict[str, list[tuple[int, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "KEFU_PASSWORD_HASH"}  # real argon2
        env["KEFU_DATABASE_URL"] = f"sqlite:///{tmp}/kefu.db"

        def kefu(*cmd: str) -> str:
            done = subprocess.run([KEFU, *cmd], cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr)
            return done.stdout.strip()

        kefu("init", "--demo")
        token = kefu("token", "create", "wang", "--company", "demo", "--name", "bench")
        phases = [
            ("unloaded", {}, 0),
            ("flood, one address", {}, args.flood),
            ("flood, limit off", {"KEFU_LOGIN_PER_ADDRESS": "1000000000"}, args.flood),
        ]
        # interleaved (A B C A B C …): other load on the machine falls on every phase alike
        for label, extra, flood in phases * args.rounds:
            # a fresh server per phase: each starts with empty counters
            port = free_port()
            proc = start({**env, **extra}, port)
            try:
                results.setdefault(label, []).append(
                    phase(f"http://127.0.0.1:{port}", token, args.seconds, args.writers, flood)
                )
            finally:
                proc.terminate()
                proc.wait(30)
    print(
        f"{args.writers} writers, {args.flood} sign-in threads, {args.seconds:g} s per phase, "
        f"{args.rounds} rounds (medians of the rounds)"
    )
    base = statistics.median(w for w, _ in results["unloaded"])
    for label, runs in results.items():
        writes = statistics.median(w for w, _ in runs)
        median = statistics.median(m for _, m in runs)
        share = f"{writes / base:.0%} of unloaded" if base else "-"
        print(
            f"  {label:20} {writes:8.0f} writes  median latency {median * 1000:6.1f} ms  "
            f"{share}   (rounds: {', '.join(str(w) for w, _ in runs)})"
        )


if __name__ == "__main__":
    main()
