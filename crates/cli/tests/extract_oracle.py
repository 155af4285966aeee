"""The extract's statistics computed independently, with DuckDB window functions, straight from
the CSV exports (bank, branch, client, account, loans with the ERD's column names).

Usage: python extract_oracle.py DIR THROUGH(YYYY-MM)
Prints a JSON list of rows: bank_name, branch_id, month, loan_count, total_amount,
months_in_window, loan_count_3m, total_amount_3m, ma3_amount, avg_loan_amount_3m (amounts as
text rounded half-even to 2 places, as the extract writes them; avg empty without loans).
"""
import json
import sys
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb

d, through = sys.argv[1], sys.argv[2]
con = duckdb.connect()
for t in ["bank", "branch", "client", "account", "loans"]:
    con.execute(f"CREATE TABLE {t} AS SELECT * FROM read_csv('{d}/{t}.csv', header=true, all_varchar=true)")
rows = con.execute(f"""
WITH l AS (
  SELECT b.Name AS bank_name, CAST(br.idBranch AS BIGINT) AS branch_id,
         date_trunc('month', CAST(lo.loan_date AS DATE)) AS m, CAST(lo.Amount AS DECIMAL(18,2)) AS amount
  FROM loans lo
  JOIN account a ON a.idAccount = lo.Account_idAccount
  JOIN client c ON c.idClient = a.Client_idClient
  JOIN branch br ON br.idBranch = c.Branch_idBranch
  JOIN bank b ON b.idBank = br.Bank_idBank
),
months AS (
  SELECT unnest(generate_series((SELECT min(m) FROM l), DATE '{through}-01', INTERVAL 1 MONTH)) AS m
),
grid AS (
  SELECT b.Name AS bank_name, CAST(br.idBranch AS BIGINT) AS branch_id, CAST(months.m AS DATE) AS m
  FROM branch br JOIN bank b ON b.idBank = br.Bank_idBank CROSS JOIN months
),
monthly AS (
  SELECT g.bank_name, g.branch_id, g.m, count(l.amount) AS cnt, coalesce(sum(l.amount), 0) AS total
  FROM grid g LEFT JOIN l ON g.bank_name = l.bank_name AND g.branch_id = l.branch_id AND g.m = l.m
  GROUP BY ALL
)
SELECT bank_name, branch_id, strftime(m, '%Y-%m') AS month, cnt, CAST(total AS VARCHAR),
       count(*) OVER w, sum(cnt) OVER w, CAST(sum(total) OVER w AS VARCHAR)
FROM monthly
WINDOW w AS (PARTITION BY bank_name, branch_id ORDER BY m RANGE BETWEEN INTERVAL 2 MONTH PRECEDING AND CURRENT ROW)
ORDER BY bank_name, month, branch_id
""").fetchall()
cent = Decimal("0.01")
out = []
for bank, branch, month, cnt, total, n, cnt3, total3 in rows:
    total, total3 = Decimal(total), Decimal(total3)
    out.append({
        "bank_name": bank, "branch_id": int(branch), "month": month, "loan_count": int(cnt),
        "total_amount": str(total.quantize(cent, ROUND_HALF_EVEN)), "months_in_window": int(n),
        "loan_count_3m": int(cnt3), "total_amount_3m": str(total3.quantize(cent, ROUND_HALF_EVEN)),
        "ma3_amount": str((total3 / n).quantize(cent, ROUND_HALF_EVEN)),
        "avg_loan_amount_3m": "" if cnt3 == 0 else str((total3 / cnt3).quantize(cent, ROUND_HALF_EVEN)),
    })
print(json.dumps(out))
