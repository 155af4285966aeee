//! The extract's read of a loans file or folder, without the CLI: what `perf` profiles.
//!
//! ```text
//! cargo build --profile profiling -p sluice-core --example extract_read
//! perf record -g target/profiling/examples/extract_read INPUT
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(input) = std::env::args().nth(1) else {
        return Err("usage: extract_read INPUT (a loans file or folder)".into());
    };
    let agg = sluice_core::extract_input::read_input(std::path::Path::new(&input))?;
    println!("{} loans read", agg.loans);
    Ok(())
}
