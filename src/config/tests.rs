//! The TOML rows of HOSTILE-INPUTS.md, and the example config, as tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
[upstream]
servers = ["127.0.0.1:53"]

[defaults]
profile = "teen"

[profiles.teen]
block = ["adult"]
"#;

fn load(source: &str) -> Result<Config, ConfigError> {
    Config::from_source(Path::new("/etc/kidsafe/kidsafe.toml"), source)
}

fn first_problem(source: &str) -> Problem {
    match load(source) {
        Ok(_) => panic!("config should be rejected:\n{source}"),
        Err(e) => e.problems().first().cloned().expect("at least one problem"),
    }
}

#[test]
fn the_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kidsafe.toml");
    let config = Config::load(&path).expect("example config loads");
    assert_eq!(
        config.list_dirs,
        vec![path.parent().expect("dir").join("../blocklists")]
    );
    assert!(config.profile_index("child").is_some());
}

/// The Debian package installs packaging/kidsafe.toml: the example with install paths. Keep
/// the two in step: only the header comment and these three lines may differ.
#[test]
fn the_packaged_config_is_the_example_with_install_paths() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let packaged = Config::load(&root.join("packaging/kidsafe.toml")).expect("packaged config");
    assert_eq!(
        packaged.list_dirs,
        vec![PathBuf::from("/usr/share/kidsafe/blocklists")]
    );
    assert_eq!(packaged.server.state_dir, PathBuf::from("/var/lib/kidsafe"));
    assert!(packaged.server.listen.iter().all(|a| a.port() == 53));

    let body = |path: &str| {
        let text = std::fs::read_to_string(root.join(path)).expect("read");
        let at = text.find("[server]").expect("a [server] table");
        text[at..].to_string()
    };
    let example_with_install_paths = body("config/kidsafe.toml")
        .replacen(
            "listen = [\"127.0.0.1:5353\", \"[::1]:5353\"]",
            "listen = [\"127.0.0.1:53\", \"[::1]:53\"]",
            1,
        )
        .replacen(
            "state_dir = \"../target/kidsafe-state\"",
            "state_dir = \"/var/lib/kidsafe\"",
            1,
        )
        .replacen(
            "dirs = [\"../blocklists\"]",
            "dirs = [\"/usr/share/kidsafe/blocklists\"]",
            1,
        );
    assert_eq!(
        body("packaging/kidsafe.toml"),
        example_with_install_paths,
        "packaging/kidsafe.toml drifted from config/kidsafe.toml"
    );
}

#[test]
fn a_minimal_config_gets_safe_defaults() {
    let config = load(MINIMAL).expect("valid");
    assert_eq!(config.server.block_response, BlockResponse::NxDomain);
    assert_eq!(config.server.block_ttl, 60);
    assert_eq!(config.upstream.timeout, Duration::from_secs(2));
    assert_eq!(config.server.state_dir, PathBuf::from("/var/lib/kidsafe"));
    assert!(
        config
            .server
            .allow_clients
            .iter()
            .any(|n| n.to_string() == "192.168.0.0/16")
    );
}

/// Each row: what is written, then the line, column, key and a phrase the message must hold.
#[test]
fn upstream_forms() {
    let ok = |text: &str| parse_upstream(text).expect(text).to_string();
    assert_eq!(ok("9.9.9.9"), "udp://9.9.9.9:53");
    assert_eq!(ok("udp://9.9.9.9:5353"), "udp://9.9.9.9:5353");
    assert_eq!(ok("tcp://[2620:fe::fe]"), "tcp://[2620:fe::fe]:53");
    assert_eq!(ok("tcp://2620:fe::fe"), "tcp://[2620:fe::fe]:53");
    assert_eq!(
        ok("tls://9.9.9.9#dns.quad9.net"),
        "tls://9.9.9.9:853#dns.quad9.net"
    );
    assert_eq!(ok("tls://1.1.1.1:8853"), "tls://1.1.1.1:8853#1.1.1.1");
    // DoH: the IP in the URL and the certificate's name after '#', or the other way round.
    assert_eq!(
        ok("https://9.9.9.9/dns-query#dns.quad9.net"),
        "https://9.9.9.9:443/dns-query#dns.quad9.net"
    );
    assert_eq!(
        ok("https://dns.quad9.net:8443/dns-query#9.9.9.9"),
        "https://9.9.9.9:8443/dns-query#dns.quad9.net"
    );
    assert_eq!(
        ok("https://[2620:fe::fe]/q"),
        "https://[2620:fe::fe]:443/q#2620:fe::fe"
    );
    assert_eq!(
        ok("https://1.1.1.1"),
        "https://1.1.1.1:443/dns-query#1.1.1.1"
    );
    for bad in [
        "https://dns.quad9.net/dns-query",
        "https://dns.quad9.net/dns-query#dns.quad9.net",
        "https://9.9.9.9/dns-query?dns=x",
        "https://9.9.9.9/dns-query#bad name",
        "https://dns.quad9.net:port/dns-query#9.9.9.9",
        "tls://9.9.9.9#",
        "tls://9.9.9.9#bad name",
        "quic://9.9.9.9",
        "dns.quad9.net",
    ] {
        assert!(parse_upstream(bad).is_err(), "{bad}");
    }
}

