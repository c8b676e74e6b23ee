#!/usr/bin/env python3
"""Renders docs/benchmarks.md from the JSON lines of `headcount bench`,
`mlbench` and, when present, `al8n-bench` (bench/run.sh). Medians per
implementation and node count, the ratios headcount/Go (and headcount/al8n)
per figure, and the targets of the benchmark issue (against Go). Without
al8n rows the output is the same as before the al8n column existed."""

import argparse
import json
import math
import platform
import statistics
import subprocess
from collections import defaultdict

RS, GO, AL = "headcount", "go-memberlist", "al8n-memberlist"

# (key, label, format, lower is better)
FIGURES = [
    ("join_converge_s", "join converge (s)", "{:.2f}"),
    ("detect_all_s", "detect all (s)", "{:.2f}"),
    ("false_leaves", "false leaves", "{:.0f}"),
    ("join_failures", "join failures", "{:.0f}"),
    ("cpu_s_total", "CPU total (s)", "{:.2f}"),
    ("cpu_s_after_kill", "CPU after kill (s)", "{:.2f}"),
    ("cpu_ms_per_node_s", "CPU per node (ms/s)", "{:.3f}"),
    ("maxrss_kib", "max RSS (KiB)", "{:.0f}"),
    ("baseline_rss_kib", "RSS before the nodes (KiB)", "{:.0f}"),
    ("rss_kib_per_node", "max RSS / N (KiB)", "{:.0f}"),
    ("node_rss_kib_per_node", "(max RSS − RSS before) / N (KiB)", "{:.0f}"),
    ("udp_bytes_per_node_s", "UDP B/node/s", "{:.0f}"),
    ("tcp_bytes_per_node_s", "TCP B/node/s", "{:.0f}"),
    ("bytes_per_node_s", "all B/node/s", "{:.0f}"),
    ("elapsed_s", "elapsed (s)", "{:.1f}"),
]

# The targets of the scale issue (#16), as ratios of the medians in one
# run: figure -> (description, largest ratio against Go, against al8n);
# None: no target against that one.
TARGETS = [
    ("cpu_ms_per_node_s", "CPU per node", 0.25, 0.6),
    ("node_rss_kib_per_node", "memory per node above the process baseline", 0.2, 0.6),
    ("join_converge_s", "join convergence", 0.5, 0.5),
    ("detect_all_s", "detection of all kills", 1.0, 1.0),
    ("bytes_per_node_s", "bytes per node per second (UDP + TCP)", 1.0, None),
]
# Memory per node above the process baseline, in KiB, at this N.
NODE_KIB_TARGET = (256, 64)


def derive(r):
    n, el = r["nodes"], r["elapsed_s"]
    r["cpu_ms_per_node_s"] = 1000.0 * r["cpu_s_total"] / n / el
    r["rss_kib_per_node"] = r["maxrss_kib"] / n
    r["node_rss_kib_per_node"] = (r["maxrss_kib"] - r["baseline_rss_kib"]) / n
    u, t = r.get("udp_bytes_per_node_s"), r.get("tcp_bytes_per_node_s")
    r["bytes_per_node_s"] = None if u is None or t is None else u + t
    for k in ("join_converge_s", "detect_all_s"):
        # Not reached within its window: infinitely late.
        if r.get(k) is None:
            r[k] = math.inf
    return r


def median(xs):
    return statistics.median(xs) if xs else None


def fmt(v, f, window=None):
    if v is None:
        return "–"
    if math.isinf(v):
        return f"> {window:.0f}" if window else "never"
    return f.format(v)


def ratio(a, b):
    if a is None or b is None:
        return None
    if math.isinf(a) and math.isinf(b):
        return None
    if math.isinf(b):
        return 0.0 if not math.isinf(a) else None
    if b == 0:
        return None if a == 0 else math.inf
    return a / b


