//! The age presets shipped in the binary: a category set and safe-search defaults per age.
//!
//! The reasoning per preset is in README ("Age presets"). A profile names one with
//! `preset = "9-12"`, adds categories with `block = [...]` and removes some with `unblock = [...]`.

/// One preset.
#[derive(Debug)]
pub struct Preset {
    /// Its name in config.
    pub name: &'static str,
    /// Categories it blocks.
    pub block: &'static [&'static str],
    /// Whether safe search is on unless the profile says otherwise.
    pub safe_search: bool,
    /// YouTube restriction unless the profile says otherwise.
    pub youtube: &'static str,
}

/// Every preset, youngest first.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "under-9",
        block: &[
            "adult", "dating", "gambling", "violence", "weapons", "drugs", "hate", "social",
            "chat", "games", "shopping", "malware", "phishing", "bypass",
        ],
        safe_search: true,
        youtube: "strict",
    },
    Preset {
        name: "9-12",
        block: &[
            "adult", "dating", "gambling", "violence", "weapons", "drugs", "hate", "social",
            "chat", "malware", "phishing", "bypass",
        ],
        safe_search: true,
        youtube: "moderate",
    },
    Preset {
        name: "13-15",
        block: &[
            "adult", "dating", "gambling", "violence", "weapons", "drugs", "hate", "malware",
            "phishing", "bypass",
        ],
        safe_search: true,
        youtube: "moderate",
    },
    Preset {
        name: "16-17",
        block: &["adult", "gambling", "drugs", "malware", "phishing"],
        safe_search: true,
        youtube: "off",
    },
    Preset {
        name: "adult",
        block: &["malware", "phishing"],
        safe_search: false,
        youtube: "off",
    },
];

/// A preset by name.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::known;

    #[test]
    fn presets_name_only_vocabulary_categories_and_loosen_with_age() {
        let mut previous: Option<&Preset> = None;
        for preset in PRESETS {
            for c in preset.block {
                assert!(known(c).is_some(), "{}: unknown {c}", preset.name);
            }
            if let Some(younger) = previous {
                for c in preset.block {
                    assert!(
                        younger.block.contains(c),
                        "{} blocks {c} but {} does not",
                        preset.name,
                        younger.name
                    );
                }
            }
            previous = Some(preset);
        }
        assert!(
            find("under-9")
                .is_some_and(|p| p.block.contains(&"social") && p.block.contains(&"bypass"))
        );
        assert_eq!(find("16-17").map(|p| p.block.len()), Some(5));
        assert!(find("12-14").is_none());
    }
}
