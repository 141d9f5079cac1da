//! One line of a list file → zero or more normalised domain names.
//!
//! Lenient on purpose: real lists mix formats, carry hosts-file boilerplate, bare IP addresses,
//! upper case, CRLF and IDNs. Every line ends as exactly one [`LineOutcome`], so the loader can
//! count what it skipped and why. A name that comes out of here is lower-case ASCII (A-labels),
//! has no trailing dot, at least two labels, labels of 1–63 bytes of `[a-z0-9_-]`, and is at
//! most 253 bytes long: it can never block the root or a whole TLD.

use std::borrow::Cow;
use std::net::IpAddr;

/// The first word of a canonical list file's header (the signed feed's strict format,
/// docs/feed.md; checked whole by the feed's `canonical` module).
pub const LIST_MAGIC: &str = "#nfeed/1";

/// Checks one entry of a canonical list against the strict name rules (LDH labels, lower
/// case, no trailing dot; single labels allowed); the reason names what is wrong.
pub fn check_entry(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    for c in name.chars() {
        let reason = match c {
            'a'..='z' | '0'..='9' | '-' | '.' => continue,
            'A'..='Z' => "upper-case letter (names are lower-case)".to_string(),
            ' ' => "space (a hosts-file line?)".to_string(),
            '*' => "wildcard (an entry already covers its subdomains)".to_string(),
            '|' | '^' => "adblock syntax".to_string(),
            '/' | ':' => "URL or IPv6 address".to_string(),
            '#' => "comment".to_string(),
            '_' => "underscore (names are LDH: a-z, 0-9, '-')".to_string(),
            c if !c.is_ascii() => "non-ASCII character (use A-labels, xn--…)".to_string(),
            c => format!("character {c:?} is not allowed in a name"),
        };
        return Err(reason);
    }
    if name.ends_with('.') && name.len() > 1 {
        return Err("trailing dot".into());
    }
    if name.len() > 253 {
        return Err(format!("name is {} bytes, more than 253", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > 63 {
            return Err(format!("label of {} bytes, more than 63", label.len()));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("label starts or ends with '-'".into());
        }
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("IP address".into());
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("all-numeric top-level label (an IP address?)".into());
    }
    Ok(())
}

/// What one line of a list file turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// Blank, or a comment (`#`, `!`, an adblock `[Adblock Plus]` header).
    Blank,
    /// One or more names to list (several only on a hosts line).
    Names(Vec<String>),
    /// Nothing to list, on purpose: hosts boilerplate, a bare IP address, a single label.
    Skipped(SkipReason),
    /// A line we could not read: counted and reported, never fatal.
    Bad(BadReason),
}

/// Why a well-formed line lists nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `localhost`, `broadcasthost`, `ip6-*` and friends from hosts-file headers.
    Boilerplate,
    /// A bare IP address in a list of names.
    IpAddress,
    /// A single label (`com`, `xxx`): it would block a whole TLD.
    SingleLabel,
}

/// Why a line could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadReason {
    /// Adblock syntax beyond `||name^` (exceptions, paths, options, cosmetic rules).
    UnsupportedAdblock,
    /// More than one word where one name was expected.
    UnexpectedWords,
    /// A character that cannot be in a host name (`/`, `*` inside, `:` …).
    InvalidCharacter,
    /// An empty label (`a..b`) or one longer than 63 bytes.
    BadLabel,
    /// Longer than 253 bytes.
    TooLong,
    /// An internationalised name that does not convert to A-labels.
    BadIdn,
}

impl BadReason {
    /// A short phrase for reports.
    pub fn describe(self) -> &'static str {
        match self {
            BadReason::UnsupportedAdblock => "unsupported adblock rule",
            BadReason::UnexpectedWords => "more than one word",
            BadReason::InvalidCharacter => "invalid character",
            BadReason::BadLabel => "empty or over-long label",
            BadReason::TooLong => "name longer than 253 bytes",
            BadReason::BadIdn => "invalid internationalised name",
        }
    }
}

/// Reads one line of a list file into owned names (tests, tools). The loader uses
/// [`scan_line`], which hands names over without allocating.
///
/// ```
/// use kidsafe::blocklist::{parse_line, LineOutcome, SkipReason};
///
/// let names = |v: &[&str]| LineOutcome::Names(v.iter().map(|s| s.to_string()).collect());
/// assert_eq!(parse_line("0.0.0.0 Ads.Example.COM"), names(&["ads.example.com"]));
/// assert_eq!(parse_line("||tracker.example^"), names(&["tracker.example"]));
/// assert_eq!(parse_line("*.bücher.de"), names(&["xn--bcher-kva.de"]));
/// assert_eq!(parse_line("127.0.0.1 localhost"), LineOutcome::Skipped(SkipReason::Boilerplate));
/// assert_eq!(parse_line("com"), LineOutcome::Skipped(SkipReason::SingleLabel));
/// ```
pub fn parse_line(line: &str) -> LineOutcome {
    let mut names = Vec::new();
    match scan_line(line, &mut |name| names.push(name.to_string())) {
        Scanned::Listed => LineOutcome::Names(names),
        Scanned::Blank => LineOutcome::Blank,
        Scanned::Skipped(reason) => LineOutcome::Skipped(reason),
        Scanned::Bad(reason) => LineOutcome::Bad(reason),
    }
}

