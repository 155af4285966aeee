//! The monthly bank extract: for each bank and completed month M, one row per branch with the
//! month's loans and the trailing calendar window M-2..M.
//!
//! - The window never reaches before the first month of the group's loan data, so the first
//!   two months have shorter windows (`months_in_window` 1, 2, then 3). Inside the window a
//!   month without loans counts as zero.
//! - Amounts are exact decimals (micro-units in an `i128`); `ma3_amount` (the mean of the
//!   window's monthly totals) and `avg_loan_amount_3m` (`total_amount_3m / loan_count_3m`,
//!   empty without loans) are rounded half-even to 2 places only when written.
//! - Every branch of a bank gets a row every month, loans or not (branches come from the
//!   branch dataset when there is one, else from the loans).
//! - Files: `bank=<Safe>/year=<YYYY>/month=<MM>/<Safe>_<YYYYMMDD>.csv`, YYYYMMDD the last day
//!   of M; see [`file_safe`] for the name rule. Same input, same bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};

/// A small multiply-rotate hasher for the aggregation keys (three integers): the default
/// SipHash costs more than the rest of the per-loan work.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }

    fn write_i32(&mut self, i: i32) {
        self.write_u64(i as u32 as u64);
    }

    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type Fast<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// Internal scale of amounts: micro-units.
pub const SCALE: u32 = 6;
const UNIT: i128 = 1_000_000;

/// A calendar month as `year * 12 + (month - 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(pub i32);

impl Month {
    pub fn new(year: i32, month: u32) -> Month {
        Month(year * 12 + month as i32 - 1)
    }

    pub fn year(self) -> i32 {
        self.0.div_euclid(12)
    }

    pub fn month(self) -> u32 {
        (self.0.rem_euclid(12) + 1) as u32
    }

    /// `2023-04`
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.trim().split_once('-')?;
        let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
        ((1..=12).contains(&m) && (1..=9999).contains(&y)).then(|| Month::new(y, m))
    }

    /// The month of an ISO date's first 7 characters (`2023-04-17` → 2023-04).
    pub fn of_date(date: &[u8]) -> Option<Month> {
        if date.len() < 7 || date[4] != b'-' {
            return None;
        }
        let digit = |b: u8| b.is_ascii_digit().then(|| (b - b'0') as i32);
        let y =
            digit(date[0])? * 1000 + digit(date[1])? * 100 + digit(date[2])? * 10 + digit(date[3])?;
        let m = digit(date[5])? * 10 + digit(date[6])?;
        (1..=12).contains(&m).then_some(Month(y * 12 + m - 1))
    }

    pub fn last_day(self) -> u32 {
        match self.month() {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ => {
                let y = self.year();
                if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                    29
                } else {
                    28
                }
            }
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

/// A bank name made safe for folder and file names, deterministically: ASCII letters and
/// digits are kept, everything else (spaces, dots, apostrophes, accents) is dropped
/// ("J.P. Morgan Chase" → `JPMorganChase`, "William's Bay" → `WilliamsBay`); a name with
/// nothing left becomes `Bank`. Two names that collapse to the same text are told apart by
/// [`file_safe_names`].
pub fn file_safe(name: &str) -> String {
    let s: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    if s.is_empty() {
        "Bank".to_owned()
    } else {
        s
    }
}

/// Safe names for a set of bank names: in sorted order of the original names, the second and
/// later names that collapse to the same safe text get `_2`, `_3`, ...
pub fn file_safe_names<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    let sorted: BTreeSet<&str> = names.into_iter().collect();
    let mut used: HashMap<String, u32> = HashMap::new();
    let mut out = BTreeMap::new();
    for n in sorted {
        let base = file_safe(n);
        let k = used.entry(base.clone()).or_insert(0);
        *k += 1;
        let safe = if *k == 1 { base } else { format!("{base}_{k}") };
        out.insert(n.to_owned(), safe);
    }
    out
}

/// `q = v / d` rounded half-even, for a divisor `d > 0`.
fn div_half_even(v: i128, d: i128) -> i128 {
    let q = v.div_euclid(d);
    let r = v.rem_euclid(d);
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
        std::cmp::Ordering::Less => q,
    }
}

