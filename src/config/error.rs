//! Config errors that point at the exact place: file, line, column and key path.
//!
//! Every problem found in one pass is reported, not just the first, so a parent fixing a typo
//! sees the whole list at once.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// A 1-based line and column in the config file. There is no default: every problem points
/// at the text it is about (0:0 would be no place an editor can jump to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `source`.
    pub fn of_offset(source: &str, offset: usize) -> Self {
        let offset = offset.min(source.len());
        let before = source.get(..offset).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before
            .get(line_start..)
            .map_or(1, |text| text.chars().count() + 1);
        Self { line, column }
    }
}

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub at: Location,
    /// The dotted key path, e.g. `profiles.child.block[2]` (empty when unknown).
    pub key: String,
    /// What is wrong and, where we can tell, what to do.
    pub message: String,
}

/// A config that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error("{}", render(path, problems))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Everything wrong with it.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems, when the file was readable.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render(path: &std::path::Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.to_string_with(path));
    }
    out
}

impl Problem {
    /// `path:line:column: key: message`, the form editors and `grep -n` users know.
    pub fn to_string_with(&self, path: &std::path::Path) -> String {
        let Location { line, column } = self.at;
        if self.key.is_empty() {
            format!("{}:{line}:{column}: {}", path.display(), self.message)
        } else {
            format!(
                "{}:{line}:{column}: {}: {}",
                path.display(),
                self.key,
                self.message
            )
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Collects problems while the config is checked.
#[derive(Debug, Default)]
pub struct Problems {
    found: Vec<Problem>,
}

impl Problems {
    /// Records a problem at a span of the source.
    pub fn at_span(
        &mut self,
        source: &str,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.found.push(Problem {
            at: Location::of_offset(source, span.start),
            key: key.into(),
            message: message.into(),
        });
    }

    /// Records a problem at a known location.
    pub fn at(&mut self, at: Location, key: impl Into<String>, message: impl Into<String>) {
        self.found.push(Problem {
            at,
            key: key.into(),
            message: message.into(),
        });
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The problems, in the order found.
    pub fn into_vec(self) -> Vec<Problem> {
        self.found
    }
}

/// The dotted key path at byte `offset`, worked out from the table headers above it, for errors
/// the TOML parser reports with a position but without the key (unknown field, wrong type).
pub fn key_path_at(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    let mut table = String::new();
    let mut array_counts: std::collections::HashMap<String, usize> = Default::default();
    let mut line_start = 0;
    for line in source.split_inclusive('\n') {
        let line_end = line_start + line.len();
        let trimmed = line.trim();
        let is_error_line = offset >= line_start && offset < line_end.max(line_start + 1);
        if let Some(header) = trimmed
            .strip_prefix("[[")
            .and_then(|h| h.split("]]").next())
        {
            let name = header.trim().to_string();
            let index = array_counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{index}]");
            *index += 1;
            if is_error_line {
                return table;
            }
        } else if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = header.trim().to_string();
            if is_error_line {
                return table;
            }
        } else if is_error_line {
            let key = trimmed
                .split('=')
                .next()
                .map(str::trim)
                .filter(|k| !k.is_empty() && !k.starts_with('#'))
                .unwrap_or_default();
            return match (table.is_empty(), key.is_empty()) {
                (_, true) => table,
                (true, false) => key.to_string(),
                (false, false) => format!("{table}.{key}"),
            };
        }
        line_start = line_end;
    }
    table
}

/// Turns what the TOML parser says about a syntax error into where a parent should look and
/// what to write there: `(byte offset, message)`.
///
/// The parser notices an unclosed list only where the next line starts (`missing comma between
/// array elements`, blamed on whatever table that line is in), so a list still open there is
/// pointed at where it opened.
pub fn syntax_error(source: &str, offset: usize, message: &str) -> (usize, String) {
    let message = message.trim();
    // The parser's message, without what it expected (", expected `,`").
    let base = message.split(", expected").next().unwrap_or(message);
    let in_array = matches!(
        base,
        "missing comma between array elements" | "unclosed array" | "unexpected `=` in array"
    );
    let Some(open) = in_array.then(|| open_array_at(source, offset)).flatten() else {
        return (offset, message.to_string());
    };
    let offset = offset.min(source.len());
    let opened_before = source
        .get(open..offset)
        .is_some_and(|between| between.contains('\n'));
    let line_start = source
        .get(..offset)
        .map_or(0, |b| b.rfind('\n').map_or(0, |i| i + 1));
    // The line the parser stopped on, whole: `allow = [` or `[[clients]]` cannot be inside a
    // list, so the list before it was never closed.
    let line = source
        .get(line_start..)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_default();
    let starts_something_else = looks_like_key(line) || looks_like_header(line);
    if base == "unclosed array" || (opened_before && starts_something_else) {
        return (
            open,
            "this list is not closed: add \"]\" after its last item".to_string(),
        );
    }
    if base == "missing comma between array elements" {
        return (
            offset,
            "a comma is missing before this item (a list is written [\"a\", \"b\"])".to_string(),
        );
    }
    (offset, message.to_string())
}

/// Rewords what serde says about a value of the wrong shape: an unknown key or value gets the
/// closest valid one as a suggestion, and "a sequence" is called what a config writer knows it
/// as.
pub fn value_error(message: &str) -> String {
    let message = message
        .trim()
        .replace("expected a sequence", "expected a list in [ … ]");
    for what in ["unknown field `", "unknown variant `"] {
        let Some(rest) = message.strip_prefix(what) else {
            continue;
        };
        let Some((name, valid)) = rest.split_once('`') else {
            continue;
        };
        // The valid names are the backquoted words after the unknown one.
        let names = valid.split('`').skip(1).step_by(2);
        if let Some(close) = super::suggest::closest(name, names) {
            return format!("{what}{name}` (did you mean `{close}`?){valid}");
        }
    }
    message
}

/// `name =` or `a.b =` at the start of `line`.
fn looks_like_key(line: &str) -> bool {
    let line = line.trim_start();
    let key_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.\"'".contains(c)))
        .unwrap_or(line.len());
    key_len > 0 && line[key_len..].trim_start().starts_with('=')
}