/// What [`scan_line`] found; the names themselves went to its sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// Blank or comment.
    Blank,
    /// At least one name was handed to the sink.
    Listed,
    /// Nothing to list, on purpose.
    Skipped(SkipReason),
    /// Unreadable; nothing was handed to the sink.
    Bad(BadReason),
}

/// Reads one line of a list file, handing each name to `sink`. A line is listed whole or not
/// at all: a hosts line with one bad word lists none of its names.
pub fn scan_line(line: &str, sink: &mut impl FnMut(&str)) -> Scanned {
    let line = line.trim_start_matches('\u{feff}').trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with('!') || line.starts_with('[') {
        return Scanned::Blank;
    }
    let line = strip_inline_comment(line);

    if let Some(rule) = line.strip_prefix("||") {
        return match rule.strip_suffix('^') {
            Some(name) if !name.is_empty() && !name.contains(['^', '$', '/', '|']) => {
                one_name(name, sink)
            }
            _ => Scanned::Bad(BadReason::UnsupportedAdblock),
        };
    }
    if line.starts_with("@@") || line.contains("##") || line.contains("#@#") {
        return Scanned::Bad(BadReason::UnsupportedAdblock);
    }

    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return Scanned::Blank;
    };
    if is_ip_address(first) {
        // A hosts line: the address is the sink, every following word is a name. Check every
        // word before listing any, so a bad word rejects the line whole.
        let mut last_skip = SkipReason::IpAddress;
        let mut any = false;
        for word in words.clone() {
            match listable(word) {
                Ok(Normalised::Name(_)) => any = true,
                Ok(Normalised::Skip(reason)) => last_skip = reason,
                Err(bad) => return Scanned::Bad(bad),
            }
        }
        if !any {
            return Scanned::Skipped(last_skip);
        }
        for word in words {
            if let Ok(Normalised::Name(name)) = listable(word) {
                sink(&name);
            }
        }
        return Scanned::Listed;
    }
    if words.next().is_some() {
        return Scanned::Bad(BadReason::UnexpectedWords);
    }
    one_name(first, sink)
}

fn one_name(word: &str, sink: &mut impl FnMut(&str)) -> Scanned {
    match listable(word) {
        Ok(Normalised::Name(name)) => {
            sink(&name);
            Scanned::Listed
        }
        Ok(Normalised::Skip(reason)) => Scanned::Skipped(reason),
        Err(bad) => Scanned::Bad(bad),
    }
}

/// [`normalise`], plus the rule for lists: a single label would block a whole TLD.
fn listable(word: &str) -> Result<Normalised<'_>, BadReason> {
    match normalise(word)? {
        Normalised::Name(name) if !name.contains('.') => {
            Ok(Normalised::Skip(SkipReason::SingleLabel))
        }
        other => Ok(other),
    }
}

/// A `#` starts a comment only at the start of a word, so `a.example#x` stays one (bad) word.
fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return line[..i].trim_end();
        }
    }
    line
}

fn is_ip_address(word: &str) -> bool {
    // `fe80::1%lo0` carries a zone id, which `IpAddr` does not parse.
    let word = word.split('%').next().unwrap_or(word);
    word.parse::<IpAddr>().is_ok()
}

/// The result of normalising one word that is meant to be a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Normalised<'a> {
    /// A name fit to list (borrowed when the word needed no change).
    Name(Cow<'a, str>),
    /// A word that lists nothing, on purpose.
    Skip(SkipReason),
}

/// Normalises one name: wildcard and leading-dot prefixes dropped (a listed name always covers
/// its subdomains), trailing dot removed, lower-cased, IDN converted to punycode, then checked.
/// Single labels pass here (a config may deny a TLD on purpose); list lines refuse them.
pub fn normalise(word: &str) -> Result<Normalised<'_>, BadReason> {
    let mut name = word.strip_prefix("*.").unwrap_or(word);
    name = name.strip_prefix('.').unwrap_or(name);
    name = name.strip_suffix('.').unwrap_or(name);
    if is_ip_address(name) {
        return Ok(Normalised::Skip(SkipReason::IpAddress));
    }
    let name: Cow<'_, str> = if !name.is_ascii() {
        let ascii = idna::domain_to_ascii(name).map_err(|_| BadReason::BadIdn)?;
        // IDNA mapping drops some characters (U+FEFF) and folds others (fullwidth digits and
        // dots), so a word that was no address may be one now: `7.0.0.1\u{feff}`.
        if is_ip_address(&ascii) {
            return Ok(Normalised::Skip(SkipReason::IpAddress));
        }
        Cow::Owned(ascii)
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    };
    if is_boilerplate(&name) {
        return Ok(Normalised::Skip(SkipReason::Boilerplate));
    }
    check_host_name(&name)?;
    Ok(Normalised::Name(name))
}