/// Micro-units → `123.45`, rounded half-even to cents.
pub fn cents_text(micros: i128) -> String {
    fraction_text(micros, 1)
}

/// `micros / divisor` → `123.45`, rounded half-even to cents.
pub fn fraction_text(micros: i128, divisor: i128) -> String {
    let cents = div_half_even(micros, divisor * (UNIT / 100));
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cell {
    count: u64,
    total: i128,
}

/// Accumulates loans (and branches) from any input, in any order.
#[derive(Debug, Default)]
pub struct Aggregator {
    banks: Vec<String>,
    bank_index: HashMap<String, u32>,
    last_bank: Option<u32>,
    cells: Fast<(u32, i64, Month), Cell>,
    branches: BTreeSet<(u32, i64)>,
    first: Option<Month>,
    last: Option<Month>,
    pub loans: u64,
}

/// One output row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractRow {
    pub bank_name: String,
    pub branch_id: i64,
    pub month: Month,
    pub loan_count: u64,
    pub total_amount: i128,
    pub months_in_window: u32,
    pub loan_count_3m: u64,
    pub total_amount_3m: i128,
}

impl ExtractRow {
    /// The mean of the window's monthly totals, in micro-units before rounding: returned as
    /// text rounded half-even to cents.
    pub fn ma3_text(&self) -> String {
        fraction_text(self.total_amount_3m, self.months_in_window.max(1) as i128)
    }

    pub fn avg_loan_text(&self) -> String {
        if self.loan_count_3m == 0 {
            String::new()
        } else {
            fraction_text(self.total_amount_3m, self.loan_count_3m as i128)
        }
    }
}

/// One output file: a bank's rows for one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankMonth {
    pub bank_name: String,
    pub safe_name: String,
    pub month: Month,
    pub rows: Vec<ExtractRow>,
}

pub const HEADER: &str = "bank_name,branch_id,month,loan_count,total_amount,months_in_window,loan_count_3m,total_amount_3m,ma3_amount,avg_loan_amount_3m";

impl BankMonth {
    /// `bank=<Safe>/year=<YYYY>/month=<MM>/<Safe>_<YYYYMMDD>.csv`
    pub fn path(&self) -> String {
        format!(
            "bank={s}/year={y:04}/month={m:02}/{s}_{y:04}{m:02}{d:02}.csv",
            s = self.safe_name,
            y = self.month.year(),
            m = self.month.month(),
            d = self.month.last_day()
        )
    }

    /// The file's bytes: UTF-8, a header, one line per branch in branch order.
    pub fn csv(&self) -> String {
        let mut out = String::with_capacity(64 + self.rows.len() * 96);
        out.push_str(HEADER);
        out.push('\n');
        for r in &self.rows {
            crate::write::push_text_field(&mut out, &r.bank_name);
            let _ = writeln!(
                out,
                ",{},{},{},{},{},{},{},{},{}",
                r.branch_id,
                r.month,
                r.loan_count,
                cents_text(r.total_amount),
                r.months_in_window,
                r.loan_count_3m,
                cents_text(r.total_amount_3m),
                r.ma3_text(),
                r.avg_loan_text()
            );
        }
        out
    }
}

impl Aggregator {
    /// The index of a bank name (interned on first sight).
    pub fn bank(&mut self, name: &str) -> u32 {
        if let Some(i) = self.last_bank {
            if self.banks[i as usize] == name {
                return i;
            }
        }
        let i = match self.bank_index.get(name) {
            Some(i) => *i,
            None => {
                let i = self.banks.len() as u32;
                self.banks.push(name.to_owned());
                self.bank_index.insert(name.to_owned(), i);
                i
            }
        };
        self.last_bank = Some(i);
        i
    }

    /// A branch that gets a row every month, with or without loans.
    pub fn add_branch(&mut self, bank: &str, branch_id: i64) {
        let b = self.bank(bank);
        self.branches.insert((b, branch_id));
    }

