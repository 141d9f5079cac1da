//! Canonical list files and deltas of a feed: the strict format, checked byte by byte.
//!
//! A feed is signed and machine-written, so any deviation is a publisher bug or an attack and
//! rejects the file whole (the lenient parser in [`crate::blocklist::parse`] is for hand-kept
//! and third-party lists). The rules (docs/feed.md):
//! - ASCII only, LF line endings, every line ends with LF, no BOM, no blank line;
//! - line 1 `#nfeed/1 category=<id> version=<n> entries=<n>`, last line `#end entries=<n>`,
//!   no other comment;
//! - one name a line: lower-case, no trailing dot, 1–253 bytes, labels of 1–63 LDH bytes
//!   (`a-z`, `0-9`, `-`) not starting or ending with `-`, not an IPv4 address, not an
//!   all-numeric top label; single labels (`xxx`) are allowed;
//! - names sorted bytewise and unique.
//!
//! A delta is `#nfeed-delta/1 category=<id> from=<a> to=<b>`, then `-name` lines, then
//! `+name` lines (each group sorted and unique), then `#end removals=<r> additions=<a>`.

pub use crate::blocklist::parse::{LIST_MAGIC, check_entry};
use crate::blocklist::parse::{Normalised, Scanned, normalise, scan_line};

use super::FeedError;

/// The first word of a delta file's header.
pub const DELTA_MAGIC: &str = "#nfeed-delta/1";

fn non_canonical(file: &str, line: usize, reason: impl Into<String>) -> FeedError {
    FeedError::NonCanonical {
        file: file.to_string(),
        line,
        reason: reason.into(),
    }
}

/// Splits a file into numbered lines, checking what holds for every line of every canonical
/// file: ends with LF, no BOM, ASCII without control characters, no trailing space, not blank.
fn strict_lines<'a>(
    bytes: &'a [u8],
    file: &'a str,
) -> Result<impl Iterator<Item = Result<(usize, &'a str), FeedError>> + 'a, FeedError> {
    if bytes.is_empty() {
        return Err(non_canonical(file, 1, "empty file (no header)"));
    }
    if bytes.starts_with(b"\xef\xbb\xbf") {
        return Err(non_canonical(file, 1, "byte order mark"));
    }
    let Some(body) = bytes.strip_suffix(b"\n") else {
        let line = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(non_canonical(file, line, "last line does not end with LF"));
    };
    Ok(body
        .split(|&b| b == b'\n')
        .enumerate()
        .map(move |(i, line)| {
            let n = i + 1;
            line_text(line)
                .map(|text| (n, text))
                .map_err(|reason| non_canonical(file, n, reason))
        }))
}

fn line_text(line: &[u8]) -> Result<&str, String> {
    if line.is_empty() {
        return Err("blank line".into());
    }
    for &b in line {
        match b {
            0x80.. => return Err(format!("non-ASCII byte 0x{b:02x}")),
            b'\r' => return Err("carriage return (CRLF line ending)".into()),
            b'\t' => return Err("tab".into()),
            0..0x20 | 0x7f => return Err(format!("control character 0x{b:02x}")),
            _ => {}
        }
    }
    if line.ends_with(b" ") {
        return Err("trailing space".into());
    }
    // All bytes are ASCII, checked above.
    std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())
}

/// Reads `key=<decimal>` written canonically (no sign, no leading zero).
fn number(word: &str, key: &str) -> Option<u64> {
    let digits = word.strip_prefix(key)?.strip_prefix('=')?;
    let n: u64 = digits.parse().ok()?;
    (n.to_string() == digits).then_some(n)
}

/// Checks a full list file of `category` at `version` and returns its number of entries.
/// The header and trailer counts must agree with the entries; the manifest's count is the
/// caller's to compare.
pub fn check_list(bytes: &[u8], category: &str, version: u64) -> Result<u64, FeedError> {
    let file = format!("list {category:?}");
    let want_header = format!("{LIST_MAGIC} category={category} version={version} entries=");
    let mut lines = strict_lines(bytes, &file)?;
    let (_, header) = lines
        .next()
        .ok_or_else(|| non_canonical(&file, 1, "empty file (no header)"))??;
    let declared = header
        .strip_prefix(want_header.as_str())
        .and_then(|rest| number(&format!("entries={rest}"), "entries"))
        .ok_or_else(|| {
            non_canonical(
                &file,
                1,
                format!("header {header:?} is not \"{want_header}<n>\""),
            )
        })?;
    let mut count: u64 = 0;
    let mut previous: Option<&str> = None;
    let mut trailer: Option<(usize, u64)> = None;
    let mut last_line = 1;
    for line in lines {
        let (n, text) = line?;
        last_line = n;
        if let Some((at, _)) = trailer {
            return Err(non_canonical(
                &file,
                n,
                format!("text after the trailer on line {at}"),
            ));
        }
        if text.starts_with('#') {
            let total =
                number(text.strip_prefix("#end ").unwrap_or(""), "entries").ok_or_else(|| {
                    non_canonical(&file, n, "comment line (only the header and trailer)")
                })?;
            trailer = Some((n, total));
            continue;
        }
        check_entry(text).map_err(|reason| non_canonical(&file, n, reason))?;
        if let Some(prev) = previous {
            match prev.cmp(text) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(non_canonical(&file, n, "duplicate of the previous line"));
                }
                std::cmp::Ordering::Greater => {
                    return Err(non_canonical(
                        &file,
                        n,
                        "not sorted: sorts before the previous line",
                    ));
                }
            }
        }
        previous = Some(text);
        count += 1;
    }
    let Some((_, total)) = trailer else {
        return Err(non_canonical(
            &file,
            last_line + 1,
            "missing trailer \"#end entries=<n>\"",
        ));
    };
    for (what, expected) in [("header", declared), ("trailer", total)] {
        if expected != count {
            return Err(FeedError::CountMismatch {
                what: format!("{file} {what}"),
                expected,
                actual: count,
            });
        }
    }
    Ok(count)
}

