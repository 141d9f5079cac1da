//! Loads N synthetic names (default 1,000,000) through the real list parser and store builder,
//! then prints build time, store size, and resident memory per listed name.
//!
//!     cargo run --release --example store_memory -- 1000000

use std::io::Write;
use std::time::Instant;

#[path = "../benches/synth.rs"]
mod synth;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("adult.txt");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut names = synth::Names::new(7);
        for i in 0..count {
            // Real lists mix formats; so does this one.
            match i % 4 {
                0 => writeln!(file, "0.0.0.0 {}", names.name())?,
                1 => writeln!(file, "||{}^", names.name())?,
                _ => writeln!(file, "{}", names.name())?,
            }
        }
    }
    let rss_before = status_kib("VmRSS:");
    let started = Instant::now();
    let loaded = kidsafe::lists::load_dirs(&[dir.path().to_path_buf()])?;
    let build = started.elapsed();
    let rss_after = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    let store = &loaded.store;
    println!("names listed      {count}");
    println!("keys stored       {}", store.len());
    println!(
        "build time        {:.3} s (parse + sort + automaton)",
        build.as_secs_f64()
    );
    println!(
        "store bytes       {} ({:.2} bytes/name)",
        store.size_bytes(),
        store.size_bytes() as f64 / count as f64
    );
    println!(
        "RSS growth        {} KiB ({:.2} bytes/name)",
        rss_after.saturating_sub(rss_before),
        rss_after.saturating_sub(rss_before) as f64 * 1024.0 / count as f64
    );
    println!(
        "RSS total         {rss_after} KiB; peak during build {peak} KiB (baseline {rss_before} KiB)"
    );
    drop(loaded);
    // What the allocator keeps after the store is gone: freed, reusable by the next build.
    println!("RSS after dropping the store {} KiB", status_kib("VmRSS:"));
    Ok(())
}
