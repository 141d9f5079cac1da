//! The strict-feed rows of HOSTILE-INPUTS.md, one table entry each.

use super::*;

const GOOD: &[u8] =
    b"#nfeed/1 category=adult version=4 entries=4\n0-100.example\nexample.com\nsub.example.net\nxxx\n#end entries=4\n";

fn list(body: &str) -> Vec<u8> {
    let n = body.lines().count();
    format!("#nfeed/1 category=adult version=4 entries={n}\n{body}#end entries={n}\n").into_bytes()
}

#[test]
fn a_canonical_file_is_accepted() {
    assert_eq!(check_list(GOOD, "adult", 4).unwrap(), 4);
    assert_eq!(
        list_entries(GOOD).collect::<Vec<_>>(),
        ["0-100.example", "example.com", "sub.example.net", "xxx"]
    );
    let names: Vec<String> = list_entries(GOOD).map(String::from).collect();
    assert_eq!(write_list("adult", 4, &names), GOOD);
    // An empty list is canonical too.
    let empty = write_list("adult", 4, &[]);
    assert_eq!(check_list(&empty, "adult", 4).unwrap(), 0);
}

/// Every hostile entry, alone in an otherwise canonical file: (entry, line, reason fragment).
#[test]
fn every_hostile_entry_is_rejected_with_its_line_and_reason() {
    let long_label = format!("{}.example", "a".repeat(64));
    let long_name = format!("{}.example", ["abcdefghi"; 25].join("."));
    let table: &[(&str, &str)] = &[
        ("", "blank line"),
        (".", "empty label"),
        ("-bad-.example", "starts or ends with '-'"),
        ("bad-.example", "starts or ends with '-'"),
        ("a..b", "empty label"),
        (&long_label, "more than 63"),
        (&long_name, "more than 253"),
        ("192.0.2.7", "IP address"),
        ("1.2.3", "all-numeric"),
        ("2001:db8::1", "URL or IPv6"),
        ("http://example.com/x", "URL"),
        ("0.0.0.0 host.example", "space"),
        ("||host.example^", "adblock"),
        ("*.example.com", "wildcard"),
        ("Example.com", "upper-case"),
        ("example.com.", "trailing dot"),
        ("example.com ", "trailing space"),
        ("example.com\r", "carriage return"),
        ("ex\tample.com", "tab"),
        ("bücher.de", "non-ASCII byte 0xc3"),
        ("under_score.example", "underscore"),
        ("# a comment", "comment line"),
        ("! adblock comment", "not allowed"),
    ];
    for (entry, reason) in table {
        let bytes = list(&format!("aaa.example\n{entry}\n"));
        let err = check_list(&bytes, "adult", 4).unwrap_err();
        match &err {
            FeedError::NonCanonical {
                line, reason: r, ..
            } => {
                assert_eq!(*line, 3, "{entry:?}: {err}");
                assert!(r.contains(reason), "{entry:?}: {r:?} lacks {reason:?}");
            }
            other => panic!("{entry:?}: {other}"),
        }
        assert!(err.to_string().contains("line 3"), "{err}");
        assert_eq!(err.kind(), "non_canonical");
    }
}

