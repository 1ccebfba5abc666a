#!/usr/bin/env python3
"""Summaries of a benches/peers run, from its raw file (one `key=value ...` line per wrk run).

  summarize.py RAW           the tables (medians per cell, then edgecache's ratios per round)
                             and one machine-readable line per cell and per ratio
  summarize.py --last RAW    one progress line for the last run in RAW (run.sh prints it
                             after every run)

Why ratios per round: on a shared 2-core machine the throughput of every server drifts by
10-20 % over minutes (the load generator, other processes, CPU frequency). Within one round the
targets run back to back, so each sees nearly the same machine; dividing edgecache's rps by a
peer's rps of the *same round* cancels most of the drift, and the median over rounds drops an
odd round. A ratio of the medians would mix rounds and keep the drift.
"""

import statistics
import sys
from collections import defaultdict

SIZE_ORDER = ["1k", "16k", "256k", "1m"]
TARGET_ORDER = ["nginx", "varnish", "ceiling", "edgecache", "base", "origin"]
EDGE = "edgecache"
# Other processes' CPU (100 = one core) above which a run is flagged as disturbed.
BUSY_PCT = 20
# (numerator, denominator, modes): the ratios that answer "what does edgecache cost?"
RATIOS = [
    (EDGE, "ceiling", ("hit",)),  # the price of the cache logic: keep it near 1
    (EDGE, "nginx", ("hit", "miss")),
    (EDGE, "varnish", ("hit", "miss")),
    # With BASE_BIN: this build against another one, and the other one against the ceiling.
    (EDGE, "base", ("hit", "miss")),
    ("base", "ceiling", ("hit",)),
]


def parse(path):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            d = dict(kv.split("=", 1) for kv in line.split())
            secs = int(d["duration_us"]) / 1e6
            reqs = int(d["requests"])
            clk = int(d["clk_tck"])
            srv_s = int(d["srv_ticks"]) / clk
            d["round"] = int(d["round"])
            d["requests"] = reqs
            d["rps"] = reqs / secs if secs else 0.0
            d["mib_s"] = int(d["bytes"]) / secs / 2**20 if secs else 0.0
            d["p50_ms"] = int(d["lat_p50_us"]) / 1000
            d["p99_ms"] = int(d["lat_p99_us"]) / 1000
            d["errors"] = sum(int(v) for k, v in d.items() if k.startswith("err_"))
            # CPU time of every process listening on the target's port (nginx master and
            # workers, varnish manager and child, ...), per request and as a share of one core
            d["cpu_us_req"] = srv_s * 1e6 / reqs if reqs else 0.0
            d["srv_cpu_pct"] = srv_s / secs * 100 if secs else 0.0
            # near 100 % means one wrk thread was the bottleneck, not the server
            d["wrk_cpu_pct"] = float(d["wrk_cpu_s"]) / secs * 100 if secs else 0.0
            d["origin_reqs"] = int(d["origin_reqs"])
            # What the rest of the machine used meanwhile: all CPUs' busy time minus the
            # target's, the origin's and wrk's. A compile or any other load shows up here, and
            # makes that run's rps (not its us/req) meaningless.
            # (nan in raw files written before run.sh recorded it)
            if "machine_ticks" in d and secs:
                other_s = int(d["machine_ticks"]) - int(d["srv_ticks"]) - int(d["origin_ticks"])
                other_s = other_s / clk - float(d["wrk_cpu_s"])
                d["other_cpu_pct"] = max(0.0, other_s / secs * 100)
            else:
                d["other_cpu_pct"] = float("nan")
            runs.append(d)
    return runs


def ordered(values, order):
    known = [v for v in order if v in values]
    return known + sorted(v for v in values if v not in order)


