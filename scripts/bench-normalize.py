"""Normalize at scale: `sluice normalize` (the Aspen model) against DuckDB doing the same
tables with SQL, on synthetic curated data shaped like the Aspen workbook, interleaved.

Usage: .venv/bin/python scripts/bench-normalize.py SLUICE_BINARY [ROWS] [REPS]

Writes the two curated datasets (string columns, as `sluice ingest` writes them) under a
temporary folder: ROWS borrowers with the workbook's proportions of absent values, and one
role each. Then, REPS times, runs sluice and DuckDB one after the other (each a whole process:
start, read, build nine tables, write Parquet), and prints each system's median wall time and
peak RSS, the ratio, and whether both wrote the same row counts per table. DuckDB's SQL keys
rows with md5 of the natural key (sluice: a v5 UUID) and checks nothing: it is the floor for
the joins, explode and writes, not the same rule set (no quarantine, no foreign-key check).
"""
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

sluice = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

rng = random.Random(5)
first = ["Ann", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ida", "Jo"]
last = ["Lee", "De la Cruz", "O' Cloney", "Wu", "Marsh", "Stone", "Young"]
states = ["California", "Texas", "Florida", "New York", "Connecticut", "Ohio"]
domains = ["example.com", "mail.org", "agency.gov", "school.edu", "corp.co.uk"]


def maybe(p, v):
    return v if rng.random() < p else None


ids, names, streets, cities, sts, zips, home, cell, email, roles = ([] for _ in range(10))
for i in range(rows):
    ids.append(f"{rng.getrandbits(128):032x}")
    names.append(f"{rng.choice(first)} {rng.choice(last)}")
    present = rng.random() < 0.683  # 317 of 1,000 miss street, home phone and e-mail together
    streets.append(f"{rng.randint(1, 99999)} Main St" if present else None)
    cities.append(f"City {rng.randint(1, 500)}")
    sts.append(rng.choice(states))
    zips.append(f"{rng.randint(501, 99950):05d}")
    home.append(f"{rng.randint(200, 999)}-555-{rng.randint(0, 9999):04d}" if present else None)
    cell.append(maybe(0.778, f"{rng.randint(200, 999)}-555-{rng.randint(0, 9999):04d}"))
    email.append(f"user{i}@{rng.choice(domains)}" if present else None)
    roles.append("borrower" if rng.random() < 0.516 else "co-borrower")

work = tempfile.mkdtemp(prefix="bench-normalize-")
lake = os.path.join(work, "lake")
os.makedirs(f"{lake}/data/aspen_borrower")
os.makedirs(f"{lake}/data/aspen_role_profile")
pq.write_table(
    pa.table({"id": ids, "full_name": names, "street": streets, "city": cities, "state": sts,
              "zip_code": zips, "phone_home": home, "phone_cell": cell, "email": email}),
    f"{lake}/data/aspen_borrower/borrowers.parquet", compression="snappy")
pq.write_table(pa.table({"borrower_id": ids, "role_profile": roles}),
               f"{lake}/data/aspen_role_profile/roles.parquet", compression="snappy")

DUCKDB_SQL = """
import duckdb, sys
lake, out = sys.argv[1], sys.argv[2]
c = duckdb.connect()
c.execute(f"create view b as select * from read_parquet('{lake}/data/aspen_borrower/*.parquet')")
c.execute(f"create view r as select * from read_parquet('{lake}/data/aspen_role_profile/*.parquet')")
audit = "timestamp '2026-01-01 00:00:00' as created, 'sluice' as created_by, null::timestamp as updated, null::varchar as updated_by"
def k(t, *cols):
    return "md5('" + t + "' || " + " || '|' || ".join(cols) + ")"
tables = {
 "phone_number_type": f"select * , {audit} from (values (51, 'phone_home'), (52, 'phone_cell')) t(phone_number_type_id, type)",
 "email_type": f"select *, {audit} from (values (71, 'email_work'), (72, 'email_personal')) t(email_type_id, type)",
 "role_profile_type": f"select *, {audit} from (values (91, 'borrower'), (92, 'co-borrower')) t(role_profile_type_id, type)",
 "user_profile": f"select {k('user_profile', 'id')} as user_profile_id, split_part(trim(full_name), ' ', 1) as first_name, nullif(trim(substr(trim(full_name), strpos(trim(full_name), ' '))), '') as last_name, {audit} from b",
 "user": f"select {k('user', 'id')} as user_id, {k('user_profile', 'id')} as user_profile_id, {audit} from b",
 "role_profile": f"select {k('role_profile', 'borrower_id')} as role_profile_id, {k('user', 'borrower_id')} as user_id, case role_profile when 'borrower' then 91 else 92 end as role_profile_type_id, {audit} from r",
 "phone_number": f"select {k('phone_number', 'id', 'type')} as phone_number_id, {k('role_profile', 'borrower_id')} as role_profile_id, case type when 'phone_home' then 51 else 52 end as phone_number_type_id, value, {audit} from (select id, 'phone_home' as type, phone_home as value from b union all select id, 'phone_cell', phone_cell from b) p join r on p.id = r.borrower_id where value is not null",
 "address": f"select {k('address', 'id')} as address_id, {k('role_profile', 'borrower_id')} as role_profile_id, street, city, state, zip_code, {audit} from b join r on b.id = r.borrower_id",
 "email": f"select {k('email', 'id')} as email_id, {k('role_profile', 'borrower_id')} as role_profile_id, case when lower(email) like '%.com' then 72 else 71 end as email_type_id, email as value, {audit} from b join r on b.id = r.borrower_id where email is not null",
}
import os
for name, sql in tables.items():
    os.makedirs(f"{out}/data/aspen_model_{name}", exist_ok=True)
    c.execute(f"copy ({sql}) to '{out}/data/aspen_model_{name}/aspen_model_{name}.parquet' (format parquet, compression snappy)")
"""
duck_script = os.path.join(work, "duck.py")
with open(duck_script, "w") as f:
    f.write(DUCKDB_SQL)

commands = {
    "sluice": lambda out: [sluice, "normalize", "--model", f"{repo}/config/models/aspen.json",
                           "--input", lake, "--out", out, "--as-of", "2026-01-01 00:00:00"],
    "duckdb": lambda out: [sys.executable, duck_script, lake, out],
}
times = {name: [] for name in commands}
rss = {name: [] for name in commands}
for rep in range(reps):
    for name, cmd in commands.items():
        out = os.path.join(work, f"{name}-{rep}")
        # Peak RSS from GNU time, not from this process's wait4: a child started by
        # subprocess (vfork, then exec) reports at least this process's own peak (the data
        # generated above, ~285 MiB at 200k), whatever it used itself.
        rss_file = os.path.join(work, "rss.txt")
        start = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if p.returncode != 0:
            sys.exit(f"{name} failed: {p.stderr.decode()}")
        times[name].append(elapsed)
        with open(rss_file) as f:
            rss[name].append(int(f.read().split()[-1]) / 1024)


def counts(out):
    base = os.path.join(out, "data")
    return {t: pq.ParquetFile(os.path.join(base, t, t + ".parquet")).metadata.num_rows
            for t in sorted(os.listdir(base))}


same = counts(os.path.join(work, "sluice-0")) == counts(os.path.join(work, "duckdb-0"))
print(f"{rows} borrowers, {reps} interleaved runs each (median wall time, peak RSS)")
for name in commands:
    print(f"  {name:<7} {statistics.median(times[name]):7.3f} s   {max(rss[name]):7.1f} MiB")
ratio = statistics.median(times["sluice"]) / statistics.median(times["duckdb"])
print(f"  sluice / duckdb: {ratio:.2f}x time")
print(f"  same row counts in all nine tables: {same}")
print(f"  tables: {counts(os.path.join(work, 'sluice-0'))}")
if os.environ.get("SLUICE_BENCH_JSONL"):  # scripts/bench collects every stage's medians
    import json
    what = {"sluice": "sluice normalize (v5 UUID keys, every rule checked, quarantine)",
            "duckdb": "DuckDB SQL, md5 keys, no checks (the floor for joins and writes)"}
    with open(os.environ["SLUICE_BENCH_JSONL"], "a") as f:
        for name in commands:
            f.write(json.dumps({
                "workload": f"normalize aspen {rows // 1000}k borrowers -> 9 tables",
                "system": name, "role": "sluice" if name == "sluice" else "anchor",
                "what": what[name], "wall_s": statistics.median(times[name]),
                "rss_mib": max(rss[name]),
                "check": "OK (row counts)" if same else "MISMATCH (row counts)"}) + "\n")
