//! List files on disk: every `<category>.txt` in the configured directories, loaded into one
//! [`LoadedLists`], and the compiled-store cache ([`cache`]) that makes a restart cost
//! milliseconds.
//!
//! A bad line is skipped and counted, never fatal; a file that cannot be read, or whose name is
//! not a category, fails the whole load so the caller keeps the lists it already serves. The
//! line format and the store are `crate::blocklist`'s; this module only reads files.

pub mod cache;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::blocklist::parse::{self, BadReason, Scanned, scan_line};
use crate::blocklist::{FIRST_BAD_KEPT, FileReport, LoadedLists, StoreBuilder};
use crate::category::{self, Categories, TooManyCategories};

/// Why a set of list directories could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// A configured directory is missing or unreadable.
    #[error("cannot read list directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A list file could not be read.
    #[error("cannot read list file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A `.txt` file whose name cannot be a category.
    #[error(
        "list file {path}: {stem:?} is not a category name (use a-z, 0-9, '_' and '-', at most 40 characters)"
    )]
    BadFileName {
        /// The file.
        path: PathBuf,
        /// Its stem.
        stem: String,
    },
    /// A file with lines that lists no name at all: another encoding, or not a list.
    #[error(
        "list file {path}: {lines} lines but not one name (is it a list of names, saved as text?)"
    )]
    NoNames {
        /// The file.
        path: PathBuf,
        /// Lines that were not blank or comments.
        lines: usize,
    },
    /// More categories than one bitset holds.
    #[error(transparent)]
    TooManyCategories(#[from] TooManyCategories),
}

/// Loads every `<category>.txt` in `dirs` (sorted by file name, so loads are reproducible).
pub fn load_dirs(dirs: &[PathBuf]) -> Result<LoadedLists, ListError> {
    load_dirs_with(dirs, &[])
}

/// [`load_dirs`], plus names shipped in the binary: (canonical category, names).
pub fn load_dirs_with(
    dirs: &[PathBuf],
    builtin: &[(&str, &[&str])],
) -> Result<LoadedLists, ListError> {
    load_dirs_cached(dirs, builtin, CacheUse::None)
}

/// What a load may do with the compiled-store cache (see [`cache`]).
#[derive(Debug, Clone, Copy)]
pub enum CacheUse<'a> {
    /// Neither read nor write it.
    None,
    /// Read it when it matches the list files; never write (an offline command such as
    /// `kidsafe check` run as root must not create files the daemon's user then cannot
    /// replace).
    ReadOnly(&'a Path),
    /// Read it when it matches, write it after a build (the daemon).
    ReadWrite(&'a Path),
}

/// [`load_dirs_with`], reading the compiled store from the cache directory when the list files
/// have not changed since it was written, and (with [`CacheUse::ReadWrite`]) writing it there
/// after a build.
pub fn load_dirs_cached(
    dirs: &[PathBuf],
    builtin: &[(&str, &[&str])],
    cache: CacheUse<'_>,
) -> Result<LoadedLists, ListError> {
    let (cache_dir, write_cache) = match cache {
        CacheUse::None => (None, false),
        CacheUse::ReadOnly(dir) => (Some(dir), false),
        CacheUse::ReadWrite(dir) => (Some(dir), true),
    };
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|source| ListError::Dir {
            path: dir.clone(),
            source,
        })?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ListError::Dir {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("txt") {
                continue;
            }
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let canonical = category::canonical_name(&stem);
            if !category::is_valid_name(&canonical) {
                return Err(ListError::BadFileName { path, stem });
            }
            found.push((path, canonical));
        }
        found.sort();
        files.extend(found);
    }

    let fingerprint = cache_dir.and_then(|_| cache::fingerprint(&files, builtin));
    if let (Some(dir), Some(want)) = (cache_dir, &fingerprint)
        && let Some(cached) = cache::load(dir, want)
    {
        return Ok(cached);
    }
    let categories = Categories::with_custom(files.iter().map(|(_, c)| c.as_str()))?;
    // Names take fewer bytes than the files holding them: reserving that much up front means
    // one large allocation each, reserved past the allocator's mmap ceiling
    // (`store::ALWAYS_MAPPED`) so that it goes back to the OS after the build.
    let file_bytes: usize = files
        .iter()
        .filter_map(|(path, _)| std::fs::metadata(path).ok())
        .map(|m| usize::try_from(m.len()).unwrap_or(0))
        .sum();
    let mut builder = StoreBuilder::with_capacity(file_bytes, file_bytes / 12);
    let mut reports = Vec::with_capacity(files.len());
    for (path, category) in files {
        let Some(bit) = categories.index(&category) else {
            continue; // cannot happen: the table was built from these very names
        };
        let report = load_file(&path, &category, bit, &mut builder)?;
        reports.push(report);
    }
    for (category, names) in builtin {
        let Some(bit) = categories.index(category) else {
            continue;
        };
        for name in *names {
            builder.insert(name, bit);
        }
        reports.push(FileReport {
            path: PathBuf::from("(built into kidsafe)"),
            category: (*category).to_string(),
            names: names.len(),
            ..FileReport::default()
        });
    }
    if let (Some(dir), Some(fingerprint), true) = (cache_dir, &fingerprint, write_cache) {
        // Compiled straight into the cache file and read back: the names and the automaton
        // are never in memory together, which lowers the peak of a build by the automaton's
        // size (11 MB at a million names).
        return match cache::build_and_save(dir, fingerprint, builder, categories, reports) {
            Ok(loaded) => Ok(loaded),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "compiled lists not cached ({e}); building them in memory, the next start rebuilds them");
                load_dirs_cached(dirs, builtin, CacheUse::None)
            }
        };
    }
    Ok(LoadedLists {
        store: builder.build(),
        categories,
        files: reports,
    })
}