def last(path):
    runs = parse(path)
    if not runs:
        return
    d = runs[-1]
    warn = ""
    if d["mode"] == "hit" and d["origin_reqs"]:
        warn += f"  WARNING: {d['origin_reqs']} origin requests on a HIT run"
    if d["errors"]:
        warn += f"  WARNING: {d['errors']} errors"
    if d["other_cpu_pct"] > BUSY_PCT:
        warn += f"  WARNING: other processes used {d['other_cpu_pct']:.0f}% CPU"
    print(
        f"  {d['mode']:4} r{d['round']} {d['size']:>4} {d['target']:<9} {d['rps']:>8.0f} rps"
        f"  p50 {d['p50_ms']:6.2f}  p99 {d['p99_ms']:7.2f} ms  {d['cpu_us_req']:6.1f} us/req"
        f"  srv {d['srv_cpu_pct']:3.0f}%  wrk {d['wrk_cpu_pct']:3.0f}%"
        f"  other {d['other_cpu_pct']:3.0f}%{warn}",
        flush=True,
    )


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def summary(path):
    runs = parse(path)
    if not runs:
        sys.exit(f"summarize: no runs in {path}")
    med = statistics.median
    cells = defaultdict(list)  # (mode, size, target) -> runs
    by_round = {}  # (mode, size, target, round) -> run
    for d in runs:
        cells[(d["mode"], d["size"], d["target"])].append(d)
        by_round[(d["mode"], d["size"], d["target"], d["round"])] = d
    modes = [m for m in ("hit", "miss") if any(k[0] == m for k in cells)]
    sizes = ordered({k[1] for k in cells}, SIZE_ORDER)
    targets = ordered({k[2] for k in cells}, TARGET_ORDER)
    rounds = sorted({d["round"] for d in runs})

    def per_round(mode, size, num, den, key="rps"):
        """num's key / den's key for every round in which both ran, in round order."""
        out = []
        for r in rounds:
            a, b = by_round.get((mode, size, num, r)), by_round.get((mode, size, den, r))
            if a is not None and b is not None and b[key]:
                out.append(a[key] / b[key])
        return out

    # ---- medians per cell ------------------------------------------------------------------
    head = (
        f"{'mode':4} {'size':>4} {'target':<9} {'rps':>8} {'min..max':>17} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'MiB/s':>7} {'us/req':>7} {'srvCPU':>6} {'wrkCPU':>6} "
        f"{'other':>6} {'errors':>6} {'origin':>6}"
    )
    print(f"medians over {len(rounds)} round(s)")
    print(head)
    print("-" * len(head))
    machine = []
    for mode in modes:
        for s in sizes:
            any_row = False
            for t in targets:
                rs = cells.get((mode, s, t))
                if not rs:
                    continue
                any_row = True
                m = {
                    k: med([d[k] for d in rs])
                    for k in ("rps", "p50_ms", "p99_ms", "mib_s", "cpu_us_req",
                              "srv_cpu_pct", "wrk_cpu_pct", "other_cpu_pct")
                }
                errors = sum(d["errors"] for d in rs)
                origin = max(d["origin_reqs"] for d in rs)
                lo, hi = min(d["rps"] for d in rs), max(d["rps"] for d in rs)
                print(
                    f"{mode:4} {s:>4} {t:<9} {m['rps']:>8.0f} {lo:>8.0f}..{hi:<8.0f} "
                    f"{m['p50_ms']:>7.2f} {m['p99_ms']:>7.2f} {m['mib_s']:>7.1f} "
                    f"{m['cpu_us_req']:>7.1f} {m['srv_cpu_pct']:>5.0f}% {m['wrk_cpu_pct']:>5.0f}% "
                    f"{m['other_cpu_pct']:>5.0f}% {errors:>6} {origin:>6}"
                )
                line = (
                    f"target={t} size={s} mode={mode} rps={m['rps']:.0f} "
                    f"p50_ms={m['p50_ms']:.2f} p99_ms={m['p99_ms']:.2f} "
                    f"cpu_us_per_req={m['cpu_us_req']:.1f} wrk_cpu_pct={m['wrk_cpu_pct']:.0f} "
                    f"errors={errors} origin_reqs_max={origin} rounds={len(rs)}"
                )
                if mode == "hit" and t != "ceiling":
                    r = per_round(mode, s, t, "ceiling")
                    line += f" ratio_to_ceiling={fmt(med(r) if r else None, '.3f')}"
                if t == EDGE:
                    for _, den, ms in RATIOS:
                        if den != "ceiling" and mode in ms:
                            r = per_round(mode, s, EDGE, den)
                            line += f" ratio_to_{den}={fmt(med(r) if r else None, '.3f')}"
                machine.append(line)
            if any_row:
                print()
    print(
        "rps, p50/p99 (wrk's latency), MiB/s: medians over rounds; min..max: the spread of rps.\n"
        "us/req, srvCPU: CPU time of the processes listening on the target's port, per request\n"
        "and as a share of one core; wrkCPU: the load generator's (near 100 % = wrk was the\n"
        "limit); other: the rest of the machine's (a compile, ...; above 20 % the run's rps\n"
        "is disturbed). errors: wrk's, summed; origin: most origin requests in one run (must\n"
        "be 0 on HIT)."
    )

    # ---- edgecache's ratios, per round ---------------------------------------------------------
    if EDGE in targets:
        print()
        print("edgecache's rps / the peer's rps in the same round, per round and their median;")
        print("and edgecache's CPU per request / the peer's, median over rounds")
        head = (f"{'mode':4} {'size':>4} {'ratio':<20} {'rps, per round':<24} {'median':>6} "
                f"{'us/req':>7}")
        print(head)
        print("-" * len(head))
        for mode in modes:
            for s in sizes:
                for num, den, ms in RATIOS:
                    if mode not in ms:
                        continue
                    r = per_round(mode, s, num, den)
                    if not r:
                        continue
                    cpu = per_round(mode, s, num, den, "cpu_us_req")
                    cpu_med = med(cpu) if cpu else None
                    each = ", ".join(f"{x:.2f}" for x in r)
                    print(f"{mode:4} {s:>4} {num + ' / ' + den:<20} {each:<24} {med(r):>6.2f} "
                          f"{fmt(cpu_med, '>7.2f')}")
                    machine.append(
                        f"ratio={num}/{den} size={s} mode={mode} median={med(r):.3f} "
                        f"per_round={','.join(f'{x:.3f}' for x in r)} "
                        f"cpu_per_req_ratio={fmt(cpu_med, '.3f')}"
                    )
        print(
            "edgecache / ceiling (rps) is what edgecache's cache logic costs on its own stack:\n"
            "1.00 is nothing, above 1 is noise. The us/req ratio says the same in CPU (1.00 is\n"
            "nothing, above 1 is the cost) and holds better when other processes load the\n"
            "machine. / nginx and / varnish compare edgecache with the peers (rps: above 1 is\n"
            "faster; us/req: below 1 is cheaper)."
        )

    print()
    for line in machine:
        print(line)


def main(argv):
    if len(argv) == 3 and argv[1] == "--last":
        last(argv[2])
    elif len(argv) == 2 and not argv[1].startswith("-"):
        summary(argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