/// `[table]` or `[[table]]`: brackets round a bare dotted name.
fn looks_like_header(line: &str) -> bool {
    let line = line.split('#').next().unwrap_or_default().trim();
    let inner = line
        .strip_prefix("[[")
        .and_then(|l| l.strip_suffix("]]"))
        .or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')));
    inner.is_some_and(|name| {
        !name.trim().is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-. ".contains(c))
    })
}

/// The byte offset of the `[` of the innermost value list still open at `offset`, skipping
/// strings, comments and table headers.
fn open_array_at(source: &str, offset: usize) -> Option<usize> {
    let bytes = source.as_bytes();
    let end = offset.min(bytes.len());
    let to_line_end = |i: usize| source[i..].find('\n').map_or(bytes.len(), |n| i + n);
    let mut open: Vec<usize> = Vec::new();
    let mut line_blank = true;
    let mut i = 0;
    while i < end {
        let b = bytes[i];
        match b {
            b'\n' => line_blank = true,
            b'#' => {
                i = to_line_end(i);
                continue;
            }
            b'"' | b'\'' => {
                let triple: &[u8] = if b == b'"' { b"\"\"\"" } else { b"'''" };
                let multi = bytes.get(i..i + 3) == Some(triple);
                let close: &[u8] = if multi { triple } else { &triple[..1] };
                let mut j = i + close.len();
                while j < bytes.len() && bytes.get(j..j + close.len()) != Some(close) {
                    if b == b'"' && bytes[j] == b'\\' {
                        j += 1;
                    } else if !multi && bytes[j] == b'\n' {
                        break;
                    }
                    j += 1;
                }
                i = j + close.len();
                line_blank = false;
                continue;
            }
            // A table header: its brackets hold no value.
            b'[' if open.is_empty() && line_blank => {
                i = to_line_end(i);
                continue;
            }
            b'[' => open.push(i),
            b']' => {
                open.pop();
            }
            _ => {}
        }
        if !b.is_ascii_whitespace() {
            line_blank = false;
        }
        i += 1;
    }
    open.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(Location::of_offset(src, 0), Location { line: 1, column: 1 });
        let at = src.find('=').expect("=");
        assert_eq!(
            Location::of_offset(src, at),
            Location { line: 1, column: 3 }
        );
        let second = src.rfind('2').expect("2");
        assert_eq!(
            Location::of_offset(src, second),
            Location { line: 2, column: 6 }
        );
    }

    #[test]
    fn key_paths_follow_tables_and_arrays_of_tables() {
        let src =
            "[server]\nlisten = []\n\n[[clients]]\nname = \"a\"\n[[clients]]\nprofle = \"x\"\n";
        assert_eq!(
            key_path_at(src, src.find("listen").expect("l")),
            "server.listen"
        );
        assert_eq!(
            key_path_at(src, src.find("profle").expect("p")),
            "clients[1].profle"
        );
        assert_eq!(key_path_at(src, 0), "server");
    }
}
