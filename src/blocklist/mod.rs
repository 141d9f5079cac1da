//! Category blocklists: the list formats, name normalisation, and the compact store they compile
//! into.
//!
//! - [`parse`]: one line → names (plain, hosts, adblock `||d^`, wildcard `*.d`; comments,
//!   CRLF, IDN), with every skipped or bad line classified.
//! - [`store`]: the immutable name → category-bitset automaton with suffix matching.
//! - [`LoadedLists`] (here): a compiled store with its category table and per-file reports.
//!
//! Pure: reading list files from disk, and the compiled-store cache, are the `lists` module's.

pub mod parse;
pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use parse::{BadReason, LineOutcome, Scanned, SkipReason, parse_line, scan_line};
pub use store::{Store, StoreBuilder};

use crate::category::Categories;

/// What loading one list file found.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    /// The file read.
    pub path: PathBuf,
    /// The canonical category it feeds.
    pub category: String,
    /// Names listed from it (duplicates included).
    pub names: usize,
    /// Lines that list nothing on purpose (boilerplate, bare IPs, single labels).
    pub skipped: usize,
    /// Lines that could not be read.
    pub bad: usize,
    /// The first few bad lines: (line number, why).
    pub first_bad: Vec<(usize, BadReason)>,
}

/// A [`FileReport`]'s counts, as written into state files (the compiled-store cache's
/// metadata, `status.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileCounts {
    /// The file's path.
    pub path: String,
    /// The category it feeds.
    pub category: String,
    /// Names listed.
    pub names: usize,
    /// Lines skipped on purpose.
    pub skipped: usize,
    /// Lines that could not be read.
    pub bad: usize,
}

impl FileReport {
    /// Its counts, for a state file.
    pub fn counts(&self) -> FileCounts {
        FileCounts {
            path: self.path.display().to_string(),
            category: self.category.clone(),
            names: self.names,
            skipped: self.skipped,
            bad: self.bad,
        }
    }
}

/// How many bad lines a report keeps by number.
pub const FIRST_BAD_KEPT: usize = 5;

/// Everything a load produced.
#[derive(Debug, Clone)]
pub struct LoadedLists {
    /// The compiled store.
    pub store: Store,
    /// The category table whose bits the store uses.
    pub categories: Categories,
    /// One report per file, in load order.
    pub files: Vec<FileReport>,
}

impl LoadedLists {
    /// Names listed per category (before duplicates and covered subdomains are folded).
    pub fn names_per_category(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for file in &self.files {
            *counts.entry(file.category.as_str()).or_insert(0) += file.names;
        }
        counts
    }

    /// Whether any file feeds this category.
    pub fn has_category(&self, name: &str) -> bool {
        self.files.iter().any(|f| f.category == name)
    }
}
