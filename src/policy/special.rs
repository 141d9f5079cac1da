//! Names kidsafe treats specially whatever the lists say: the bypass guards and the safe-search
//! rewrites. Both are data tables with their sources, kept here in one place.
//!
//! Sources:
//! - `use-application-dns.net`: Mozilla's canary domain; NXDOMAIN tells Firefox not to switch
//!   to its own DNS-over-HTTPS resolver (support.mozilla.org, "Canary domain").
//! - `mask.icloud.com`, `mask-h2.icloud.com`, `mask-canary.icloud.com`: Apple's iCloud Private
//!   Relay; NXDOMAIN makes devices fall back to the network's DNS (Apple, "Prepare your network
//!   for iCloud Private Relay").
//! - `resolver.arpa`: Discovery of Designated Resolvers (RFC 9462); NODATA for `_dns.resolver.arpa`
//!   keeps devices from upgrading to the upstream's encrypted resolver behind our back.
//! - DoH/DoT resolver host names: the public resolvers' own documentation; the `bypass` category
//!   of the national feed extends this list.
//! - Search engines without DNS-enforceable safe search: their help pages (none documents a
//!   network-level switch like Google's or Bing's).
//! - Safe search: Google ("Lock SafeSearch for devices & networks": CNAME to
//!   forcesafesearch.google.com for every Google search domain), Bing (strict.bing.com),
//!   DuckDuckGo (safe.duckduckgo.com), Yandex (familysearch.yandex.ru), Ecosia
//!   (strict-safe-search.ecosia.org), YouTube ("Restrict YouTube content on your network":
//!   restrict.youtube.com / restrictmoderate.youtube.com for the five YouTube host names).

use crate::config::YouTube;

/// What a guard answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardAnswer {
    /// NXDOMAIN, whatever `block_response` says (the canary and Private Relay need it).
    NxDomain,
    /// NOERROR with no records (DDR).
    NoData,
}

/// Names answered by a guard, with their subdomains.
pub const GUARDED: &[(&str, GuardAnswer)] = &[
    ("use-application-dns.net", GuardAnswer::NxDomain),
    ("mask.icloud.com", GuardAnswer::NxDomain),
    ("mask-h2.icloud.com", GuardAnswer::NxDomain),
    ("mask-canary.icloud.com", GuardAnswer::NxDomain),
    ("resolver.arpa", GuardAnswer::NoData),
];

/// Built-in `bypass` names: public DNS-over-HTTPS/TLS resolvers, blocked before any feed
/// arrives for every profile whose bypass guards are on.
pub const BYPASS_RESOLVERS: &[&str] = &[
    "dns.google",
    "dns.google.com",
    "cloudflare-dns.com",
    "one.one.one.one",
    "1dot1dot1dot1.cloudflare-dns.com",
    "family.cloudflare-dns.com",
    "security.cloudflare-dns.com",
    "mozilla.cloudflare-dns.com",
    "chrome.cloudflare-dns.com",
    "dns.quad9.net",
    "dns9.quad9.net",
    "dns10.quad9.net",
    "dns11.quad9.net",
    "doh.opendns.com",
    "dns.opendns.com",
    "doh.familyshield.opendns.com",
    "dns.adguard.com",
    "dns.adguard-dns.com",
    "family.adguard-dns.com",
    "unfiltered.adguard-dns.com",
    "dns.nextdns.io",
    "doh.cleanbrowsing.org",
    "doh.mullvad.net",
    "dns.mullvad.net",
    "doh.dns.sb",
    "dns.controld.com",
    "freedns.controld.com",
    "doh.libredns.gr",
    "dns.switch.ch",
];

/// Search engines that offer no safe search a network can enforce by DNS (checked against
/// their own documentation in 2026): blocked for profiles with `safe_search = true`, or forcing
/// safe search elsewhere would be pointless.
pub const NO_SAFE_SEARCH: &[&str] = &[
    "search.brave.com",
    "www.startpage.com",
    "startpage.com",
    "search.yahoo.com",
    "www.qwant.com",
    "qwant.com",
    "www.mojeek.com",
    "yep.com",
    "search.aol.com",
    "www.ask.com",
    "presearch.com",
    "metager.org",
    "www.dogpile.com",
];

/// Where a safe-search rewrite points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Google SafeSearch.
    Google,
    /// Bing strict.
    Bing,
    /// DuckDuckGo safe search.
    DuckDuckGo,
    /// Yandex family search.
    Yandex,
    /// Ecosia strict safe search.
    Ecosia,
    /// YouTube Restricted Mode, strict.
    YouTubeStrict,
    /// YouTube Restricted Mode, moderate.
    YouTubeModerate,
}

impl Rewrite {
    /// The CNAME target.
    pub fn target(self) -> &'static str {
        match self {
            Rewrite::Google => "forcesafesearch.google.com.",
            Rewrite::Bing => "strict.bing.com.",
            Rewrite::DuckDuckGo => "safe.duckduckgo.com.",
            Rewrite::Yandex => "familysearch.yandex.ru.",
            Rewrite::Ecosia => "strict-safe-search.ecosia.org.",
            Rewrite::YouTubeStrict => "restrict.youtube.com.",
            Rewrite::YouTubeModerate => "restrictmoderate.youtube.com.",
        }
    }
}