def fmt_ratio(a, b, key, windows):
    if key in ("join_converge_s", "detect_all_s") and b is not None and math.isinf(b):
        if a is not None and not math.isinf(a):
            # Go never got there within the window: the ratio is at most this.
            return f"< {a / windows[key]:.2f}"
    r = ratio(a, b)
    if r is None:
        return "–"
    if math.isinf(r):
        return "∞"
    return f"{r:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--notes")
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--params", default="")
    ap.add_argument("--go-version", default="", help="the hashicorp/memberlist version Go ran")
    ap.add_argument("--per-process", help="JSON lines of bench/perprocess.py")
    ap.add_argument("--per-process-params", default="")
    a = ap.parse_args()
    pp_rows = []
    if a.per_process:
        with open(a.per_process) as f:
            pp_rows = [json.loads(l) for l in f if l.strip().startswith("{")]

    rows = []
    hung = defaultdict(int)
    with open(a.results) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                r = json.loads(line)
                if r.get("hung"):
                    # Killed by run.sh after 4x its duration: no figures.
                    hung[(r["implementation"], r["nodes"])] += 1
                    continue
                rows.append(derive(r))
    by = defaultdict(list)
    for r in rows:
        by[(r["implementation"], r["nodes"])].append(r)
    sizes = sorted({r["nodes"] for r in rows} | {n for (_, n) in hung})
    has_al = any(r["implementation"] == AL for r in rows) or any(i == AL for (i, _) in hung)

    # Windows in which join/detect are measured, for "> x" entries.
    def windows_for(n):
        rs = by[(RS, n)] + by[(GO, n)] + by[(AL, n)]
        if not rs:
            return {}
        kill_at = rs[0]["kill_at_s"]
        return {"join_converge_s": kill_at, "detect_all_s": rs[0]["elapsed_s"] - kill_at}

    out = []
    p = out.append
    p("# Benchmarks: headcount vs. Go memberlist" + (" and al8n's memberlist" if has_al else ""))
    p("")
    p(f"Generated by `{a.command.strip()}` — do not edit by hand; the prose comes from `bench/notes.md`.")
    p("")
    try:
        cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        cpu = "?"
    ncpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    p(f"Machine: {ncpu} CPU ({cpu}), {platform.system()} {platform.release()}. Parameters: {a.params}.")
    if a.go_version:
        p(f"Go: hashicorp/memberlist {a.go_version}.")
    if has_al:
        p("Each cell is the median over the repeats; the ratios are headcount / Go and headcount / al8n of the medians.")
        p("The targets below are against Go; al8n is the `memberlist` crate from crates.io (see the notes).")
    else:
        p("Each cell is the median over the repeats; the ratio is headcount / Go of the medians.")
    p("A join or detection that did not happen within its window counts as infinitely late (`> window`).")
    p("")

    for n in sizes:
        rs, go, al = by[(RS, n)], by[(GO, n)], by[(AL, n)]
        if not rs and not go and not al:
            p(f"## N = {n}: every run hung and was killed; no figures")
            p("")
            continue
        w = windows_for(n)
        first = (rs or go or al)[0]
        k = first["killed"]
        when = f" at {first['kill_at_s']:g} s"
        rt = f", headcount runtime {rs[0]['runtime']}" if rs else ""
        hung_note = "".join(
            f"; {hung[(impl, n)]} {label} run(s) hung and were killed, not counted"
            for impl, label in ((RS, "headcount"), (GO, "Go"), (AL, "al8n"))
            if hung[(impl, n)]
        )
        al_runs = f", {len(al)} al8n runs" if has_al else ""
        p(f"## N = {n} (kill {k}{when}{rt}; {len(rs)} headcount runs, {len(go)} Go runs{al_runs}{hung_note})")
        p("")
        if has_al:
            p("| figure | headcount | Go | al8n | headcount/Go | headcount/al8n |")
            p("| --- | ---: | ---: | ---: | ---: | ---: |")
        else:
            p("| figure | headcount | Go | headcount/Go |")
            p("| --- | ---: | ---: | ---: |")
        for key, label, f in FIGURES:
            mr = median([r[key] for r in rs])
            mg = median([r[key] for r in go])
            if has_al:
                # The al8n twin may report a byte count as null (not counted).
                ma = median([r[key] for r in al if r.get(key) is not None])
                p(f"| {label} | {fmt(mr, f, w.get(key))} | {fmt(mg, f, w.get(key))} | {fmt(ma, f, w.get(key))} "
                  f"| {fmt_ratio(mr, mg, key, w)} | {fmt_ratio(mr, ma, key, w)} |")
            else:
                p(f"| {label} | {fmt(mr, f, w.get(key))} | {fmt(mg, f, w.get(key))} | {fmt_ratio(mr, mg, key, w)} |")
        p("")

    if sizes:
        targets_table(p, sizes, by, windows_for)
    if pp_rows:
        per_process_table(p, pp_rows, a.per_process_params)

    if a.notes:
        with open(a.notes) as f:
            p(f.read().rstrip())
            p("")

    p("## Raw results")
    p("")
    p("One JSON line per run, as printed by the " + ("three" if has_al else "two") + " programs (`target/bench/results.jsonl`).")
    p("")
    p("```")
    with open(a.results) as f:
        for line in f:
            if line.startswith("{"):
                p(line.rstrip())
    p("```")
    if pp_rows:
        p("")
        p("One node per process: one JSON line per implementation and repeat, as printed by "
          "`bench/perprocess.py` (`target/bench/perprocess.jsonl`).")
        p("")
        p("```")
        for r in pp_rows:
            p(json.dumps(r))
        p("```")
    print("\n".join(out))


