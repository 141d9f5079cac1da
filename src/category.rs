//! The category vocabulary shipped in the binary, the synonym table that maps the names real
//! lists use onto it, and [`Categories`]: the per-runtime table that gives every category a bit.
//!
//! Invariants: a runtime has at most [`MAX_CATEGORIES`] categories, because the store keeps one
//! `u64` bitset per name; bit order is the vocabulary order, then custom categories sorted by
//! name, so "which category blocked this name" is stable across reloads and documented.

use std::collections::BTreeSet;

/// How many categories one runtime can hold (the width of the store's bitset).
pub const MAX_CATEGORIES: usize = 64;

/// Whether a category is something to block or something to allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoryKind {
    /// Content a profile may block.
    Block,
    /// Content a walled-garden profile may allow.
    Allow,
}

/// One entry of the built-in vocabulary.
#[derive(Debug)]
pub struct KnownCategory {
    /// The canonical name used in config, lists, stats and block answers.
    pub name: &'static str,
    /// Block-type or allow-type.
    pub kind: CategoryKind,
    /// One line for humans (README, `kidsafe categories`).
    pub description: &'static str,
}

/// The vocabulary, in the order that decides which category is reported when a name is in several.
pub const VOCABULARY: &[KnownCategory] = &[
    cat(
        "adult",
        CategoryKind::Block,
        "pornography and sexually explicit material",
    ),
    cat("dating", CategoryKind::Block, "dating and hook-up services"),
    cat(
        "gambling",
        CategoryKind::Block,
        "betting, casinos, lotteries",
    ),
    cat(
        "violence",
        CategoryKind::Block,
        "gore, snuff and aggressive content",
    ),
    cat(
        "weapons",
        CategoryKind::Block,
        "weapons and dangerous material",
    ),
    cat("drugs", CategoryKind::Block, "drugs, their sale and use"),
    cat("hate", CategoryKind::Block, "hate speech and extremism"),
    cat("social", CategoryKind::Block, "social networks"),
    cat(
        "chat",
        CategoryKind::Block,
        "chat rooms and messaging with strangers",
    ),
    cat("games", CategoryKind::Block, "online games"),
    cat(
        "streaming",
        CategoryKind::Block,
        "video and audio streaming",
    ),
    cat("shopping", CategoryKind::Block, "online shops"),
    cat(
        "malware",
        CategoryKind::Block,
        "malware, cryptojacking and stalkerware",
    ),
    cat("phishing", CategoryKind::Block, "phishing and scams"),
    cat(
        "bypass",
        CategoryKind::Block,
        "VPNs, proxies and DNS-over-HTTPS resolvers that bypass filtering",
    ),
    cat("cheating", CategoryKind::Block, "exam cheating services"),
    cat("kids", CategoryKind::Allow, "sites made for children"),
    cat(
        "education",
        CategoryKind::Allow,
        "educational sites and games",
    ),
];

const fn cat(name: &'static str, kind: CategoryKind, description: &'static str) -> KnownCategory {
    KnownCategory {
        name,
        kind,
        description,
    }
}

/// Names real lists use (UT1's French names, hagezi's file names, …) and the vocabulary
/// category each stands for.
pub const SYNONYMS: &[(&str, &str)] = &[
    ("porn", "adult"),
    ("pornography", "adult"),
    ("sex", "adult"),
    ("mixed_adult", "adult"),
    ("agressif", "violence"),
    ("aggressive", "violence"),
    ("snuff", "violence"),
    ("gore", "violence"),
    ("dangerous_material", "weapons"),
    ("drogue", "drugs"),
    ("social_networks", "social"),
    ("doh", "bypass"),
    ("vpn", "bypass"),
    ("redirector", "bypass"),
    ("proxy", "bypass"),
    ("residential-proxies", "bypass"),
    ("doh-vpn-proxy-bypass", "bypass"),
    ("tricheur", "cheating"),
    ("tricheur_pix", "cheating"),
    ("cryptojacking", "malware"),
    ("stalkerware", "malware"),
    ("arjel", "gambling"),
    ("audio-video", "streaming"),
    ("child", "kids"),
    ("educational_games", "education"),
];

