//! `sluice profile` on credit-shaped data: its counts against DuckDB's over the same CSV, the
//! same counts from the curated files, and the HTML page rendered by headless Chromium
//! (Debian's package, installed by scripts/chromium when absent).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    sluice_testkit::repo_root()
}

fn sluice(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sluice {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// 20,000 credit rows (every 7th income and every 11th dependents `NA`), under an hourly folder.
fn credit_file(dir: &Path) -> PathBuf {
    let hour = dir.join("credit/yyyy=2026/mm=11/dd=21/hh=23");
    std::fs::create_dir_all(&hour).unwrap();
    let f = hour.join("credit-profile.csv");
    std::fs::write(&f, sluice_testdata::credit_csv(1, 20_000, 5)).unwrap();
    f
}

/// `sluice profile CSV --spec config/tables/credit.json EXTRA…`: its stdout.
fn profile_credit(csv: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "profile",
        csv.to_str().unwrap(),
        "--spec",
        "config/tables/credit.json",
    ];
    args.extend_from_slice(extra);
    sluice(&args)
}

/// DuckDB over the CSV, every column read as text: per column (in file order) its NULLs (`NA`
/// and empty), distinct values, and min, max and mean as numbers.
fn duckdb_counts(csv: &Path) -> Vec<Value> {
    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
rel = con.sql("select * from read_csv(?, header=true, all_varchar=true, hive_partitioning=false, nullstr=['NA', ''])", params=[sys.argv[1]])
out = []
for c in rel.columns:
    q = f'select count(*) - count("{c}"), count(distinct "{c}"), min(try_cast("{c}" as double)), max(try_cast("{c}" as double)), avg(try_cast("{c}" as double)) from rel'
    n, d, lo, hi, mean = con.sql(q).fetchone()
    out.append([n, d, lo, hi, mean, c])
print(json.dumps(out))
"#;
    let out = Command::new(sluice_testdata::python())
        .arg("-c")
        .arg(script)
        .arg(csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn columns(profile: &Value) -> &Vec<Value> {
    profile["columns"].as_array().unwrap()
}

#[test]
fn the_profile_counts_what_duckdb_counts() {
    let dir = tempfile::tempdir().unwrap();
    let csv = credit_file(dir.path());
    let p: Value = serde_json::from_str(&profile_credit(&csv, &["--json"])).unwrap();
    assert_eq!(p["rows"], 20_000);
    assert_eq!(p["duplicate_keys"]["value"], 0);
    let oracle = duckdb_counts(&csv);
    let cols = columns(&p);
    assert_eq!(cols.len(), oracle.len(), "{oracle:?}");
    for (c, o) in cols.iter().zip(&oracle) {
        let name = c["name"].as_str().unwrap();
        assert_eq!(c["nulls"], o[0], "{name}: NULLs");
        assert_eq!(c["invalid"], 0, "{name}: nothing refused");
        assert_eq!(c["distinct"]["value"], o[1], "{name}: distinct");
        assert!(c["distinct"].get("estimated").is_none(), "{name}: exact");
        if c["type"] == "boolean" {
            continue;
        }
        let range = c["range"].as_array().unwrap();
        assert_eq!(range[0].as_f64(), o[2].as_f64(), "{name}: min");
        assert_eq!(range[1].as_f64(), o[3].as_f64(), "{name}: max");
        let (mean, want) = (c["mean"].as_f64().unwrap(), o[4].as_f64().unwrap());
        assert!(
            (mean - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{name}: mean {mean} vs {want}"
        );
    }
    // The generator's NAs, exactly: every 7th income and every 11th dependents of 1..=20000.
    let nulls = |n: &str| {
        cols.iter().find(|c| c["name"] == n).unwrap()["nulls"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(nulls("monthly_income"), 20_000 / 7);
    assert_eq!(nulls("number_of_dependents"), 20_000 / 11);
    assert_eq!(nulls("age"), 0);
}

#[test]
fn the_curated_files_profile_like_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let csv = credit_file(dir.path());
    let lake = dir.path().join("lake");
    sluice(&[
        "ingest",
        csv.to_str().unwrap(),
        "--spec",
        "config/tables/credit.json",
        "--out",
        lake.to_str().unwrap(),
    ]);
    let from_file: Value = serde_json::from_str(&profile_credit(&csv, &["--json"])).unwrap();
    let from_lake: Value = serde_json::from_str(&sluice(&[
        "profile",
        "--dataset",
        "credit",
        "--input",
        lake.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(from_lake["rows"], from_file["rows"]);
    for (a, b) in columns(&from_file).iter().zip(columns(&from_lake)) {
        for k in [
            "name", "values", "nulls", "distinct", "range", "min", "max", "top",
        ] {
            assert_eq!(a[k], b[k], "{}: {k}", a["name"]);
        }
    }
}

/// Debian's Chromium (installed by scripts/chromium when absent).
fn chromium() -> PathBuf {
    let out = Command::new("bash")
        .arg(root().join("scripts/chromium"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Opens `page` in headless Chromium: (the DOM after loading, the console messages).
fn render(browser: &Path, page: &Path, extra: &[&str]) -> (String, Vec<String>) {
    let profile_dir = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[test]
fn the_html_report_renders_in_chromium_with_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let csv = credit_file(dir.path());
    let page = dir.path().join("credit.html");
    profile_credit(&csv, &["--html", page.to_str().unwrap()]);
    let browser = chromium();

    // The console check can fail: a page that logs an error is caught.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><body><script>console.error('deliberate')</script></body></html>",
    )
    .unwrap();
    let (_, messages) = render(&browser, &control, &["--dump-dom"]);
    assert!(
        messages.iter().any(|m| m.contains("deliberate")),
        "the console check saw nothing of the control page"
    );

    // The report: no console message at all (it has no script and fetches nothing).
    let (dom, messages) = render(&browser, &page, &["--dump-dom"]);
    assert!(messages.is_empty(), "console: {messages:?}");
    assert!(dom.contains("Profile of dataset credit") && dom.contains("credit-profile.csv"));
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("config/tables/credit.json")).unwrap(),
    )
    .unwrap();
    for c in spec["columns"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        assert!(
            dom.contains(&format!("data-column=\"{name}\"><h2>{name} ")),
            "no section for column {name}"
        );
    }
    assert_eq!(
        dom.matches("<section class=\"column\"").count(),
        spec["columns"].as_array().unwrap().len()
    );
    assert!(dom.contains("<svg"), "no chart drawn");

    // A screenshot, kept for people to look at.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("profile-credit.png");
    let _ = std::fs::remove_file(&shot);
    let (_, messages) = render(
        &browser,
        &page,
        &[&format!("--screenshot={}", shot.display())],
    );
    assert!(messages.is_empty(), "console: {messages:?}");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    assert_eq!(width, 1280);
    assert!(
        png.len() > 20_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
