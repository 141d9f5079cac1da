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
