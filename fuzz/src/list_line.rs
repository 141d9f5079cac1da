//! Target `list_line`: the input is one list file. Every line goes through the list parser the
//! way `lists::load_file` feeds it (split after `\n`, a line that is not UTF-8 is bad), the
//! names it lists go into a `StoreBuilder`, and the built store is checked against a naive
//! model.
//!
//! Asserted:
//! - every listed name has the store's shape: lower-case ASCII, at most 253 bytes, at least
//!   two labels, labels of 1–63 bytes of `[a-z0-9_-]` (checked here from scratch, not with the
//!   parser's own `check_host_name`);
//! - a listed name normalises to itself (the parser is idempotent), so a name written the way
//!   kidsafe prints it lists the same thing;
//! - `parse_line` and `scan_line` agree;
//! - the store answers every lookup exactly as "OR of the categories of every listed suffix"
//!   computed from a plain map: listed names, their subdomains and parents, upper-cased
//!   variants, and the input's own words split into wire labels (any bytes).

use std::collections::HashMap;

use kidsafe::blocklist::parse::{Normalised, normalise};
use kidsafe::blocklist::{LineOutcome, Scanned, StoreBuilder, parse_line, scan_line};

/// Most categories the target spreads names over (bits 0..CATEGORIES).
const CATEGORIES: usize = 5;

/// Runs the checks on one input; panics on a violation.
pub fn check(data: &[u8]) {
    let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut builder = StoreBuilder::default();
    let mut words: Vec<&[u8]> = Vec::new();

    for (number, raw) in data.split_inclusive(|&b| b == b'\n').enumerate() {
        words.extend(
            raw.split(|b| b.is_ascii_whitespace())
                .filter(|w| !w.is_empty()),
        );
        let Ok(line) = std::str::from_utf8(raw) else {
            continue; // the loader counts it as bad and lists nothing
        };
        let bit = u8::try_from(number % CATEGORIES).expect("small");
        let mut scanned = Vec::new();
        let outcome = scan_line(line, &mut |name| scanned.push(name.to_string()));
        match (&outcome, parse_line(line)) {
            (Scanned::Listed, LineOutcome::Names(names)) => {
                assert_eq!(
                    names, scanned,
                    "parse_line and scan_line differ on {line:?}"
                );
                assert!(!names.is_empty(), "listed nothing from {line:?}");
            }
            (Scanned::Blank, LineOutcome::Blank) => {}
            (Scanned::Skipped(a), LineOutcome::Skipped(b)) if *a == b => {}
            (Scanned::Bad(a), LineOutcome::Bad(b)) if *a == b => {}
            (a, b) => panic!("scan_line said {a:?}, parse_line said {b:?} for {line:?}"),
        }
        if outcome != Scanned::Listed {
            assert!(
                scanned.is_empty(),
                "{outcome:?} but names {scanned:?} from {line:?}"
            );
        }
        for name in &scanned {
            assert_store_shape(name, line);
            match normalise(name) {
                Ok(Normalised::Name(again)) => {
                    assert_eq!(
                        again,
                        name.as_str(),
                        "{name:?} (from {line:?}) normalises to {again:?}"
                    )
                }
                other => panic!("listed name {name:?} (from {line:?}) normalises to {other:?}"),
            }
            builder.insert(name, bit);
            *model.entry(name.as_bytes().to_vec()).or_default() |= 1 << bit;
        }
    }

    let store = builder.build();
    assert!(
        store.len() <= model.len(),
        "{} keys for {} names",
        store.len(),
        model.len()
    );

    let lookup = |labels: &[&[u8]]| store.lookup(labels.iter().copied());
    for name in model.keys() {
        let labels: Vec<&[u8]> = name.split(|&b| b == b'.').collect();
        // The name itself, every parent, and a subdomain.
        for start in 0..labels.len() {
            let tail = &labels[start..];
            assert_eq!(
                lookup(tail),
                expected(&model, tail),
                "lookup of {}",
                show(tail)
            );
        }
        let mut deeper = vec![&b"x-y_z"[..]];
        deeper.extend_from_slice(&labels);
        assert_eq!(
            lookup(&deeper),
            expected(&model, &deeper),
            "lookup of {}",
            show(&deeper)
        );
        // Case is folded on lookup, as names come off the wire.
        let upper = name.to_ascii_uppercase();
        let upper: Vec<&[u8]> = upper.split(|&b| b == b'.').collect();
        assert_eq!(
            lookup(&upper),
            lookup(&labels),
            "lookup of {}",
            show(&upper)
        );
    }
    // Whatever the input holds, as wire labels: any bytes, empty labels, the separator byte.
    for word in words {
        let labels: Vec<&[u8]> = word.split(|&b| b == b'.').collect();
        assert_eq!(
            lookup(&labels),
            expected(&model, &labels),
            "lookup of {}",
            show(&labels)
        );
    }
}

/// The shape every stored name must have, written out independently of the parser.
fn assert_store_shape(name: &str, line: &str) {
    assert!(
        name.len() <= 253,
        "{name:?} (from {line:?}) is longer than 253 bytes"
    );
    let labels: Vec<&str> = name.split('.').collect();
    assert!(
        labels.len() >= 2,
        "{name:?} (from {line:?}) is a single label"
    );
    for label in labels {
        assert!(
            (1..=63).contains(&label.len()),
            "{name:?} (from {line:?}) has a label of {} bytes",
            label.len()
        );
        assert!(
            label
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_')),
            "{name:?} (from {line:?}) has a byte outside [a-z0-9_-]"
        );
    }
}

/// The model: OR of the categories of every listed suffix of `labels` (case folded). A label
/// holding a `.` can never match, because lookups are label-wise.
fn expected(model: &HashMap<Vec<u8>, u64>, labels: &[&[u8]]) -> u64 {
    let mut bits = 0;
    for start in 0..labels.len() {
        let tail = &labels[start..];
        if tail.iter().any(|l| l.contains(&b'.')) {
            continue;
        }
        let key = tail.join(&b'.').to_ascii_lowercase();
        bits |= model.get(&key).copied().unwrap_or(0);
    }
    bits
}

fn show(labels: &[&[u8]]) -> String {
    format!("{:?}", labels.join(&b'.').escape_ascii().to_string())
}
