"""The one report of scripts/bench: every workload's systems (from the shared harness's
results.json and the records each stage appended to records.jsonl), then the performance targets,
each met or missed by how much, then the cold start. Markdown, pasted into the README as it is.

Usage: bench-report.py --shared RESULTS_JSON --records JSONL --commit C --out REPORT_MD [--load L]
(a missing results.json or record is a stage that was not run: its rows and targets say so).
"""
import argparse
import datetime
import json
import os

ap = argparse.ArgumentParser()
ap.add_argument("--shared")
ap.add_argument("--records")
ap.add_argument("--commit")
ap.add_argument("--out")
ap.add_argument("--load", type=float, help="the 1-minute load average when the run ended")
a = ap.parse_args()

shared = json.load(open(a.shared)) if a.shared and os.path.exists(a.shared) else None
records = [json.loads(line) for line in open(a.records) if line.strip()] \
    if a.records and os.path.exists(a.records) else []

# Every (workload, system) as one row: role, wall, CPU, RSS, check.
rows = []
if shared:
    for w in shared["workloads"]:
        for name, s in w["systems"].items():
            role = "floor" if w["group"] == "floor" else "sluice" if name == "sluice" else "anchor"
            if s.get("error"):
                rows.append(dict(workload=w["name"], system=name, role=role, wall_s=None,
                                 cpu_s=None, rss_mib=None, check=f"FAILED ({s['error_short']})"))
                continue
            v = s.get("verify")
            check = "–" if v is None else "OK" if v["ok"] else "MISMATCH"
            rows.append(dict(workload=w["name"], system=name, role=role,
                             wall_s=s["median_wall_s"], cpu_s=s["median_cpu_s"],
                             rss_mib=s["median_rss_mib"], check=check))
for r in records:
    if "workload" in r:
        rows.append(dict(r, system=f"{r['system']} ({r['what']})" if r["workload"].startswith("flat")
                         else r["system"]))


def fastest_anchor(workload):
    walls = [r["wall_s"] for r in rows
             if r["workload"] == workload and r["role"] == "anchor" and r["wall_s"] is not None]
    return min(walls) if walls else None


def floor_of(workload):
    walls = [r["wall_s"] for r in rows
             if r["workload"] == workload and r["role"] == "floor" and r["wall_s"] is not None]
    return min(walls) if walls else None


def get(workload, system):
    for r in rows:
        if r["workload"] == workload and r["system"] == system and r["wall_s"] is not None:
            return r
    return None


def f(x, nd=3):
    return "–" if x is None else f"{x:.{nd}f}"


load1 = a.load if a.load is not None else os.getloadavg()[0]
L = [f"Measured {datetime.date.today().isoformat()} at commit `{a.commit}` with `scripts/bench"
     f"{' --reps ' + str(shared['reps']) if shared else ''}` ({os.cpu_count()} cores, load "
     f"average at the end {load1:.2f}; every system interleaved rep by rep with its anchors; "
     "medians; peak RSS from GNU time). × fastest anchor: this row's wall time over the fastest "
     "anchor's (pandas, polars, DuckDB) in the same workload and run; × floor: over the "
     "workload's floor (reading the file, `COPY`), where it has one.", ""]
L.append("| workload | system | role | median wall s | CPU s | peak RSS MiB | × fastest anchor | × floor | output check |")
L.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
for r in rows:
    best, floor = fastest_anchor(r["workload"]), floor_of(r["workload"])
    measured = r["wall_s"] is not None and r["role"] != "floor"
    ratio = f"{r['wall_s'] / best:.2f}×" if best and measured else "–"
    over = f"{r['wall_s'] / floor:.2f}×" if floor and measured else "–"
    name = r["workload"].replace("|", "\\|")
    L.append(f"| {name} | {r['system']} | {r['role']} | {f(r['wall_s'])} | "
             f"{f(r.get('cpu_s'), 2)} | {f(r['rss_mib'], 0)} | {ratio} | {over} | {r['check']} |")

# The targets (issue 17, and the load/pull/profile issues' for their workloads).
T = []


def target(what, value, goal, met, how=""):
    if value is None:
        T.append(f"| {what} | not measured in this run | {goal} | – |")
    else:
        T.append(f"| {what} | {value} | {goal} | {'met' if met else '**missed** ' + how} |")


