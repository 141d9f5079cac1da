//! "Did you mean …?": the closest of a few known names to one that was mistyped, for the
//! messages that list what is valid (keys, presets, profiles).

/// The candidate closest to `name` by edit distance, when it is close enough to be a typo: at
/// most 2 edits, and fewer than half of the longer name's characters (so `ab` never suggests
/// `xy`). Ties go to the first candidate.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= 2 && *d * 2 < len.max(c.chars().count()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_the_name_and_strangers_find_nothing() {
        let keys = ["listen", "allow_clients", "state_dir"];
        assert_eq!(closest("lisen", keys), Some("listen"));
        assert_eq!(closest("statedir", keys), Some("state_dir"));
        assert_eq!(closest("timezone", keys), None);
        assert_eq!(
            closest("under9", ["under-9", "9-12", "13-15"]),
            Some("under-9")
        );
        assert_eq!(closest("ab", ["xy"]), None);
    }
}