fn is_boilerplate(name: &str) -> bool {
    matches!(
        name,
        "localhost" | "localhost.localdomain" | "local" | "broadcasthost" | "localdomain"
    ) || name.starts_with("ip6-")
}

/// Checks the shape every stored name must have (see the module invariants).
pub fn check_host_name(name: &str) -> Result<(), BadReason> {
    if name.len() > 253 {
        return Err(BadReason::TooLong);
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(BadReason::BadLabel);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(BadReason::InvalidCharacter);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> LineOutcome {
        LineOutcome::Names(v.iter().map(|s| (*s).to_string()).collect())
    }

    #[test]
    fn every_format_and_quirk() {
        use BadReason::*;
        use SkipReason::*;
        let table: &[(&str, LineOutcome)] = &[
            ("example.com", names(&["example.com"])),
            ("Example.COM.", names(&["example.com"])),
            ("example.com\r", names(&["example.com"])),
            ("  example.com  ", names(&["example.com"])),
            ("\u{feff}example.com", names(&["example.com"])),
            ("0.0.0.0 ads.example.com", names(&["ads.example.com"])),
            ("127.0.0.1\tads.example.com", names(&["ads.example.com"])),
            (
                "0.0.0.0 a.example b.example",
                names(&["a.example", "b.example"]),
            ),
            (":: ads.example.com", names(&["ads.example.com"])),
            ("0.0.0.0 Ehentai.to", names(&["ehentai.to"])),
            ("||ads.example.com^", names(&["ads.example.com"])),
            (
                "||ads.example.com^$third-party",
                LineOutcome::Bad(UnsupportedAdblock),
            ),
            (
                "@@||good.example.com^",
                LineOutcome::Bad(UnsupportedAdblock),
            ),
            ("example.com##.banner", LineOutcome::Bad(UnsupportedAdblock)),
            ("||example.com/path^", LineOutcome::Bad(UnsupportedAdblock)),
            ("*.snapchat.com", names(&["snapchat.com"])),
            (".leading.example", names(&["leading.example"])),
            ("bücher.de", names(&["xn--bcher-kva.de"])),
            ("xn--bcher-kva.de", names(&["xn--bcher-kva.de"])),
            (
                "under_score.example.com",
                names(&["under_score.example.com"]),
            ),
            ("example.com # trailing comment", names(&["example.com"])),
            ("# comment", LineOutcome::Blank),
            ("! adblock comment", LineOutcome::Blank),
            ("[Adblock Plus 2.0]", LineOutcome::Blank),
            ("", LineOutcome::Blank),
            ("   \r", LineOutcome::Blank),
            ("127.0.0.1 localhost", LineOutcome::Skipped(Boilerplate)),
            (
                "255.255.255.255 broadcasthost",
                LineOutcome::Skipped(Boilerplate),
            ),
            (
                "::1 localhost ip6-localhost ip6-loopback",
                LineOutcome::Skipped(Boilerplate),
            ),
            ("fe80::1%lo0 localhost", LineOutcome::Skipped(Boilerplate)),
            ("ff02::1 ip6-allnodes", LineOutcome::Skipped(Boilerplate)),
            ("0.0.0.0 0.0.0.0", LineOutcome::Skipped(IpAddress)),
            ("0.0.0.0 85.17.187.83", LineOutcome::Skipped(IpAddress)),
            ("192.0.2.7", LineOutcome::Skipped(IpAddress)),
            // Found by fuzzing (tests/data/fuzz-regressions/list_line/): addresses that only
            // become one after IDNA mapping were listed as names.
            ("7.0.0.1\u{feff}", LineOutcome::Skipped(IpAddress)),
            (
                "\u{ff11}\u{ff19}\u{ff12}.0.2.7",
                LineOutcome::Skipped(IpAddress),
            ),
            ("0.0.0.0 192\u{ff0e}0.2.7", LineOutcome::Skipped(IpAddress)),
            ("2001:db8::1", LineOutcome::Skipped(IpAddress)),
            ("com", LineOutcome::Skipped(SingleLabel)),
            ("com.", LineOutcome::Skipped(SingleLabel)),
            ("*.com", LineOutcome::Skipped(SingleLabel)),
            (".", LineOutcome::Bad(BadLabel)),
            ("a..b", LineOutcome::Bad(BadLabel)),
            ("http://example.com/x", LineOutcome::Bad(InvalidCharacter)),
            ("ads*.example.com", LineOutcome::Bad(InvalidCharacter)),
            ("two words", LineOutcome::Bad(UnexpectedWords)),
            (&"a".repeat(64), LineOutcome::Bad(BadLabel)),
        ];
        for (line, want) in table {
            assert_eq!(&parse_line(line), want, "line {line:?}");
        }
    }

    #[test]
    fn overlong_names_are_rejected() {
        let long = format!("{}.example", ["abcdefghi"; 25].join("."));
        assert!(long.len() > 253);
        assert_eq!(parse_line(&long), LineOutcome::Bad(BadReason::TooLong));
    }
}
