#!/usr/bin/env python3
"""One node per process: N processes of one implementation on 127.0.0.1,
the way most users run an agent. Prints one JSON line of figures.

    bench/perprocess.py --impl headcount --bin target/release/headcount
    bench/perprocess.py --impl headcount-http --bin target/release/headcount
    bench/perprocess.py --impl headcount-lean --bin target/bench/headcount-lean
    bench/perprocess.py --impl go --bin target/bench/mlbench
    bench/perprocess.py --impl al8n --bin target/bench/al8n-bench
        [--processes 8] [--steady 60] [--detect-window 30] [--profile lan]
        [--base-port 21000] [--join-timeout 30]

What each process runs (all print {"event":"join"|"leave","node":NAME,...}
JSON lines on stdout, one per event of their event delegate):

* headcount: `headcount agent --name node-i --bind 127.0.0.1:P+i
  --profile lan --http off --log-level warn` (the shipped binary; stdin
  /dev/null); `headcount-http` the same with the HTTP API on
  127.0.0.1:P+100+i (the agent's default is on); `headcount-lean` the
  same command as `headcount`, for the lean build (`cargo build -p
  headcount-cli --no-default-features`, which has no HTTP API).
* go: `mlbench -agent` (hashicorp/memberlist, its NetTransport, events
  printed by an EventDelegate, logger discarded).
* al8n: `al8n-bench --agent` (al8n's memberlist crate, tokio
  current-thread, NetTransport, events printed by an EventDelegate).

Timeline: node 0 starts; once its TCP port accepts, nodes 1..N-1 start
with node 0 as their join address (t = 0). `join_s` is when every
process has seen a join of every other node. Then a steady window of
`--steady` seconds: CPU (utime + stime of /proc/PID/stat) is the
difference over the window, memory (VmRSS, VmHWM, RssAnon, RssFile of
/proc/PID/status) is read at its end. Then the last process gets SIGKILL;
`detect_all_s` is when every survivor has printed a leave for it (null if
not within --detect-window). `false_leaves` counts every other leave
printed during the whole run. Every process is then killed (SIGKILL).
"""