def targets_table(p, sizes, by, windows_for):
    p("## Targets")
    p("")
    p("Ratios of the medians above (headcount / the other); ✅ met, ❌ missed, – not measured. "
      "Bytes have no target against al8n: its encoding is not Go's.")
    p("")
    hdr = "| target | " + " | ".join(f"N={n}" for n in sizes) + " |"
    p(hdr)
    p("| --- |" + " ---: |" * len(sizes))

    def cell(key, other, limit, n):
        w = windows_for(n)
        mr = median([r[key] for r in by[(RS, n)]])
        mo = median([r[key] for r in by[(other, n)] if r.get(key) is not None])
        if mr is None or mo is None:
            return "–"
        s = fmt_ratio(mr, mo, key, w)
        r = ratio(mr, mo)
        if s.startswith("<"):
            ok = float(s[1:]) <= limit
        else:
            ok = r is not None and r <= limit
        return f"{s} {'✅' if ok else '❌'}"

    for key, desc, go_limit, al_limit in TARGETS:
        for other, label, limit in ((GO, "Go", go_limit), (AL, "al8n", al_limit)):
            if limit is None or not any(by[(other, n)] for n in sizes):
                continue
            cells = [cell(key, other, limit, n) for n in sizes]
            p(f"| {desc} ≤ {limit} × {label} | " + " | ".join(cells) + " |")
    at, kib = NODE_KIB_TARGET
    cells = []
    for n in sizes:
        m = median([r["node_rss_kib_per_node"] for r in by[(RS, n)]])
        if n != at or m is None:
            cells.append(fmt(m, "{:.0f}") + " KiB" if m is not None else "–")
        else:
            cells.append(f"{m:.0f} KiB {'✅' if m <= kib else '❌'}")
    p(f"| memory per node above the baseline ≤ {kib} KiB at N = {at} | " + " | ".join(cells) + " |")
    fl = [(n, median([r["false_leaves"] for r in by[(RS, n)]])) for n in sizes]
    p("| headcount false_leaves = 0 | " + " | ".join(
        f"{fmt(v, '{:.0f}')} {'✅' if v == 0 else '❌'}" for _, v in fl) + " |")
    p("")


# The per-process target: resident memory of one headcount agent.
AGENT_RSS_TARGET_KIB = 3 * 1024

# (variant, column label)
PP_COLUMNS = [
    ("headcount", "headcount"),
    ("headcount-lean", "headcount (lean build)"),
    ("headcount-http", "headcount + HTTP API"),
    ("go", "Go"),
    ("al8n", "al8n"),
]