/// The names of a list file that [`check_list`] accepted, in order.
pub fn list_entries(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes
        .strip_suffix(b"\n")
        .unwrap_or(bytes)
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty() && !line.starts_with(b"#"))
        .filter_map(|line| std::str::from_utf8(line).ok())
}

fn write_list_from<'a>(
    category: &str,
    version: u64,
    count: usize,
    names: impl Iterator<Item = &'a str>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * 20 + 100);
    out.extend_from_slice(
        format!("{LIST_MAGIC} category={category} version={version} entries={count}\n").as_bytes(),
    );
    for name in names {
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(format!("#end entries={count}\n").as_bytes());
    out
}

/// Writes a full list file. `names` must already be canonical, sorted and unique (as
/// [`canonicalise`] returns them).
pub fn write_list(category: &str, version: u64, names: &[String]) -> Vec<u8> {
    write_list_from(
        category,
        version,
        names.len(),
        names.iter().map(String::as_str),
    )
}

/// Turns a lenient list (hosts, plain names, `||name^`, comments, CRLF, IDN, upper case) into
/// sorted, unique canonical names, with [`crate::blocklist::parse`]'s line reader. Returns the
/// names and the number of lines or names skipped (boilerplate, IP addresses, bad lines, names
/// the strict rules refuse such as `under_score.example`). Single labels (`xxx`) are kept when
/// they stand alone on a line, since the feed may list a TLD on purpose.
pub fn canonicalise(text: &str) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut skipped = 0;
    for line in text.lines() {
        let mut refused = 0;
        let scanned = scan_line(line, &mut |name| match check_entry(name) {
            Ok(()) => names.push(name.to_string()),
            Err(_) => refused += 1,
        });
        skipped += refused;
        match scanned {
            Scanned::Blank | Scanned::Listed => {}
            Scanned::Bad(_) => skipped += 1,
            Scanned::Skipped(crate::blocklist::parse::SkipReason::SingleLabel) => {
                // A lone word, perhaps with a trailing comment; hosts lines stay skipped.
                let mut words = line.trim_start_matches('\u{feff}').split_whitespace();
                let word = words.next().unwrap_or_default();
                let alone = words.next().is_none_or(|w| w.starts_with('#'));
                match normalise(word) {
                    Ok(Normalised::Name(name)) if alone && check_entry(&name).is_ok() => {
                        names.push(name.into_owned());
                    }
                    _ => skipped += 1,
                }
            }
            Scanned::Skipped(_) => skipped += 1,
        }
    }
    names.sort_unstable();
    names.dedup();
    (names, skipped)
}