import argparse
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """utime + stime of the process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def status_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                out[k] = int(v.split()[0])
    return out


def command(impl, binary, i, port, seed, profile, base_port):
    name = f"node-{i}"
    if impl in ("headcount", "headcount-http", "headcount-lean"):
        c = [binary, "agent", "--name", name, "--bind", f"127.0.0.1:{port}",
             "--profile", profile, "--log-level", "warn"]
        if impl in ("headcount", "headcount-lean"):
            c += ["--http", "off"]
        else:
            c += ["--http", f"127.0.0.1:{base_port + 100 + i}"]
        if seed:
            c += ["--join", seed]
        return c
    if impl == "go":
        c = [binary, "-agent", "-name", name, "-port", str(port), "-profile", profile]
        if seed:
            c += ["-join", seed]
        return c
    if impl == "al8n":
        c = [binary, "--agent", "--name", name, "--port", str(port), "--profile", profile]
        if seed:
            c += ["--join", seed]
        return c
    raise SystemExit(f"perprocess.py: unknown implementation {impl!r}")


IMPL_NAMES = {
    "headcount": "headcount",
    "headcount-http": "headcount",
    "headcount-lean": "headcount",
    "go": "go-memberlist",
    "al8n": "al8n-memberlist",
}


def wait_listening(port, deadline):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.01)
    return False


def median(xs):
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--impl", required=True, choices=sorted(IMPL_NAMES))
    ap.add_argument("--bin", required=True)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--steady", type=float, default=60.0)
    ap.add_argument("--detect-window", type=float, default=30.0)
    ap.add_argument("--join-timeout", type=float, default=30.0)
    ap.add_argument("--profile", default="lan")
    ap.add_argument("--base-port", type=int, default=21000)
    ap.add_argument("--stderr", default=os.devnull, help="file the processes' stderr goes to")
    a = ap.parse_args()
    n = a.processes
    if n < 2:
        raise SystemExit("perprocess.py: need at least 2 processes")
    names = [f"node-{i}" for i in range(n)]
    victim = n - 1
    err = open(a.stderr, "ab")
    procs = []
    sel = selectors.DefaultSelector()
    # Per process: names it has seen join and not leave, and leaves.
    alive = [set() for _ in range(n)]
    leaves = [[] for _ in range(n)]
    bufs = [b"" for _ in range(n)]
    exited_early = []

    def spawn(i, seed):
        p = subprocess.Popen(
            command(a.impl, a.bin, i, a.base_port + i, seed, a.profile, a.base_port),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        os.set_blocking(p.stdout.fileno(), False)
        sel.register(p.stdout, selectors.EVENT_READ, i)
        procs.append(p)

    def pump(until):
        """Reads event lines until `until` (monotonic)."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            for key, _ in sel.select(timeout=min(left, 0.02)):
                i = key.data
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fileobj)
                    if i != victim or not killed[0]:
                        exited_early.append(i)
                    continue
                bufs[i] += chunk
                *lines, bufs[i] = bufs[i].split(b"\n")
                now = time.monotonic()
                for line in lines:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    node = ev.get("node")
                    if ev.get("event") == "join":
                        alive[i].add(node)
                    elif ev.get("event") == "leave":
                        alive[i].discard(node)
                        leaves[i].append((now, node))
            if cond[0] is not None and cond[0]():
                return

    killed = [False]
    cond = [None]
    result = {
        "bench": "per-process",
        "implementation": IMPL_NAMES[a.impl],
        "variant": a.impl,
        "http_api": a.impl == "headcount-http",
        "processes": n,
        "profile": a.profile,
        "steady_s": a.steady,
    }
    try:
        spawn(0, None)
        if not wait_listening(a.base_port, time.monotonic() + 10):
            raise RuntimeError("node 0 did not start listening within 10 s")
        t0 = time.monotonic()
        seed = f"127.0.0.1:{a.base_port}"
        for i in range(1, n):
            spawn(i, seed)
        everyone = set(names)

        def all_joined():
            return all(everyone <= s | {names[i]} for i, s in enumerate(alive))
        cond[0] = all_joined
        pump(t0 + a.join_timeout)
        joined = all_joined()
        result["join_s"] = time.monotonic() - t0 if joined else None
        # How many nodes (itself included) each process had seen by then.
        result["join_seen"] = [len(s | {names[i]}) for i, s in enumerate(alive)]
        cond[0] = None
        # The steady window.
        pids = [p.pid for p in procs]
        c0 = [cpu_s(pid) for pid in pids]
        w0 = time.monotonic()
        pump(w0 + a.steady)
        w1 = time.monotonic()
        c1 = [cpu_s(pid) for pid in pids]
        mem = [status_kib(pid) for pid in pids]
        # A process that exited (a zombie until waited for) has no memory
        # to report: it is left out of the figures and counted below.
        up = [i for i, p in enumerate(procs) if p.poll() is None]
        exited_early.extend(i for i in range(n) if i not in up)
        if not up:
            raise RuntimeError("every process exited")
        cpu = [c1[i] - c0[i] for i in up]
        mem = [mem[i] for i in up]
        # The kill.
        procs[victim].send_signal(signal.SIGKILL)
        killed[0] = True
        k = time.monotonic()
        gone = names[victim]

        def all_detected():
            return all(gone not in alive[i] for i in range(n) if i != victim)
        cond[0] = all_detected
        pump(k + a.detect_window)
        detected = all_detected()
        result["detect_all_s"] = time.monotonic() - k if detected else None
        cond[0] = None
        false_leaves = sum(1 for i in range(n) for (t, node) in leaves[i]
                           if not (node == gone and t >= k))
        rss = [m.get("VmRSS", 0) for m in mem]
        hwm = [m.get("VmHWM", 0) for m in mem]
        result.update({
            "joined": joined,
            "false_leaves": false_leaves,
            "exited_early": len(set(exited_early)),
            "window_s": w1 - w0,
            "cpu_s": cpu,
            "cpu_s_median": median(cpu),
            "cpu_s_max": max(cpu),
            "cpu_ms_per_s_median": 1000 * median(cpu) / (w1 - w0),
            "rss_kib": rss,
            "rss_kib_median": median(rss),
            "rss_kib_max": max(rss),
            "hwm_kib_median": median(hwm),
            "hwm_kib_max": max(hwm),
            "rss_anon_kib_median": median([m.get("RssAnon", 0) for m in mem]),
            "rss_file_kib_median": median([m.get("RssFile", 0) for m in mem]),
            "threads_median": median([m.get("Threads", 0) for m in mem]),
        })
    except (RuntimeError, OSError) as e:
        print(f"perprocess.py: {a.impl}: {e}", file=sys.stderr)
        result["error"] = str(e)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait()
    print(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