#[test]
fn resilience_settings_have_documented_defaults() {
    let config = load(MINIMAL).expect("valid");
    assert_eq!(config.server.rate_limit, 200);
    assert_eq!(config.server.rate_burst, 400, "twice the rate");
    assert_eq!(config.upstream.strategy, Strategy::Failover);
    assert!(config.upstream.rebind_protection);
    let allow: Vec<String> = config
        .upstream
        .rebind_allow
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(allow, vec!["lan.", "home.arpa."]);
    assert_eq!(config.cache.serve_stale, Duration::from_secs(86_400));

    let custom = MINIMAL.replacen(
        "[upstream]\n",
        "[server]\nrate_limit = 0\n[cache]\nserve_stale = \"0s\"\n[upstream]\nrebind_protection = false\nrebind_allow = []\n",
        1,
    );
    let config = load(&custom).expect("valid");
    assert_eq!((config.server.rate_limit, config.server.rate_burst), (0, 1));
    assert!(config.cache.serve_stale.is_zero());
    assert!(!config.upstream.rebind_protection);
    assert!(config.upstream.rebind_allow.is_empty());
}

#[test]
fn bad_configs_name_line_column_and_key() {
    let cases: &[(&str, (usize, usize), &str, &str)] = &[
        // syntax error
        ("[server\nlisten = []\n", (1, 8), "", "expected"),
        // unknown keys at every level fail closed, never silently
        (
            "[server]\nlisen = [\"127.0.0.1:53\"]\n",
            (2, 1),
            "server.lisen",
            "unknown field `lisen`",
        ),
        (
            "[upstream]\nservers = [\"127.0.0.1:53\"]\n[defaults]\nprofile = \"a\"\n[profiles.a]\ncategoires = []\n",
            (6, 1),
            "profiles.a.categoires",
            "unknown field `categoires`",
        ),
        // wrong type
        (
            "[server]\nlisten = 53\n",
            (2, 10),
            "server.listen",
            "invalid type",
        ),
        // missing required section
        ("", (1, 1), "", "missing field `upstream`"),
    ];
    for (source, (line, column), key, phrase) in cases {
        let p = first_problem(source);
        assert_eq!(
            (p.at.line, p.at.column),
            (*line, *column),
            "{source:?}: {p:?}"
        );
        if !key.is_empty() {
            assert_eq!(p.key, *key, "{source:?}");
        }
        assert!(p.message.contains(phrase), "{source:?}: {}", p.message);
    }
}

#[test]
fn semantic_errors_point_at_the_value() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[defaults]\nprofile = \"teen\"",
            "[defaults]\nprofile = \"tween\"",
            "unknown profile \"tween\"",
        ),
        (
            "servers = [\"127.0.0.1:53\"]",
            "servers = [\"dns.example\"]",
            "not a resolver address",
        ),
        (
            "servers = [\"127.0.0.1:53\"]",
            "servers = [\"https://dns.quad9.net/dns-query\"]",
            "needs its IP address after \"#\"",
        ),
        (
            "servers = [\"127.0.0.1:53\"]",
            "servers = [\"tls://dns.quad9.net\"]",
            "needs an IP address",
        ),
        (
            "[upstream]\n",
            "[upstream]\ntimeout = \"forever\"\n",
            "not a duration",
        ),
        (
            "[upstream]\n",
            "[upstream]\ntimeout = \"0s\"\n",
            "must be between",
        ),
        (
            "[upstream]\n",
            "[upstream]\nmax_in_flight = 0\n",
            "must be between 1 and 65535",
        ),
        (
            "servers = [\"127.0.0.1:53\"]",
            "servers = [\"127.0.0.1:53\"]\n[server]\ntcp_connections = 0",
            "must be between 1 and 65535",
        ),
        (
            "block = [\"adult\"]",
            "block = [\"adult\"]\nallow = [\"not a name\"]",
            "not a domain name",
        ),
        (
            "[upstream]\n",
            "[upstream]\nstrategy = \"quickest\"\n",
            "must be \"failover\"",
        ),
        (
            "[upstream]\n",
            "[upstream]\nrebind_allow = [\"lan\", \"my lan\"]\n",
            "not a domain name",
        ),
        (
            "servers = [\"127.0.0.1:53\"]",
            "servers = [\"127.0.0.1:53\"]\n[server]\nrate_burst = 0",
            "between 1 and 1000000 queries",
        ),
        (
            "servers = [\"127.0.0.1:53\"]",
            "servers = [\"127.0.0.1:53\"]\n[cache]\nserve_stale = \"30d\"",
            "must be between 0s and 7days",
        ),
    ];
    for (from, to, phrase) in cases {
        let source = MINIMAL.replacen(from, to, 1);
        assert_ne!(source, MINIMAL, "replacement {from:?} did not apply");
        let p = first_problem(&source);
        let err_line = source.lines().nth(p.at.line - 1).expect("line exists");
        assert!(p.message.contains(phrase), "{to:?}: {}", p.message);
        assert!(!p.key.is_empty(), "{to:?}: no key");
        assert!(
            err_line.contains(&to.lines().last().expect("line")[..4]),
            "{to:?} points at {err_line:?}"
        );
    }
}