/// Parses one list file into `builder`, tagging every name with category bit `bit`.
pub fn load_file(
    path: &Path,
    category: &str,
    bit: u8,
    builder: &mut StoreBuilder,
) -> Result<FileReport, ListError> {
    let failed = |source| ListError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(failed)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut report = FileReport {
        path: path.to_path_buf(),
        category: category.to_string(),
        ..FileReport::default()
    };
    // Windows Notepad saves "Unicode" as UTF-16 with a byte-order mark, and "UTF-8" with one:
    // read as they are, such files list nothing, and a parent would never know.
    let (utf16, utf8_bom) = {
        let head = reader.fill_buf().map_err(failed)?;
        let utf16 = match head {
            [0xff, 0xfe, ..] => Some(u16::from_le_bytes as fn([u8; 2]) -> u16),
            [0xfe, 0xff, ..] => Some(u16::from_be_bytes as fn([u8; 2]) -> u16),
            _ => None,
        };
        (utf16, head.starts_with(&[0xef, 0xbb, 0xbf]))
    };
    if utf8_bom {
        reader.consume(3);
    }
    match utf16 {
        Some(unit) => {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).map_err(failed)?;
            let units = bytes
                .get(2..)
                .unwrap_or_default()
                .chunks_exact(2)
                .map(|pair| unit([pair[0], pair[1]]));
            let text: String = char::decode_utf16(units)
                .collect::<Result<_, _>>()
                .map_err(|e| failed(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            read_lines(text.as_bytes(), bit, builder, &mut report).map_err(failed)?;
        }
        None => read_lines(reader, bit, builder, &mut report).map_err(failed)?,
    }
    if report.names == 0 && report.skipped + report.bad > 0 {
        return Err(ListError::NoNames {
            path: path.to_path_buf(),
            lines: report.skipped + report.bad,
        });
    }
    Ok(report)
}

/// Reads list lines from `reader` into `builder` and `report`.
fn read_lines(
    mut reader: impl BufRead,
    bit: u8,
    builder: &mut StoreBuilder,
    report: &mut FileReport,
) -> io::Result<()> {
    let mut line = Vec::with_capacity(256);
    let mut number = 0;
    // A feed snapshot's file (`#nfeed/1` header: canonical, signed, hash-checked) may list
    // single labels such as `xxx`, which the lenient parser skips as "a whole TLD" in lists of
    // unknown origin. In such a file every line that is a canonical name is taken as it is.
    let mut canonical = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        number += 1;
        if number == 1 {
            canonical = line.starts_with(parse::LIST_MAGIC.as_bytes());
        }
        if canonical
            && let Ok(text) = std::str::from_utf8(&line)
            && let Some(name) = text.strip_suffix('\n')
            && parse::check_entry(name).is_ok()
        {
            builder.insert(name, bit);
            report.names += 1;
            continue;
        }
        let mut listed = 0;
        let outcome = match std::str::from_utf8(&line) {
            Ok(text) => scan_line(text, &mut |name| {
                builder.insert(name, bit);
                listed += 1;
            }),
            Err(_) => Scanned::Bad(BadReason::InvalidCharacter),
        };
        report.names += listed;
        match outcome {
            Scanned::Blank | Scanned::Listed => {}
            Scanned::Skipped(_) => report.skipped += 1,
            Scanned::Bad(reason) => {
                report.bad += 1;
                if report.first_bad.len() < FIRST_BAD_KEPT {
                    report.first_bad.push((number, reason));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklist::Store;

    #[test]
    fn loads_a_directory_and_reports_per_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("gambling.txt"),
            "# casino list\r\nCasino.example\r\n0.0.0.0 bet.example\r\nbad..line\r\n127.0.0.1 localhost\r\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("agressif.txt"),
            "fight.example\n192.0.2.1\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("README.md"), "not a list").expect("write");
        std::fs::write(
            dir.path().join("latin1.txt"),
            b"ok.example\n\xe9t\xe9.example\n",
        )
        .expect("write");

        let loaded = load_dirs(&[dir.path().to_path_buf()]).expect("loads");
        let gambling = loaded.categories.index("gambling").expect("gambling");
        let violence = loaded
            .categories
            .index("violence")
            .expect("agressif maps to violence");
        assert_eq!(loaded.store.lookup_str("www.casino.example"), 1 << gambling);
        assert_eq!(loaded.store.lookup_str("bet.example"), 1 << gambling);
        assert_eq!(loaded.store.lookup_str("fight.example"), 1 << violence);
        assert_eq!(loaded.store.lookup_str("localhost"), 0);

        let report = loaded
            .files
            .iter()
            .find(|f| f.category == "gambling")
            .expect("report");
        assert_eq!((report.names, report.skipped, report.bad), (2, 1, 1));
        assert_eq!(report.first_bad, vec![(4, BadReason::BadLabel)]);
        let latin1 = loaded
            .files
            .iter()
            .find(|f| f.category == "latin1")
            .expect("custom");
        assert_eq!((latin1.names, latin1.bad), (1, 1));
        assert_eq!(loaded.names_per_category().get("violence"), Some(&1));
    }

    #[test]
    fn the_compiled_store_is_cached_until_a_list_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lists = dir.path().join("lists");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&lists).expect("mkdir");
        std::fs::write(lists.join("gambling.txt"), "casino.example\nbad..line\n").expect("write");
        let builtin: &[(&str, &[&str])] = &[("bypass", &["dns.example"])];
        let first = load_dirs_cached(
            std::slice::from_ref(&lists),
            builtin,
            CacheUse::ReadWrite(&state),
        )
        .expect("build");
        assert!(state.join("lists.fst").exists());
        let cached = load_dirs_cached(
            std::slice::from_ref(&lists),
            builtin,
            CacheUse::ReadWrite(&state),
        )
        .expect("cached");
        assert_eq!(cached.store.as_bytes(), first.store.as_bytes());
        assert_eq!(cached.files.len(), first.files.len());
        assert_eq!(cached.files[0].bad, 1, "reports survive the cache");
        let bypass = cached.categories.index("bypass").expect("bypass");
        assert_eq!(cached.store.lookup_str("dns.example"), 1 << bypass);

        // A changed list is rebuilt, never served from the cache.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(lists.join("gambling.txt"), "casino.example\nbet.example\n").expect("write");
        let rebuilt = load_dirs_cached(
            std::slice::from_ref(&lists),
            builtin,
            CacheUse::ReadWrite(&state),
        )
        .expect("rebuild");
        assert_ne!(rebuilt.store.lookup_str("bet.example"), 0);
        // Other built-in names are a change too.
        let other: &[(&str, &[&str])] = &[("bypass", &["dns2.example"])];
        let changed = load_dirs_cached(
            std::slice::from_ref(&lists),
            other,
            CacheUse::ReadWrite(&state),
        )
        .expect("rebuild");
        assert_eq!(changed.store.lookup_str("dns.example"), 0);
        // A corrupted automaton fails its checksum and is rebuilt.
        let mut bytes = std::fs::read(state.join("lists.fst")).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        assert!(
            Store::from_bytes(bytes.clone()).is_none(),
            "the checksum catches bit rot"
        );
        std::fs::write(state.join("lists.fst"), bytes).expect("write");
        let healed =
            load_dirs_cached(&[lists], other, CacheUse::ReadWrite(&state)).expect("rebuild");
        assert_ne!(healed.store.lookup_str("dns2.example"), 0);
        let on_disk = std::fs::read(state.join("lists.fst")).expect("read");
        assert!(
            Store::from_bytes(on_disk).is_some(),
            "and the cache is rewritten whole"
        );
    }

    #[test]
    fn a_same_size_edit_with_its_modification_time_put_back_is_rebuilt() {
        // `cp -p` and `rsync -t` keep a file's modification time; a cache keyed by path, size
        // and mtime alone served the old names after such an edit.
        let dir = tempfile::tempdir().expect("tempdir");
        let lists = dir.path().join("lists");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&lists).expect("mkdir");
        let file = lists.join("gambling.txt");
        std::fs::write(&file, "casino.example\n").expect("write");
        let lists = std::slice::from_ref(&lists);
        load_dirs_cached(lists, &[], CacheUse::ReadWrite(&state)).expect("build");
        let mtime = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, "casino.exampl2\n").expect("same size");
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(mtime))
            .expect("put the mtime back");
        let again = load_dirs_cached(lists, &[], CacheUse::ReadWrite(&state)).expect("load");
        assert_eq!(
            again.store.lookup_str("casino.example"),
            0,
            "stale cache served"
        );
        assert_ne!(again.store.lookup_str("casino.exampl2"), 0);
    }

    #[test]
    fn utf16_and_bom_files_are_read_and_a_file_of_no_names_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "# Notepad\r\ncasino.example\r\nbet.example\r\n";
        let mut le = vec![0xff, 0xfe];
        le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let mut be = vec![0xfe, 0xff];
        be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        let mut bom = vec![0xef, 0xbb, 0xbf];
        bom.extend_from_slice(b"casino.example\nbet.example\n");
        for (name, bytes) in [("le", le), ("be", be), ("bom", bom)] {
            let sub = dir.path().join(name);
            std::fs::create_dir_all(&sub).expect("mkdir");
            std::fs::write(sub.join("gambling.txt"), bytes).expect("write");
            let loaded = load_dirs(&[sub]).expect(name);
            assert_eq!(loaded.files[0].names, 2, "{name}");
            assert_ne!(loaded.store.lookup_str("bet.example"), 0, "{name}");
        }
        let junk = dir.path().join("junk");
        std::fs::create_dir_all(&junk).expect("mkdir");
        std::fs::write(junk.join("gambling.txt"), "<html>\n<body>Login</body>\n").expect("write");
        let err = load_dirs(&[junk]).expect_err("no names");
        assert!(
            err.to_string().contains("2 lines but not one name"),
            "{err}"
        );
        let comments = dir.path().join("comments");
        std::fs::create_dir_all(&comments).expect("mkdir");
        std::fs::write(comments.join("gambling.txt"), "# nothing yet\n\n").expect("write");
        assert!(
            load_dirs(&[comments]).is_ok(),
            "comments alone are an empty list, not an error"
        );
    }

    #[test]
    fn an_unwritable_cache_falls_back_to_a_build_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lists = dir.path().join("lists");
        std::fs::create_dir_all(&lists).expect("mkdir");
        std::fs::write(lists.join("gambling.txt"), "casino.example\n").expect("write");
        // A file where the state directory should be: nothing can be created under it.
        let state = dir.path().join("state");
        std::fs::write(&state, "not a directory").expect("write");
        let loaded =
            load_dirs_cached(&[lists], &[], CacheUse::ReadWrite(&state)).expect("builds anyway");
        let gambling = loaded.categories.index("gambling").expect("gambling");
        assert_eq!(loaded.store.lookup_str("www.casino.example"), 1 << gambling);
    }

    #[test]
    fn a_read_only_load_reads_the_cache_but_never_creates_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lists = dir.path().join("lists");
        std::fs::create_dir_all(&lists).expect("mkdir");
        std::fs::write(lists.join("gambling.txt"), "casino.example\n").expect("write");
        let state = dir.path().join("state");
        let lists = std::slice::from_ref(&lists);
        let loaded = load_dirs_cached(lists, &[], CacheUse::ReadOnly(&state)).expect("builds");
        let gambling = loaded.categories.index("gambling").expect("gambling");
        assert_eq!(loaded.store.lookup_str("www.casino.example"), 1 << gambling);
        assert!(
            !state.exists(),
            "a read-only load created the state directory"
        );

        load_dirs_cached(lists, &[], CacheUse::ReadWrite(&state)).expect("writes the cache");
        let written = std::fs::metadata(state.join("lists.fst"))
            .and_then(|m| m.modified())
            .expect("cache");
        let again = load_dirs_cached(lists, &[], CacheUse::ReadOnly(&state)).expect("reads");
        assert_eq!(again.store.lookup_str("www.casino.example"), 1 << gambling);
        assert_eq!(
            std::fs::metadata(state.join("lists.fst"))
                .and_then(|m| m.modified())
                .expect("cache"),
            written,
            "a read-only load rewrote the cache"
        );
    }

    #[test]
    fn a_missing_directory_or_bad_file_name_fails_the_load() {
        let err = load_dirs(&[PathBuf::from("/nonexistent/kidsafe-lists")]).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/kidsafe-lists"),
            "{err}"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("My List.txt"), "a.example\n").expect("write");
        let err = load_dirs(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(err.to_string().contains("not a category name"), "{err}");
    }
}
