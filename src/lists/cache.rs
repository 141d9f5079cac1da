//! The compiled-store cache: `state_dir/lists.fst` plus `lists.meta.json`.
//!
//! Compiling a million names takes over a second and leaves the allocator holding the build's
//! scratch memory. When the list files have not changed since the last build (same paths,
//! sizes, modification and status-change times and inodes, same built-in names, and the same
//! kidsafe version and parser, whose rules decide what a line means), kidsafe instead reads
//! the automaton it wrote
//! last time: one read of ~12 bytes a name, checksum verified, no scratch memory. Any mismatch,
//! unreadable file or failed checksum means a normal build; the cache can never serve lists
//! other than the ones on disk, and is rewritten (atomically) after every build.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::blocklist::{FileCounts, FileReport, LoadedLists, Store, StoreBuilder, store};
use crate::category::Categories;

const FST_FILE: &str = "lists.fst";
const META_FILE: &str = "lists.meta.json";
const FORMAT: u32 = 2;

/// Bump when the list-line parser, the synonym table or the loader change what a file means:
/// a cache built by other rules is then rebuilt, even by a build with the same version.
const PARSER: u32 = 1;

/// What the cached automaton was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    format: u32,
    /// The kidsafe that built it, and its parser's rules.
    built_by: (String, u32),
    /// (path, size, modification time in ns, status-change time in ns, inode) of every list
    /// file, in load order. The status-change time cannot be set back by `cp -p` or
    /// `rsync -t`, so a same-size edit that keeps the modification time is still seen.
    files: Vec<(String, u64, u128, i128, u64)>,
    /// The built-in names, as (category, count, a hash of the names).
    builtin: Vec<(String, usize, u64)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    fingerprint: Fingerprint,
    categories: Vec<String>,
    reports: Vec<FileCounts>,
    fst_bytes: u64,
}

/// Fingerprints the list files and built-in names a load would read.
pub fn fingerprint(
    files: &[(PathBuf, String)],
    builtin: &[(&str, &[&str])],
) -> Option<Fingerprint> {
    let mut out = Vec::with_capacity(files.len());
    for (path, _) in files {
        let meta = std::fs::metadata(path).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_nanos();
        let ctime = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
        out.push((
            path.display().to_string(),
            meta.len(),
            mtime,
            ctime,
            meta.ino(),
        ));
    }
    let builtin = builtin
        .iter()
        .map(|(category, names)| {
            // FNV-1a: stable across builds and platforms, unlike std's hasher.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in names.iter().flat_map(|n| n.bytes().chain([0])) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            ((*category).to_string(), names.len(), h)
        })
        .collect();
    Some(Fingerprint {
        format: FORMAT,
        built_by: (env!("CARGO_PKG_VERSION").to_string(), PARSER),
        files: out,
        builtin,
    })
}

/// The cached lists, if they were built from exactly `want` and their checksum holds.
pub fn load(dir: &Path, want: &Fingerprint) -> Option<LoadedLists> {
    let meta: Meta = serde_json::from_slice(&std::fs::read(dir.join(META_FILE)).ok()?).ok()?;
    if &meta.fingerprint != want {
        return None;
    }
    let bytes = read_store_bytes(&dir.join(FST_FILE), meta.fst_bytes)?;
    let store = Store::from_bytes(bytes)?;
    let categories = Categories::from_names(meta.categories)?;
    let files = meta
        .reports
        .into_iter()
        .map(|r| FileReport {
            path: PathBuf::from(r.path),
            category: r.category,
            names: r.names,
            skipped: r.skipped,
            bad: r.bad,
            first_bad: Vec::new(),
        })
        .collect();
    Some(LoadedLists {
        store,
        categories,
        files,
    })
}

/// Reads exactly `len` bytes of automaton into a buffer reserved like a build's (see
/// [`store::ALWAYS_MAPPED`]), so freeing it at a later reload leaves the allocator's
/// thresholds alone and the memory goes back to the OS.
fn read_store_bytes(path: &Path, len: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    if file.metadata().ok()?.len() != len {
        return None;
    }
    let len = usize::try_from(len).ok()?;
    let mut bytes = Vec::with_capacity(store::scratch_capacity(len));
    file.take(len as u64 + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() == len).then_some(bytes)
}

/// Compiles `builder` straight into the cache's automaton file, reads it back (one allocation
/// of exactly its size, checksum verified) and completes the cache for it: the names and the
/// automaton are never in memory together. On an error nothing is committed and the builder is
/// gone; the caller builds again in memory.
pub fn build_and_save(
    dir: &Path,
    fingerprint: &Fingerprint,
    builder: StoreBuilder,
    categories: Categories,
    files: Vec<FileReport>,
) -> std::io::Result<LoadedLists> {
    let (temp, file) = crate::state_file::create_temp(dir, FST_FILE)?;
    let built = (|| {
        let file = builder
            .build_into(std::io::BufWriter::with_capacity(1 << 16, file))?
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        let len = file.metadata()?.len();
        drop(file);
        let bytes = read_store_bytes(&temp, len)
            .ok_or_else(|| std::io::Error::other("the automaton written cannot be read back"))?;
        Store::from_bytes(bytes)
            .ok_or_else(|| std::io::Error::other("the automaton written fails its checksum"))
    })();
    let store = match built {
        Ok(store) => store,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    let lists = LoadedLists {
        store,
        categories,
        files,
    };
    // The automaton first, the metadata last: a crash in between leaves metadata that does
    // not match the automaton's size, or the old pair, never a wrong pair.
    crate::state_file::commit(dir, FST_FILE, &temp)?;
    write_meta(dir, fingerprint, &lists)?;
    Ok(lists)
}

/// Writes `lists.meta.json` for `lists` built from `fingerprint` (temp file, fsync, rename).
fn write_meta(dir: &Path, fingerprint: &Fingerprint, lists: &LoadedLists) -> std::io::Result<()> {
    let bytes = lists.store.as_bytes();
    let meta = Meta {
        fingerprint: fingerprint.clone(),
        categories: lists.categories.names().map(str::to_string).collect(),
        reports: lists.files.iter().map(FileReport::counts).collect(),
        fst_bytes: bytes.len() as u64,
    };
    let meta = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
    crate::state_file::write_atomic(dir, META_FILE, &meta)
}
