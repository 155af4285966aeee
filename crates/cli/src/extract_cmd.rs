//! `sluice extract`: the monthly bank extract from local files.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sluice_core::extract::Month;
use sluice_core::extract_input::read_input;

pub struct ExtractArgs<'a> {
    pub month: Option<&'a str>,
    pub through: Option<&'a str>,
    pub input: &'a Path,
    pub out: &'a Path,
    pub today: Option<&'a str>,
    pub phases: bool,
}

/// The running month (UTC), or the one `--today` names.
fn current_month(today: Option<&str>) -> Result<Month> {
    let text = match today {
        Some(t) => t.to_owned(),
        None => chrono::Utc::now().format("%Y-%m-%d").to_string(),
    };
    Month::of_date(text.as_bytes()).with_context(|| format!("--today {text}: expected YYYY-MM-DD"))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename: readers
/// see the file complete or not at all. (No fsync: after a power cut a rerun rewrites the
/// same bytes.)
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("an output file needs a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn run(args: ExtractArgs) -> Result<()> {
    let started = Instant::now();
    let running = current_month(args.today)?;
    let (from, to) = match (args.month, args.through) {
        (Some(m), None) => {
            let m = Month::parse(m).with_context(|| format!("--month {m}: expected YYYY-MM"))?;
            (Some(m), m)
        }
        (None, Some(t)) => (
            None,
            Month::parse(t).with_context(|| format!("--through {t}: expected YYYY-MM"))?,
        ),
        _ => bail!("give exactly one of --month YYYY-MM or --through YYYY-MM"),
    };
    if to >= running {
        bail!(
            "{to} is not a completed month (the running month is {running}): the extract covers completed months only; the latest allowed is {}",
            Month(running.0 - 1)
        );
    }
    let agg = read_input(args.input)?;
    let read_s = started.elapsed().as_secs_f64();
    let first = agg.first_month().context("no loans")?;
    let files = agg.files(from.unwrap_or(first), to);
    let compute_s = started.elapsed().as_secs_f64() - read_s;
    let mut banks = std::collections::BTreeSet::new();
    for f in &files {
        write_atomically(&args.out.join(f.path()), f.csv().as_bytes())?;
        banks.insert(f.bank_name.clone());
    }
    let total = started.elapsed().as_secs_f64();
    println!(
        "extract: {} loans from {first} on; {} bank(s); months {} to {to}; {} file(s) under {}",
        agg.loans,
        banks.len(),
        from.unwrap_or(first).max(first),
        files.len(),
        args.out.display()
    );
    if args.phases {
        eprintln!(
            "PHASES {{\"read_s\": {read_s:.6}, \"compute_s\": {compute_s:.6}, \"write_s\": {:.6}, \"total_in_process_s\": {total:.6}}}",
            total - read_s - compute_s
        );
    }
    Ok(())
}