/// These problems have no single value of their own and were reported at line 0, column 0,
/// which no editor can jump to. Found with the config fuzz target's check (fuzz/src/config.rs,
/// inputs in tests/data/fuzz-regressions/config/); they now point at what was written.
#[test]
fn empty_lists_and_bad_profile_names_point_into_the_file() {
    let inline = "profiles = { teen = { block = [\"adult\"] }, \"x y\" = {} }\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("[server]\nlisten = []\n{MINIMAL}"),
            "[]",
            "server.listen",
        ),
        (
            MINIMAL.replacen("servers = [\"127.0.0.1:53\"]", "servers = []", 1),
            "[]",
            "upstream.servers",
        ),
        (
            MINIMAL.replacen("[profiles.teen]", "[profiles.\"a b\"]\n[profiles.teen]", 1),
            "\"a b\"",
            "profiles.a b",
        ),
        (
            format!(
                "{inline}{}",
                MINIMAL.replacen("[profiles.teen]\nblock = [\"adult\"]", "", 1)
            ),
            "\"x y\"",
            "profiles.x y",
        ),
    ];
    for (source, written, key) in cases {
        let p = first_problem(&source);
        let at = source.find(written).expect("written");
        assert_eq!(p.key, key, "{source:?}");
        assert_eq!(p.at, Location::of_offset(&source, at), "{source:?}: {p:?}");
        assert!(p.at.line >= 1 && p.at.column >= 1);
    }
}

#[test]
fn every_problem_is_reported_at_once_with_the_file_name() {
    let source = r#"
[server]
listen = ["localhost:53"]
block_response = "blackhole"

[upstream]
servers = []

[defaults]
profile = "nobody"

[profiles.teen]
"#;
    let err = load(source).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems().len(), 4, "{text}");
    assert!(
        text.contains("/etc/kidsafe/kidsafe.toml:3:11: server.listen[0]:"),
        "{text}"
    );
    assert!(text.contains("server.block_response"), "{text}");
    assert!(text.contains("upstream.servers"), "{text}");
    assert!(
        text.contains("defaults.profile: unknown profile \"nobody\""),
        "{text}"
    );
}

#[test]
fn client_networks_are_checked() {
    let with_clients = |clients: &str| format!("{MINIMAL}\n[profiles.child]\n{clients}");
    let host_bits =
        with_clients("[[clients]]\nname = \"x\"\nmatch = [\"10.0.0.5/24\"]\nprofile = \"child\"\n");
    assert!(
        first_problem(&host_bits)
            .message
            .contains("did you mean 10.0.0.0/24")
    );

    let twice = with_clients(
        "[[clients]]\nname = \"a\"\nmatch = [\"10.0.5.0/24\"]\nprofile = \"child\"\n\
         [[clients]]\nname = \"b\"\nmatch = [\"10.0.5.0/24\"]\nprofile = \"teen\"\n",
    );
    let p = first_problem(&twice);
    assert_eq!(p.key, "clients[1].match[0]");
    assert!(
        p.message.contains("already matched by client \"a\""),
        "{}",
        p.message
    );

    let overlapping = with_clients(
        "[[clients]]\nname = \"a\"\nmatch = [\"10.0.0.0/16\"]\nprofile = \"teen\"\n\
         [[clients]]\nname = \"b\"\nmatch = [\"10.0.5.0/24\", \"10.0.9.9\"]\nprofile = \"child\"\n",
    );
    let config = load(&overlapping).expect("overlap is allowed: longest prefix wins");
    assert_eq!(config.clients[1].networks[1].to_string(), "10.0.9.9/32");
}