    /// Adds everything `other` holds (the same as adding its loans and branches here).
    pub fn merge(&mut self, other: Aggregator) {
        let bank: Vec<u32> = other.banks.iter().map(|name| self.bank(name)).collect();
        for ((b, branch, month), c) in other.cells {
            let mine = self
                .cells
                .entry((bank[b as usize], branch, month))
                .or_default();
            mine.count += c.count;
            mine.total += c.total;
        }
        for (b, branch) in other.branches {
            self.branches.insert((bank[b as usize], branch));
        }
        self.loans += other.loans;
        for m in other.first.into_iter().chain(other.last) {
            self.first = Some(self.first.map_or(m, |f| f.min(m)));
            self.last = Some(self.last.map_or(m, |l| l.max(m)));
        }
    }

    /// One loan: its amount in micro-units and its month.
    pub fn add_loan(&mut self, bank: &str, branch_id: i64, amount_micros: i128, month: Month) {
        let b = self.bank(bank);
        self.add_loan_at(b, branch_id, amount_micros, month);
    }

    /// The same, with the bank's index from [`Aggregator::bank`].
    pub fn add_loan_at(&mut self, b: u32, branch_id: i64, amount_micros: i128, month: Month) {
        let c = self.cells.entry((b, branch_id, month)).or_default();
        if c.count == 0 && c.total == 0 {
            self.branches.insert((b, branch_id));
        }
        c.count += 1;
        c.total += amount_micros;
        self.loans += 1;
        self.first = Some(self.first.map_or(month, |f| f.min(month)));
        self.last = Some(self.last.map_or(month, |l| l.max(month)));
    }

    /// The first month of the loan data (where windows start).
    pub fn first_month(&self) -> Option<Month> {
        self.first
    }

    pub fn last_month(&self) -> Option<Month> {
        self.last
    }

