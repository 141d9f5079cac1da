//! Writes the manual pages of the `kidsafe` command and each subcommand, generated from the
//! same clap definition the binary parses with, so they cannot drift from `--help`:
//!
//! ```sh
//! cargo run --example man -- target/man     # kidsafe.1, kidsafe-check.1, kidsafe-feed-update.1, …
//! ```
//!
//! The Debian package build (packaging/build-deb.sh) installs them, gzipped, in
//! /usr/share/man/man1. The config file's page, kidsafe.toml(5), is written by hand.

use std::path::{Path, PathBuf};

fn main() -> std::io::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/man"), PathBuf::from);
    std::fs::create_dir_all(&out)?;
    let mut written = Vec::new();
    write_pages(&kidsafe::cli::command(), "kidsafe", &out, &mut written)?;
    for path in &written {
        println!("{}", path.display());
    }
    Ok(())
}

/// Writes the page of `command` (named `name`, e.g. "kidsafe-feed-update") and of each of its
/// subcommands.
fn write_pages(
    command: &clap::Command,
    name: &str,
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let page = command
        .clone()
        .name(&*name.to_string().leak())
        .version(env!("CARGO_PKG_VERSION"));
    let mut bytes = Vec::new();
    clap_mangen::Man::new(page).render(&mut bytes)?;
    let path = out.join(format!("{name}.1"));
    std::fs::write(&path, bytes)?;
    written.push(path);
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), out, written)?;
    }
    Ok(())
}