#[test]
fn accepted_oddities() {
    // A BOM and CRLF line ends are fine.
    let crlf = format!("\u{feff}{}", MINIMAL.replace('\n', "\r\n"));
    load(&crlf).expect("BOM + CRLF");
    // Duplicate tables are a TOML error.
    let dup = format!("{MINIMAL}\n[profiles.teen]\nblock = []\n");
    assert!(
        first_problem(&dup).message.contains("duplicate"),
        "duplicate table"
    );
    // A NUL byte is an error, not a truncation.
    let nul = MINIMAL.replace("adult", "ad\0ult");
    assert!(load(&nul).is_err());
}

/// The family and school examples in README.md are real configs.
#[test]
fn the_readme_examples_are_valid() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    for heading in ["### A family", "### A school"] {
        let after = readme.split(heading).nth(1).expect("section");
        let toml_block = after
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a toml block");
        let source = format!("{toml_block}\n[upstream]\nservers = [\"127.0.0.1:53\"]\n");
        let config = load(&source).unwrap_or_else(|e| panic!("{heading}: {e}"));
        assert!(config.profiles.len() >= 3, "{heading}");
    }
}

#[test]
fn feed_and_source_settings_are_checked_where_written() {
    let with = |extra: &str| format!("{MINIMAL}\n{extra}");
    let good = with(
        "[feed]\nurl = \"https://feed.example.al/v1\"\npublic_key = [\"RWQa\", \"RWQb\"]\n\n[[lists.sources]]\ncategory = \"Porn\"\nurl = \"http://lists.example.org/hosts\"\n",
    );
    let config = load(&good).expect("valid");
    let feed = config.feed.expect("[feed]");
    assert_eq!(
        feed.url, "https://feed.example.al/v1/",
        "a trailing slash is added"
    );
    assert_eq!(feed.public_keys.value, vec!["RWQa", "RWQb"]);
    assert_eq!(feed.refresh, Duration::from_secs(6 * 3600));
    assert_eq!(feed.timeout, Duration::from_secs(600));
    let source = &config.sources[0];
    assert_eq!(source.category.value, "adult", "synonyms are canonicalised");
    assert_eq!(source.refresh, Duration::from_secs(86_400));
    assert!(source.dir_name().starts_with("adult-"));

    let cases: &[(&str, (usize, usize), &str, &str)] = &[
        (
            "[feed]\nurl = \"ftp://feed.example.al/\"\npublic_key = \"RWQa\"\n",
            (12, 7),
            "feed.url",
            "http:// or https://",
        ),
        (
            "[feed]\nurl = \"https://f.example/\"\npublic_key = \"RWQa\"\nrefresh = \"5s\"\n",
            (14, 11),
            "feed.refresh",
            "between",
        ),
        (
            "[feed]\nurl = \"https://f.example/\"\npublic_key = []\n",
            (13, 14),
            "feed.public_key",
            "public key",
        ),
        (
            "[[lists.sources]]\ncategory = \"no such!\"\nurl = \"https://x.example/h\"\n",
            (12, 12),
            "lists.sources[0].category",
            "not a category",
        ),
    ];
    for (extra, (line, column), key, phrase) in cases {
        let p = first_problem(&with(extra));
        assert_eq!(
            (p.at.line, p.at.column),
            (*line, *column),
            "{extra:?}: {p:?}"
        );
        assert_eq!(p.key, *key, "{extra:?}");
        assert!(p.message.contains(phrase), "{extra:?}: {}", p.message);
    }
}

#[test]
fn a_feed_problem_does_not_hide_a_list_source_problem() {
    let source = format!(
        "{MINIMAL}\n[feed]\nurl = \"ftp://f.example/\"\npublic_key = \"RWQa\"\n\n\
         [[lists.sources]]\ncategory = \"no such!\"\nurl = \"https://x.example/h\"\n"
    );
    let keys: Vec<String> = match load(&source) {
        Ok(_) => panic!("config should be rejected"),
        Err(e) => e.problems().iter().map(|p| p.key.clone()).collect(),
    };
    assert_eq!(keys, ["feed.url", "lists.sources[0].category"]);
}