def ratio_target(what, workload, other, goal):
    """sluice's wall over `other`'s (None: the fastest anchor's) at most `goal`."""
    s = get(workload, "sluice")
    if other is None:
        base = fastest_anchor(workload)
    else:
        o = get(workload, other)
        base = o["wall_s"] if o else None
    if s is None or base is None:
        return target(what, None, f"≤ {goal}×", False)
    x = s["wall_s"] / base
    target(what, f"{x:.2f}× ({f(s['wall_s'])} s vs {f(base)} s)", f"≤ {goal}×", x <= goal,
           f"by {x / goal:.2f}×")


ratio_target("CSV 1M → Parquet, × fastest anchor (2 cores)", "ingest csv 1M -> parquet", None, 0.5)
csv = get("ingest csv 1M -> parquet", "sluice")
target("CSV 1M → Parquet, peak RSS", csv and f"{csv['rss_mib']:.0f} MiB", "≤ 64 MiB",
       csv is not None and csv["rss_mib"] <= 64, "")
flat = {r["what"]: r for r in records if r.get("workload", "").startswith("flat")}
if "loans_1m.csv" in flat and "loans_2m.csv" in flat:
    r1, r2 = flat["loans_1m.csv"]["rss_mib"], flat["loans_2m.csv"]["rss_mib"]
    target("peak RSS flat when the input doubles (1M → 2M rows)", f"{r1:.0f} → {r2:.0f} MiB",
           "within 10 %", r2 <= r1 * 1.1, f"(+{(r2 / r1 - 1) * 100:.0f} %)")
else:
    target("peak RSS flat when the input doubles", None, "within 10 %", False)
one = "ingest csv 1M -> csv, 1 core (taskset -c 0)"
s1, p1 = get(one, "sluice"), get(one, "polars")
if s1 and p1:
    x = p1["wall_s"] / s1["wall_s"]
    target("1 core: polars' wall over ours (the shared harness pins the CSV → CSV ingest)",
           f"{x:.2f}×", "≥ 2×", x >= 2, f"by {2 / x:.2f}×")
else:
    target("1 core: polars' wall over ours", None, "≥ 2×", False)
ratio_target("xlsx 100k, × polars (the shared harness writes CSV from xlsx)",
             "ingest xlsx 100k -> csv", "polars", 0.5)
nw = next((r["workload"] for r in records if r.get("workload", "").startswith("normalize")), "")
ratio_target("normalize, × DuckDB", nw, "duckdb", 1.0)
ratio_target("extract from CSV, × DuckDB", "moving avg 1M clean csv -> 72 csv", "duckdb", 0.5)
ratio_target("extract from Parquet, × DuckDB (earlier target: no slower)",
             "moving avg 1M clean parquet -> 72 csv", "duckdb", 1.0)
pw = next((r["workload"] for r in records if r.get("workload", "").startswith("profile")), "")
ratio_target("profile, × fastest anchor (profile issue: faster than both)", pw, None, 1.0)
for r in records:
    w = r.get("workload", "")
    if (w.startswith("load") or w.startswith("pull")) and r["role"] == "sluice":
        floor = next((x for x in records if x.get("workload") == w and x["role"] == "floor"), None)
        goal = 1.3 if w.startswith("load") else 1.5
        if floor:
            x = r["wall_s"] / floor["wall_s"]
            target(f"{w}: {r['system']}, × floor", f"{x:.2f}×", f"≤ {goal}×", x <= goal,
                   f"by {x / goal:.2f}×")
cold = [r for r in records if "coldstart" in r]
if cold:
    worst = max(r["init_ms"] for r in cold)
    target("init (process start → ready), worst function", f"{worst:.1f} ms", "≤ 30 ms",
           worst <= 30, "")
else:
    target("init (process start → ready)", None, "≤ 30 ms", False)
L += ["", "Targets:", "", "| target | measured (same run) | goal | met? |", "| --- | --- | --- | --- |"]
L += T

if cold:
    L += ["", "Cold start (release x86-64 binaries on this machine, a Runtime API of our own, "
          "against the local AWS emulator):", "",
          "| function | event | init ms | first invocation ms | binary MiB | outcome |",
          "| --- | --- | ---: | ---: | ---: | --- |"]
    for r in cold:
        L.append(f"| {r['coldstart']} | `{r['event']}` | {r['init_ms']:.1f} | "
                 f"{r['first_ms']:.1f} | {r['binary_mib']:.1f} | {r['outcome'].replace('|', '/')} |")

text = "\n".join(L) + "\n"
with open(a.out, "w") as out:
    out.write(text)