    /// The files for months `from..=to` (clamped to start at the first month of the data),
    /// banks in name order, branches in id order.
    pub fn files(&self, from: Month, to: Month) -> Vec<BankMonth> {
        let Some(first) = self.first else {
            return Vec::new();
        };
        let from = from.max(first);
        let safe = file_safe_names(self.banks.iter().map(String::as_str));
        let mut by_bank: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (b, branch) in &self.branches {
            by_bank
                .entry(self.banks[*b as usize].as_str())
                .or_default()
                .push(*branch);
        }
        let cell =
            |b: u32, br: i64, m: Month| self.cells.get(&(b, br, m)).copied().unwrap_or_default();
        let mut out = Vec::new();
        for (bank, branches) in by_bank {
            let b = self.bank_index[bank];
            let mut m = from;
            while m <= to {
                let rows = branches
                    .iter()
                    .map(|&br| {
                        let now = cell(b, br, m);
                        let start = Month((m.0 - 2).max(first.0));
                        let (mut count, mut total) = (0u64, 0i128);
                        for w in start.0..=m.0 {
                            let c = cell(b, br, Month(w));
                            count += c.count;
                            total += c.total;
                        }
                        ExtractRow {
                            bank_name: bank.to_owned(),
                            branch_id: br,
                            month: m,
                            loan_count: now.count,
                            total_amount: now.total,
                            months_in_window: (m.0 - start.0 + 1) as u32,
                            loan_count_3m: count,
                            total_amount_3m: total,
                        }
                    })
                    .collect();
                out.push(BankMonth {
                    bank_name: bank.to_owned(),
                    safe_name: safe[bank].clone(),
                    month: m,
                    rows,
                });
                m = Month(m.0 + 1);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_end() {
        assert_eq!(
            Month::parse("2024-02").map(|m| (m.year(), m.month(), m.last_day())),
            Some((2024, 2, 29))
        );
        assert_eq!(Month::of_date(b"2023-12-31"), Some(Month::new(2023, 12)));
        assert_eq!(Month::parse("2023-13"), None);
        assert_eq!(Month::new(1900, 2).last_day(), 28);
        assert_eq!(Month::new(2023, 1).to_string(), "2023-01");
    }

    #[test]
    fn names_are_file_safe_and_distinct() {
        assert_eq!(file_safe("J.P. Morgan Chase"), "JPMorganChase");
        assert_eq!(file_safe("William's Bay"), "WilliamsBay");
        assert_eq!(file_safe("Ünïcode ßank"), "ncodeank");
        assert_eq!(file_safe("..."), "Bank");
        let names = file_safe_names(["A.B", "AB", "A B"]);
        assert_eq!(names["A B"], "AB");
        assert_eq!(names["A.B"], "AB_2");
        assert_eq!(names["AB"], "AB_3");
    }

    #[test]
    fn rounding_is_half_even_at_the_end_only() {
        assert_eq!(cents_text(12_345_000), "12.34"); // a tie goes to the even cent
        assert_eq!(cents_text(12_355_000), "12.36");
        assert_eq!(cents_text(12_345_001), "12.35");
        assert_eq!(fraction_text(5 * UNIT / 100, 2), "0.02"); // 0.025 -> 0.02
        assert_eq!(fraction_text(15 * UNIT / 1000, 1), "0.02"); // 0.015 -> 0.02
        assert_eq!(fraction_text(10 * UNIT, 3), "3.33");
        assert_eq!(fraction_text(-25 * UNIT / 1000, 1), "-0.02");
    }

    #[test]
    fn windows_are_calendar_months_from_the_first_month_of_the_data() {
        let mut a = Aggregator::default();
        let m = |s: &str| Month::parse(s).unwrap_or(Month(0));
        a.add_branch("Bank A", 2); // never lends
        a.add_loan("Bank A", 1, 100 * UNIT, m("2023-01"));
        a.add_loan("Bank A", 1, 50 * UNIT, m("2023-01"));
        // 2023-02 has no loans at all
        a.add_loan("Bank A", 1, 30 * UNIT, m("2023-03"));
        a.add_loan("Bank A", 1, UNIT, m("2023-04"));
        let files = a.files(m("2022-06"), m("2023-04"));
        assert_eq!(
            files.len(),
            4,
            "from the first month of the data, not before"
        );
        let row = |month: &str, br: i64| {
            files
                .iter()
                .find(|f| f.month == m(month))
                .and_then(|f| f.rows.iter().find(|r| r.branch_id == br))
                .cloned()
                .unwrap_or_else(|| panic!("no row {month} {br}"))
        };
        let jan = row("2023-01", 1);
        assert_eq!(
            (jan.months_in_window, jan.loan_count_3m, jan.ma3_text()),
            (1, 2, "150.00".into())
        );
        let feb = row("2023-02", 1);
        assert_eq!(
            (feb.loan_count, feb.months_in_window, feb.ma3_text()),
            (0, 2, "75.00".into())
        );
        let apr = row("2023-04", 1);
        assert_eq!(
            (apr.months_in_window, apr.loan_count_3m, apr.ma3_text()),
            (3, 2, "10.33".into())
        );
        assert_eq!(apr.avg_loan_text(), "15.50");
        let quiet = row("2023-04", 2);
        assert_eq!(
            (quiet.loan_count_3m, quiet.avg_loan_text(), quiet.ma3_text()),
            (0, String::new(), "0.00".into())
        );
        assert_eq!(
            files[0].path(),
            "bank=BankA/year=2023/month=01/BankA_20230131.csv"
        );
    }

    #[test]
    fn text_cells_cannot_become_formulas() {
        let f = BankMonth {
            bank_name: "=HYPERLINK(\"x\")".into(),
            safe_name: "HYPERLINKx".into(),
            month: Month::new(2023, 1),
            rows: vec![ExtractRow {
                bank_name: "=HYPERLINK(\"x\")".into(),
                branch_id: 1,
                month: Month::new(2023, 1),
                loan_count: 0,
                total_amount: 0,
                months_in_window: 1,
                loan_count_3m: 0,
                total_amount_3m: 0,
            }],
        };
        let csv = f.csv();
        assert!(
            csv.lines()
                .nth(1)
                .unwrap_or("")
                .starts_with("\"'=HYPERLINK(\"\"x\"\")\",1,2023-01,0,0.00,1,0,0.00,0.00,"),
            "{csv}"
        );
    }
}
