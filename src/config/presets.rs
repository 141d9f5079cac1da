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

/// `kidsafe categories`: every category of the vocabulary with its kind and description, the
/// other names lists use for it, and the presets that block it; with `loaded` (names per
/// category in the lists of a config), how many each holds, and the custom categories too.
pub fn categories_report(loaded: Option<&std::collections::BTreeMap<&str, usize>>) -> String {
    use crate::category::{CategoryKind, SYNONYMS, VOCABULARY};
    let mut out = String::from(
        "Categories: a profile names them in block, unblock and allow_categories; a list file \
         <category>.txt (or one of the other names) feeds one.\n",
    );
    for c in VOCABULARY {
        let kind = match c.kind {
            CategoryKind::Block => "block",
            CategoryKind::Allow => "allow",
        };
        out.push_str(&format!("\n{:<10} {kind}  {}\n", c.name, c.description));
        let synonyms: Vec<&str> = SYNONYMS
            .iter()
            .filter(|(_, to)| *to == c.name)
            .map(|(from, _)| *from)
            .collect();
        if !synonyms.is_empty() {
            out.push_str(&format!("           also named: {}\n", synonyms.join(", ")));
        }
        let presets: Vec<&str> = PRESETS
            .iter()
            .filter(|p| p.block.contains(&c.name))
            .map(|p| p.name)
            .collect();
        let presets = match (c.kind, presets.is_empty()) {
            (CategoryKind::Allow, _) => "none (walled gardens allow it)".to_string(),
            (CategoryKind::Block, true) => "none (add it to a profile's block)".to_string(),
            (CategoryKind::Block, false) => presets.join(", "),
        };
        out.push_str(&format!("           blocked by presets: {presets}\n"));
        if let Some(loaded) = loaded {
            out.push_str(&format!(
                "           loaded: {}\n",
                names(loaded.get(c.name).copied())
            ));
        }
    }
    if let Some(loaded) = loaded {
        let custom: Vec<(&&str, &usize)> = loaded
            .iter()
            .filter(|(name, _)| crate::category::known(name).is_none())
            .collect();
        if !custom.is_empty() {
            out.push_str("\nCustom categories (list files with other names):\n");
            for (name, n) in custom {
                out.push_str(&format!("{name:<10} loaded: {}\n", names(Some(*n))));
            }
        }
    }
    out
}

fn names(n: Option<usize>) -> String {
    match n {
        None | Some(0) => "no names (no list feeds it)".to_string(),
        Some(1) => "1 name".to_string(),
        Some(n) => format!("{n} names"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::known;

    /// `kidsafe categories`, as text: named in category.rs since the vocabulary was written,
    /// missing until issue 20.
    #[test]
    fn the_categories_report_names_synonyms_presets_and_counts() {
        let text = categories_report(None);
        assert!(text.contains(
            "\nadult      block  pornography and sexually explicit material\n           also named: porn, pornography, sex, mixed_adult\n           blocked by presets: under-9, 9-12, 13-15, 16-17\n\nd"
        ), "{text}");
        assert!(text.contains(
            "\ncheating   block  exam cheating services\n           also named: tricheur, tricheur_pix\n           blocked by presets: none (add it to a profile's block)\n"
        ), "{text}");
        assert!(text.contains(
            "\nkids       allow  sites made for children\n           also named: child\n           blocked by presets: none (walled gardens allow it)\n"
        ), "{text}");
        assert!(!text.contains("loaded"), "{text}");

        let loaded: std::collections::BTreeMap<&str, usize> =
            [("adult", 2), ("gambling", 1), ("local", 3)]
                .into_iter()
                .collect();
        let text = categories_report(Some(&loaded));
        assert!(
            text.contains("16-17\n           loaded: 2 names\n"),
            "{text}"
        );
        assert!(text.contains("betting, casinos, lotteries\n           also named: arjel\n           blocked by presets: under-9, 9-12, 13-15, 16-17\n           loaded: 1 name\n"), "{text}");
        assert!(text.contains("\nstreaming  block  video and audio streaming\n           also named: audio-video\n           blocked by presets: none (add it to a profile's block)\n           loaded: no names (no list feeds it)\n"), "{text}");
        assert!(
            text.ends_with(
                "\nCustom categories (list files with other names):\nlocal      loaded: 3 names\n"
            ),
            "{text}"
        );
    }

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