/// Writes the delta from `old` (version `from`) to `new` (version `to`), both full files that
/// [`check_list`] accepted.
pub fn make_delta(category: &str, from: u64, to: u64, old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut removals = Vec::new();
    let mut additions = Vec::new();
    let mut old_names = list_entries(old).peekable();
    let mut new_names = list_entries(new).peekable();
    loop {
        match (old_names.peek(), new_names.peek()) {
            (None, None) => break,
            (Some(_), None) => removals.extend(old_names.by_ref()),
            (None, Some(_)) => additions.extend(new_names.by_ref()),
            (Some(o), Some(n)) => match o.cmp(n) {
                std::cmp::Ordering::Less => removals.extend(old_names.next()),
                std::cmp::Ordering::Greater => additions.extend(new_names.next()),
                std::cmp::Ordering::Equal => {
                    old_names.next();
                    new_names.next();
                }
            },
        }
    }
    let mut out = format!("{DELTA_MAGIC} category={category} from={from} to={to}\n").into_bytes();
    for name in &removals {
        out.push(b'-');
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    for name in &additions {
        out.push(b'+');
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(
        format!(
            "#end removals={} additions={}\n",
            removals.len(),
            additions.len()
        )
        .as_bytes(),
    );
    out
}

/// A delta's lines, checked for form.
struct Delta<'a> {
    /// (line number, name)
    removals: Vec<(usize, &'a str)>,
    additions: Vec<(usize, &'a str)>,
}

fn parse_delta<'a>(
    delta: &'a [u8],
    file: &'a str,
    category: &str,
    from: u64,
    to: u64,
) -> Result<Delta<'a>, FeedError> {
    let want_header = format!("{DELTA_MAGIC} category={category} from={from} to={to}");
    let mut lines = strict_lines(delta, file)?;
    let (_, header) = lines
        .next()
        .ok_or_else(|| non_canonical(file, 1, "empty file (no header)"))??;
    if header != want_header {
        return Err(non_canonical(
            file,
            1,
            format!("header {header:?} is not {want_header:?}"),
        ));
    }
    let mut parsed = Delta {
        removals: Vec::new(),
        additions: Vec::new(),
    };
    let mut trailer: Option<(u64, u64)> = None;
    let mut last_line = 1;
    for line in lines {
        let (n, text) = line?;
        last_line = n;
        if trailer.is_some() {
            return Err(non_canonical(file, n, "text after the trailer"));
        }
        if let Some(rest) = text.strip_prefix("#end ") {
            let counts = rest
                .split_once(' ')
                .and_then(|(r, a)| Some((number(r, "removals")?, number(a, "additions")?)));
            trailer = Some(counts.ok_or_else(|| {
                non_canonical(
                    file,
                    n,
                    "trailer is not \"#end removals=<r> additions=<a>\"",
                )
            })?);
            continue;
        }
        let (group, name) = match text.split_at_checked(1) {
            Some(("-", name)) => {
                if !parsed.additions.is_empty() {
                    return Err(non_canonical(file, n, "removal after an addition"));
                }
                (&mut parsed.removals, name)
            }
            Some(("+", name)) => (&mut parsed.additions, name),
            _ => {
                return Err(non_canonical(
                    file,
                    n,
                    "line is neither \"-name\" nor \"+name\"",
                ));
            }
        };
        check_entry(name).map_err(|reason| non_canonical(file, n, reason))?;
        if let Some(&(_, prev)) = group.last()
            && prev >= name
        {
            return Err(non_canonical(
                file,
                n,
                if prev == name {
                    "duplicate of the previous line"
                } else {
                    "not sorted: sorts before the previous line"
                },
            ));
        }
        group.push((n, name));
    }
    let Some((removals, additions)) = trailer else {
        return Err(non_canonical(
            file,
            last_line + 1,
            "missing trailer \"#end removals=<r> additions=<a>\"",
        ));
    };
    for (what, expected, actual) in [
        ("removals", removals, parsed.removals.len()),
        ("additions", additions, parsed.additions.len()),
    ] {
        if expected != actual as u64 {
            return Err(FeedError::CountMismatch {
                what: format!("{file} {what}"),
                expected,
                actual: actual as u64,
            });
        }
    }
    Ok(parsed)
}

/// Applies a delta to `old` (the full file of `category` at version `from`) and returns the
/// full file of version `to`. Strict: removing a name `old` does not list, adding one it
/// already lists, or a name in both groups is an error. The caller then checks the result's
/// SHA-256 against the manifest's `full.sha256` and falls back to the full file on any error.
pub fn apply_delta(
    old: &[u8],
    delta: &[u8],
    category: &str,
    from: u64,
    to: u64,
) -> Result<Vec<u8>, FeedError> {
    let file = format!("delta {category:?} {from}→{to}");
    check_list(old, category, from)?;
    let parsed = parse_delta(delta, &file, category, from, to)?;
    let bad = |line: usize, what: &str| {
        FeedError::BadDelta(format!("{file} line {line}: {what} (version {from})"))
    };

    // Old minus removals, one merge pass (both sorted).
    let mut kept: Vec<&str> = Vec::new();
    let mut removals = parsed.removals.iter().peekable();
    for name in list_entries(old) {
        match removals.peek() {
            Some(&&(n, r)) if r < name => return Err(bad(n, "removes a name not listed in")),
            Some(&&(_, r)) if r == name => {
                removals.next();
            }
            _ => kept.push(name),
        }
    }
    if let Some(&(n, _)) = removals.next() {
        return Err(bad(n, "removes a name not listed in"));
    }

    // Plus additions, one merge pass.
    let mut result: Vec<&str> = Vec::with_capacity(kept.len() + parsed.additions.len());
    let mut additions = parsed.additions.iter().peekable();
    let removed: std::collections::HashSet<&str> =
        parsed.removals.iter().map(|&(_, name)| name).collect();
    for name in kept {
        while let Some(&&(n, a)) = additions.peek() {
            if a > name {
                break;
            }
            if a == name {
                return Err(bad(n, "adds a name already listed in"));
            }
            if removed.contains(a) {
                return Err(bad(n, "adds a name it also removes from"));
            }
            result.push(a);
            additions.next();
        }
        result.push(name);
    }
    for &(n, a) in additions {
        if removed.contains(a) {
            return Err(bad(n, "adds a name it also removes from"));
        }
        result.push(a);
    }
    Ok(write_list_from(
        category,
        to,
        result.len(),
        result.into_iter(),
    ))
}

#[cfg(test)]
mod tests;