/// Issue 20: an unclosed list was blamed on the line after it (`34:1: clients[0]: missing comma
/// between array elements`), in the parser's words.
#[test]
fn an_unclosed_list_is_blamed_where_it_opened_in_plain_words() {
    let source = format!(
        "{MINIMAL}\n[profiles.child]\nblock = [\"gambling\"\n\n[[clients]]\nname = \"x\"\nmatch = [\"10.0.0.2\"]\nprofile = \"child\"\n"
    );
    let line = source
        .lines()
        .position(|l| l.starts_with("block = [\"gambling\""))
        .expect("line")
        + 1;
    let err = load(&source).expect_err("unclosed");
    assert_eq!(
        err.to_string(),
        format!(
            "/etc/kidsafe/kidsafe.toml:{line}:9: profiles.child.block: this list is not closed: add \"]\" after its last item"
        )
    );
    // The same when the next line is a key, and when the file ends inside the list.
    let before_key = MINIMAL.replace("block = [\"adult\"]", "block = [\"adult\"\nallow = []");
    let p = first_problem(&before_key);
    assert_eq!(
        (p.at.line, p.at.column, p.key.as_str()),
        (9, 9, "profiles.teen.block")
    );
    assert_eq!(
        p.message,
        "this list is not closed: add \"]\" after its last item"
    );
    let before_key_after_comma =
        MINIMAL.replace("block = [\"adult\"]", "block = [\"adult\",\nallow = []");
    let p = first_problem(&before_key_after_comma);
    assert_eq!((p.at.line, p.at.column), (9, 9), "{p:?}");
    assert_eq!(
        p.message,
        "this list is not closed: add \"]\" after its last item"
    );
    let at_end = MINIMAL.replace("block = [\"adult\"]", "block = [\"adult\",\n  \"dating\"");
    let p = first_problem(&at_end);
    assert_eq!((p.at.line, p.at.column), (9, 9), "{p:?}");

    // A comma missing inside a list that is closed stays where it is missing.
    let no_comma = MINIMAL.replace("block = [\"adult\"]", "block = [\"adult\" \"dating\"]");
    let p = first_problem(&no_comma);
    assert_eq!((p.at.line, p.at.column), (9, 18), "{p:?}");
    assert_eq!(
        p.message,
        "a comma is missing before this item (a list is written [\"a\", \"b\"])"
    );
    // Brackets in strings and comments do not confuse the search for the opening.
    let quoted = MINIMAL.replace(
        "block = [\"adult\"]",
        "# [not a list\ndeny = [\"x[.com\", # ] or this\n  \"y.com\"\nallow = []",
    );
    let p = first_problem(&quoted);
    assert_eq!(
        (p.at.line, p.at.column, p.key.as_str()),
        (10, 8, "profiles.teen.deny")
    );
}

/// Issue 20: unknown keys and presets suggest the closest valid one, and a wrong shape says
/// what to write.
#[test]
fn mistyped_names_get_a_suggestion() {
    let p = first_problem("[server]\nlisen = [\"127.0.0.1:53\"]\n");
    assert!(
        p.message.starts_with(
            "unknown field `lisen` (did you mean `listen`?), expected one of `listen`, "
        ),
        "{}",
        p.message
    );
    let p = first_problem("[server]\nlisten = 53\n");
    assert_eq!(
        p.message,
        "invalid type: integer `53`, expected a list in [ … ]"
    );
    let p = first_problem(&MINIMAL.replace("block = [\"adult\"]", "preset = \"under9\""));
    assert_eq!(p.key, "profiles.teen.preset");
    assert_eq!(
        p.message,
        "unknown preset \"under9\" (did you mean \"under-9\"?); use one of under-9, 9-12, 13-15, 16-17, adult"
    );
    let p = first_problem(&MINIMAL.replace("block = [\"adult\"]", "preset = \"toddler\""));
    assert_eq!(
        p.message,
        "unknown preset \"toddler\"; use one of under-9, 9-12, 13-15, 16-17, adult"
    );
}

/// Issue 20: a bad `match` entry said "is not an IP address or network" though MACs are
/// accepted too; and its key counts every entry, MACs included.
#[test]
fn a_bad_match_entry_names_every_accepted_form() {
    let source = format!(
        "{MINIMAL}\n[[clients]]\nname = \"x\"\nmatch = [\"aa:bb:cc:dd:ee:01\", \"tablet\"]\nprofile = \"teen\"\n"
    );
    let p = first_problem(&source);
    assert_eq!(p.key, "clients[0].match[1]");
    assert_eq!(
        p.message,
        "\"tablet\" is not an IP address, network or MAC address; write e.g. \"192.168.1.7\", \"192.168.1.0/24\" or \"aa:bb:cc:dd:ee:01\""
    );
}