/// Maps a list or config name onto its canonical category name (lower-cased, synonyms resolved).
pub fn canonical_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    SYNONYMS
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map_or(lower, |(_, canonical)| (*canonical).to_string())
}

/// The built-in entry for a canonical name, if it is in the vocabulary.
pub fn known(name: &str) -> Option<&'static KnownCategory> {
    VOCABULARY.iter().find(|c| c.name == name)
}

/// Whether `name` can be a category: a list file stem or config entry of `[a-z0-9_-]`, 1–40 bytes.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The categories of one runtime, each with its bit in the store's bitset.
#[derive(Debug, Clone, Default)]
pub struct Categories {
    names: Vec<String>,
}

/// Too many distinct categories for one bitset.
#[derive(Debug, thiserror::Error)]
#[error("more than {MAX_CATEGORIES} categories ({count}); merge some lists into one category")]
pub struct TooManyCategories {
    /// How many were asked for.
    pub count: usize,
}

impl Categories {
    /// Builds the table from every vocabulary category plus the given custom names.
    pub fn with_custom<'a>(
        custom: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, TooManyCategories> {
        let mut names: Vec<String> = VOCABULARY.iter().map(|c| c.name.to_string()).collect();
        let extra: BTreeSet<&str> = custom
            .into_iter()
            .filter(|name| known(name).is_none())
            .collect();
        names.extend(extra.into_iter().map(str::to_string));
        if names.len() > MAX_CATEGORIES {
            return Err(TooManyCategories { count: names.len() });
        }
        Ok(Self { names })
    }

    /// A table read back from the compiled-store cache: the names in bit order, which must
    /// start with the vocabulary.
    pub fn from_names(names: Vec<String>) -> Option<Self> {
        let vocabulary_first = VOCABULARY.iter().zip(&names).all(|(v, n)| v.name == n);
        (vocabulary_first && names.len() >= VOCABULARY.len() && names.len() <= MAX_CATEGORIES)
            .then_some(Self { names })
    }

    /// The bit index of a canonical category name.
    pub fn index(&self, name: &str) -> Option<u8> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| u8::try_from(i).ok())
    }

    /// The name of a bit index.
    pub fn name(&self, index: u8) -> &str {
        self.names
            .get(usize::from(index))
            .map_or("unknown", String::as_str)
    }

    /// Every category name, in bit order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// How many categories there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the table is empty (it never is once built).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_map_onto_the_vocabulary() {
        for (alias, canonical) in SYNONYMS {
            assert!(
                known(canonical).is_some(),
                "{alias} maps to unknown {canonical}"
            );
            assert_eq!(canonical_name(alias), *canonical);
        }
        assert_eq!(canonical_name("Agressif"), "violence");
        assert_eq!(canonical_name("my-custom"), "my-custom");
    }

    #[test]
    fn vocabulary_comes_first_then_sorted_custom() {
        let table = Categories::with_custom(["zeta", "alpha", "adult"]).expect("fits");
        assert_eq!(table.index("adult"), Some(0));
        assert_eq!(table.name(0), "adult");
        let alpha = table.index("alpha").expect("alpha");
        let zeta = table.index("zeta").expect("zeta");
        assert_eq!(usize::from(alpha), VOCABULARY.len());
        assert_eq!(zeta, alpha + 1);
    }

    #[test]
    fn more_than_64_categories_is_an_error() {
        let many: Vec<String> = (0..60).map(|i| format!("c{i}")).collect();
        let err = Categories::with_custom(many.iter().map(String::as_str)).unwrap_err();
        assert!(err.to_string().contains("more than 64"), "{err}");
    }
}