def per_process_table(p, rows, params):
    """The "one node per process" table: figures pooled over the repeats
    (per-process values: median and max over every process of every run;
    per-run values: median over the runs; false leaves and early exits:
    summed)."""
    by = defaultdict(list)
    for r in rows:
        if "error" not in r:
            by[r.get("variant", r["implementation"])].append(r)
    cols = [(v, label) for v, label in PP_COLUMNS if by[v]]
    if not cols:
        return
    n = rows[0]["processes"]
    p("## One node per process")
    p("")
    runs = ", ".join(f"{len(by[v])} {label}" for v, label in cols)
    p(f"{n} processes of each implementation on 127.0.0.1, one node each ({params}; runs: {runs}). "
      "Memory is each process's `/proc/PID/status` at the end of the steady window, CPU its "
      "utime + stime over the window; process figures are the median and the max over every "
      "process of every run, join and detection the median over the runs. "
      "\"headcount\" is `headcount agent --http off`; \"headcount (lean build)\" the same "
      "command on the lean agent build (`--no-default-features`: no HTTP API, DNS, client, "
      "demo, bench or tune; static glibc, as README.md builds it); \"headcount + HTTP API\" the agent as "
      "shipped (API on loopback); Go and al8n nodes have no HTTP server. Ratios are headcount "
      "(the full build without the API) over the others.")
    p("")

    def pooled(v, key):
        return [x for r in by[v] for x in r.get(key) or []]

    def run_median(v, key):
        xs = [r.get(key) for r in by[v]]
        if any(x is None for x in xs):
            # Not within its window in some run: counted as infinitely late.
            xs = [math.inf if x is None else x for x in xs]
        return median(xs)

    figures = [
        ("RSS per process, median (KiB)", lambda v: median(pooled(v, "rss_kib")), "{:.0f}"),
        ("RSS per process, max (KiB)", lambda v: max(pooled(v, "rss_kib"), default=None), "{:.0f}"),
        ("peak RSS (VmHWM), max (KiB)", lambda v: max((r["hwm_kib_max"] for r in by[v]), default=None), "{:.0f}"),
        ("of the RSS: anonymous, median (KiB)", lambda v: median([r["rss_anon_kib_median"] for r in by[v]]), "{:.0f}"),
        ("of the RSS: file-backed, median (KiB)", lambda v: median([r["rss_file_kib_median"] for r in by[v]]), "{:.0f}"),
        ("CPU per process over the window, median (s)", lambda v: median(pooled(v, "cpu_s")), "{:.2f}"),
        ("CPU per process over the window, max (s)", lambda v: max(pooled(v, "cpu_s"), default=None), "{:.2f}"),
        ("threads per process, median", lambda v: median([r["threads_median"] for r in by[v]]), "{:.0f}"),
        ("join, all see all (s)", lambda v: run_median(v, "join_s"), "{:.2f}"),
        ("kill detected by all survivors (s)", lambda v: run_median(v, "detect_all_s"), "{:.2f}"),
        ("false leaves (all runs)", lambda v: sum(r["false_leaves"] for r in by[v]), "{:.0f}"),
        ("processes that exited early (all runs)", lambda v: sum(r["exited_early"] for r in by[v]), "{:.0f}"),
    ]
    have = {v for v, _ in cols}
    ratio_cols = [(o, f"headcount/{label}") for o, label in (("go", "Go"), ("al8n", "al8n")) if o in have]
    p("| figure | " + " | ".join(label for _, label in cols) + "".join(f" | {h}" for _, h in ratio_cols) + " |")
    p("| --- |" + " ---: |" * (len(cols) + len(ratio_cols)))
    for label, get, f in figures:
        vals = {v: get(v) for v, _ in cols}
        cells = [fmt(vals[v], f) for v, _ in cols]
        for o, _ in ratio_cols:
            a, b = vals.get("headcount"), vals.get(o)
            r = ratio(a, b) if "false leaves" not in label and "exited" not in label else None
            cells.append("–" if r is None else ("∞" if math.isinf(r) else f"{r:.2f}"))
        p(f"| {label} | " + " | ".join(cells) + " |")
    p("")
    for v, label in (("headcount", "headcount agent"),
                     ("headcount-lean", "headcount agent, lean build"),
                     ("headcount-http", "headcount agent with its HTTP API")):
        if by[v]:
            m = median(pooled(v, "rss_kib"))
            ok = m is not None and m <= AGENT_RSS_TARGET_KIB
            p(f"Target: {label}, RSS ≤ 3 MB (3072 KiB, median per process): "
              f"{fmt(m, '{:.0f}')} KiB {'✅ met' if ok else '❌ missed'}.")
            p("")


if __name__ == "__main__":
    main()