#[test]
fn hostile_files_are_rejected() {
    let good = String::from_utf8(GOOD.to_vec()).unwrap();
    let mut non_utf8 = GOOD.to_vec();
    non_utf8[50] = 0xff;
    let table: Vec<(&str, Vec<u8>, usize, &str)> = vec![
        (
            "BOM",
            [b"\xef\xbb\xbf", GOOD].concat(),
            1,
            "byte order mark",
        ),
        (
            "CRLF",
            good.replace('\n', "\r\n").into_bytes(),
            1,
            "carriage return",
        ),
        (
            "no final LF",
            GOOD[..GOOD.len() - 1].to_vec(),
            6,
            "does not end with LF",
        ),
        (
            "blank line",
            good.replace("xxx\n", "xxx\n\n").into_bytes(),
            6,
            "blank line",
        ),
        ("trailing blank", [GOOD, b"\n"].concat(), 7, "blank line"),
        (
            "extra comment",
            good.replace("xxx\n", "# note\nxxx\n").into_bytes(),
            5,
            "comment line",
        ),
        ("duplicate", list("a.example\na.example\n"), 3, "duplicate"),
        ("unsorted", list("b.example\na.example\n"), 3, "not sorted"),
        ("non-UTF-8", non_utf8, 2, "non-ASCII byte 0xff"),
        ("empty", Vec::new(), 1, "empty file"),
        (
            "no header",
            b"a.example\n#end entries=1\n".to_vec(),
            1,
            "header",
        ),
        (
            "wrong category",
            good.replace("adult", "gambling").into_bytes(),
            1,
            "header",
        ),
        (
            "wrong version",
            good.replace("version=4", "version=5").into_bytes(),
            1,
            "header",
        ),
        (
            "leading zero",
            good.replace("entries=4\n0", "entries=04\n0").into_bytes(),
            1,
            "header",
        ),
        (
            "no trailer",
            good.replace("#end entries=4\n", "").into_bytes(),
            6,
            "missing trailer",
        ),
        (
            "after trailer",
            [GOOD, b"z.example\n"].concat(),
            7,
            "after the trailer",
        ),
        (
            "unknown format",
            good.replace("#nfeed/1", "#nfeed/2").into_bytes(),
            1,
            "header",
        ),
    ];
    for (what, bytes, line, reason) in table {
        match check_list(&bytes, "adult", 4) {
            Err(FeedError::NonCanonical {
                line: l, reason: r, ..
            }) => {
                assert_eq!(l, line, "{what}: {r}");
                assert!(r.contains(reason), "{what}: {r:?} lacks {reason:?}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn header_and_trailer_counts_must_agree() {
    let good = String::from_utf8(GOOD.to_vec()).unwrap();
    for (what, text) in [
        ("header", good.replace("entries=4\n0", "entries=5\n0")),
        ("trailer", good.replace("#end entries=4", "#end entries=3")),
    ] {
        let err = check_list(text.as_bytes(), "adult", 4).unwrap_err();
        assert_eq!(err.kind(), "count_mismatch", "{what}: {err}");
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[test]
fn canonicalise_reads_lenient_lists() {
    let text = "\u{feff}# comment\r\n0.0.0.0 Ads.Example.COM\r\n||tracker.example^\n\
                *.b\u{fc}cher.de\n127.0.0.1 localhost\nexample.com.\nexample.com\n\
                xxx\nXXX.\nsex # a TLD\n0.0.0.0 com\nunder_score.example\n192.0.2.1\n\nbad..name\n";
    let (names, skipped) = canonicalise(text);
    assert_eq!(
        names,
        [
            "ads.example.com",
            "example.com",
            "sex",
            "tracker.example",
            "xn--bcher-kva.de",
            "xxx"
        ]
    );
    // localhost, `0.0.0.0 com` (a TLD on a hosts line), under_score, 192.0.2.1, bad..name
    assert_eq!(skipped, 5);
    let file = write_list("adult", 1, &names);
    assert_eq!(check_list(&file, "adult", 1).unwrap(), 6);
}

fn full(version: u64, names: &[&str]) -> Vec<u8> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    write_list("adult", version, &names)
}

#[test]
fn delta_round_trip() {
    let old = full(4, &["a.example", "b.example", "d.example", "x"]);
    let new = full(
        5,
        &["a.example", "c.example", "e.example", "x", "z.example"],
    );
    let delta = make_delta("adult", 4, 5, &old, &new);
    assert_eq!(
        String::from_utf8(delta.clone()).unwrap(),
        "#nfeed-delta/1 category=adult from=4 to=5\n-b.example\n-d.example\n\
         +c.example\n+e.example\n+z.example\n#end removals=2 additions=3\n"
    );
    assert_eq!(apply_delta(&old, &delta, "adult", 4, 5).unwrap(), new);
    // No change, all removed, all added.
    for (a, b) in [(&old, &old), (&old, &full(5, &[])), (&full(4, &[]), &new)] {
        let mut b = b.clone();
        // Re-version the target so it is version 5.
        let names: Vec<String> = list_entries(&b).map(String::from).collect();
        b = write_list("adult", 5, &names);
        let a_names: Vec<String> = list_entries(a).map(String::from).collect();
        let a = write_list("adult", 4, &a_names);
        let d = make_delta("adult", 4, 5, &a, &b);
        assert_eq!(apply_delta(&a, &d, "adult", 4, 5).unwrap(), b);
    }
}

#[test]
fn bad_deltas_are_rejected() {
    let old = full(4, &["a.example", "b.example"]);
    let d = |body: &str, r: usize, a: usize| {
        format!(
            "#nfeed-delta/1 category=adult from=4 to=5\n{body}#end removals={r} additions={a}\n"
        )
    };
    let table: Vec<(&str, String, &str)> = vec![
        ("remove absent", d("-c.example\n", 1, 0), "bad_delta"),
        ("remove absent before", d("-0.example\n", 1, 0), "bad_delta"),
        ("add present", d("+a.example\n", 0, 1), "bad_delta"),
        (
            "remove and add",
            d("-a.example\n+a.example\n", 1, 1),
            "bad_delta",
        ),
        (
            "unsorted removals",
            d("-b.example\n-a.example\n", 2, 0),
            "non_canonical",
        ),
        (
            "duplicate additions",
            d("+c.example\n+c.example\n", 0, 2),
            "non_canonical",
        ),
        (
            "removal after addition",
            d("+c.example\n-a.example\n", 1, 1),
            "non_canonical",
        ),
        ("bad name", d("+C.example\n", 0, 1), "non_canonical"),
        ("no sign", d("c.example\n", 0, 1), "non_canonical"),
        ("count", d("+c.example\n", 0, 2), "count_mismatch"),
        ("CRLF", d("+c.example\r\n", 0, 1), "non_canonical"),
        (
            "wrong from",
            d("+c.example\n", 0, 1).replace("from=4", "from=3"),
            "non_canonical",
        ),
        (
            "no trailer",
            "#nfeed-delta/1 category=adult from=4 to=5\n+c.example\n".into(),
            "non_canonical",
        ),
    ];
    for (what, delta, kind) in table {
        let err = apply_delta(&old, delta.as_bytes(), "adult", 4, 5).unwrap_err();
        assert_eq!(err.kind(), kind, "{what}: {err}");
    }
    // The delta's line number is in the message.
    let err = apply_delta(&old, d("-c.example\n", 1, 0).as_bytes(), "adult", 4, 5).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    // A delta for another version of the old file.
    let err = apply_delta(
        &full(3, &["a.example"]),
        d("", 0, 0).as_bytes(),
        "adult",
        4,
        5,
    )
    .unwrap_err();
    assert_eq!(err.kind(), "non_canonical", "{err}");
}

/// The bundled real lists (hosts files and plain lists from UT1 and others) go through the
/// publisher's path: canonicalise, write, check, and a delta between two of them round-trips.
#[test]
fn bundled_lists_canonicalise_to_valid_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("blocklists");
    let mut files = Vec::new();
    for name in ["gambling", "dating", "drogue"] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap();
        let (names, _) = canonicalise(&text);
        assert!(names.len() > 100, "{name}: {}", names.len());
        let bytes = write_list("adult", 1, &names);
        assert_eq!(check_list(&bytes, "adult", 1).unwrap(), names.len() as u64);
        files.push(bytes);
    }
    let next: Vec<String> = list_entries(&files[1]).map(String::from).collect();
    let to = write_list("adult", 2, &next);
    let delta = make_delta("adult", 1, 2, &files[0], &to);
    assert_eq!(apply_delta(&files[0], &delta, "adult", 1, 2).unwrap(), to);
}