/// Exact names (lower-case, no trailing dot) rewritten for safe search, other than Google's.
const SEARCH_NAMES: &[(&str, Rewrite)] = &[
    ("bing.com", Rewrite::Bing),
    ("www.bing.com", Rewrite::Bing),
    ("duckduckgo.com", Rewrite::DuckDuckGo),
    ("www.duckduckgo.com", Rewrite::DuckDuckGo),
    ("start.duckduckgo.com", Rewrite::DuckDuckGo),
    ("yandex.ru", Rewrite::Yandex),
    ("www.yandex.ru", Rewrite::Yandex),
    ("yandex.com", Rewrite::Yandex),
    ("www.yandex.com", Rewrite::Yandex),
    ("yandex.by", Rewrite::Yandex),
    ("yandex.kz", Rewrite::Yandex),
    ("yandex.com.tr", Rewrite::Yandex),
    ("ya.ru", Rewrite::Yandex),
    ("www.ecosia.org", Rewrite::Ecosia),
    ("ecosia.org", Rewrite::Ecosia),
];

/// The YouTube host names Google's restricted mode covers.
const YOUTUBE_NAMES: &[&str] = &[
    "www.youtube.com",
    "m.youtube.com",
    "youtubei.googleapis.com",
    "youtube.googleapis.com",
    "www.youtube-nocookie.com",
];

/// [`rewrite_for`] on labels straight off the wire, without allocating for the names that
/// cannot be rewritten (anything longer than four labels or than 40 bytes).
pub fn rewrite_for_iter<'a, I>(labels: I, safe_search: bool, youtube: YouTube) -> Option<Rewrite>
where
    I: DoubleEndedIterator<Item = &'a [u8]>,
{
    let mut buf: [[u8; 40]; 4] = [[0; 40]; 4];
    let mut lens = [0usize; 4];
    let mut count = 0;
    for label in labels {
        if count == 4 || label.len() > 40 {
            return None;
        }
        for (dst, src) in buf[count].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        lens[count] = label.len();
        count += 1;
    }
    let mut refs: [&[u8]; 4] = [&[]; 4];
    for i in 0..count {
        refs[i] = &buf[i][..lens[i]];
    }
    rewrite_for(&refs[..count], safe_search, youtube)
}

/// The rewrite for `labels` (lower-case, leftmost first), if safe search or YouTube restriction
/// applies to it.
pub fn rewrite_for(labels: &[&[u8]], safe_search: bool, youtube: YouTube) -> Option<Rewrite> {
    let name = join(labels)?;
    if youtube != YouTube::Off && YOUTUBE_NAMES.contains(&name.as_str()) {
        return Some(match youtube {
            YouTube::Strict => Rewrite::YouTubeStrict,
            _ => Rewrite::YouTubeModerate,
        });
    }
    if !safe_search {
        return None;
    }
    if is_google_search(labels) {
        return Some(Rewrite::Google);
    }
    SEARCH_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
}

/// `google.<cc>`, `google.com`, `google.co.<cc>`, `google.com.<cc>`, each with or without `www.`:
/// the shape of every Google search domain (Google's supported_domains list).
fn is_google_search(labels: &[&[u8]]) -> bool {
    let rest = match labels {
        [b"www", rest @ ..] => rest,
        rest => rest,
    };
    match rest {
        [b"google", tld] => tld.len() == 2 || *tld == b"com",
        [b"google", second, cc] => (*second == b"co" || *second == b"com") && cc.len() == 2,
        _ => false,
    }
}

fn join(labels: &[&[u8]]) -> Option<String> {
    let mut out = String::new();
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(std::str::from_utf8(l).ok()?);
    }
    Some(out.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Vec<&[u8]> {
        name.split('.').map(str::as_bytes).collect()
    }

    #[test]
    fn search_engines_and_youtube() {
        let cases = [
            ("www.google.com", true, YouTube::Off, Some(Rewrite::Google)),
            ("google.al", true, YouTube::Off, Some(Rewrite::Google)),
            (
                "www.google.co.uk",
                true,
                YouTube::Off,
                Some(Rewrite::Google),
            ),
            (
                "www.google.com.tr",
                true,
                YouTube::Off,
                Some(Rewrite::Google),
            ),
            ("mail.google.com", true, YouTube::Off, None),
            ("google.example.com", true, YouTube::Off, None),
            ("www.google.com", false, YouTube::Strict, None),
            ("www.bing.com", true, YouTube::Off, Some(Rewrite::Bing)),
            (
                "duckduckgo.com",
                true,
                YouTube::Off,
                Some(Rewrite::DuckDuckGo),
            ),
            ("ya.ru", true, YouTube::Off, Some(Rewrite::Yandex)),
            ("www.ecosia.org", true, YouTube::Off, Some(Rewrite::Ecosia)),
            (
                "www.youtube.com",
                false,
                YouTube::Strict,
                Some(Rewrite::YouTubeStrict),
            ),
            (
                "m.youtube.com",
                true,
                YouTube::Moderate,
                Some(Rewrite::YouTubeModerate),
            ),
            ("www.youtube.com", true, YouTube::Off, None),
            ("music.youtube.com", true, YouTube::Strict, None),
        ];
        for (name, safe, yt, want) in cases {
            assert_eq!(rewrite_for(&labels(name), safe, yt), want, "{name}");
            let upper = name.to_ascii_uppercase();
            assert_eq!(
                rewrite_for_iter(upper.split('.').map(str::as_bytes), safe, yt),
                want,
                "{upper}"
            );
        }
    }
}
