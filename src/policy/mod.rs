//! Compiled profiles and the one question the query path asks: what to do with this name for
//! this client ([`Policy::decide`]).
//!
//! Order of precedence, highest first: the profile's `allow` list, its `deny` list, then its
//! blocked categories; anything else is forwarded. Everything here is immutable, built once per
//! runtime, and answers without locks, I/O or allocation.

pub mod clients;

use std::net::IpAddr;

pub use clients::PrefixMap;

use crate::blocklist::{LoadedLists, Store, StoreBuilder};
use crate::category::{self, Categories};
use crate::config::{Config, ConfigError, Problems};

/// Store bit of a profile's allowed names.
const RULE_ALLOW: u8 = 0;
/// Store bit of a profile's denied names.
const RULE_DENY: u8 = 1;

/// What to do with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Resolve it upstream.
    Forward,
    /// Answer with the block response.
    Block(BlockReason),
}

/// Why a name was blocked: the only thing about a query that may be counted or told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    /// The name is in a blocked category (its bit index).
    Category(u8),
    /// The name is on the profile's deny list.
    Denied,
}

/// One compiled profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Its name (used in stats, never with a query name).
    pub name: String,
    /// Bits of the categories it blocks.
    pub block_mask: u64,
    /// Its allow (bit 0) and deny (bit 1) names.
    rules: Store,
}

/// All profiles, the client rules, and the access list.
#[derive(Debug, Clone)]
pub struct Policy {
    profiles: Vec<Profile>,
    default_profile: usize,
    /// Network → (profile index, index of the `[[clients]]` rule).
    clients: PrefixMap<(usize, usize)>,
    allowed_clients: PrefixMap<()>,
}

impl Policy {
    /// Compiles the config's profiles against the loaded lists. Every category a profile names
    /// must be in the vocabulary or fed by a list file; the error says where it was written.
    pub fn compile(config: &Config, lists: &LoadedLists) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        let mut profiles = Vec::with_capacity(config.profiles.len());
        for p in &config.profiles {
            let mut block_mask = 0u64;
            for located in &p.block {
                match lists.categories.index(&located.value) {
                    Some(bit) => block_mask |= 1 << u32::from(bit),
                    None => problems.at(
                        located.at,
                        located.key.clone(),
                        unknown_category_message(&located.value, &lists.categories),
                    ),
                }
            }
            let mut rules = StoreBuilder::default();
            for name in &p.allow {
                rules.insert(name, RULE_ALLOW);
            }
            for name in &p.deny {
                rules.insert(name, RULE_DENY);
            }
            profiles.push(Profile {
                name: p.name.clone(),
                block_mask,
                rules: rules.build(),
            });
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: config.path.clone(),
                problems: problems.into_vec(),
            });
        }

        let mut clients = PrefixMap::default();
        for (index, rule) in config.clients.iter().enumerate() {
            for net in &rule.networks {
                clients.insert(*net, (rule.profile, index));
            }
        }
        let mut allowed_clients = PrefixMap::default();
        for net in &config.server.allow_clients {
            allowed_clients.insert(*net, ());
        }
        Ok(Self {
            profiles,
            default_profile: config.default_profile,
            clients,
            allowed_clients,
        })
    }

    /// Whether `ip` may query at all.
    pub fn client_allowed(&self, ip: IpAddr) -> bool {
        self.allowed_clients.contains(ip)
    }

    /// The profile index for a client: its longest matching rule, else the default.
    pub fn profile_for(&self, ip: IpAddr) -> usize {
        self.classify(ip).0
    }

    /// The profile index for a client and the index of the `[[clients]]` rule that chose it
    /// (`None` when the default profile applies).
    pub fn classify(&self, ip: IpAddr) -> (usize, Option<usize>) {
        match self.clients.get(ip) {
            Some((profile, rule)) => (*profile, Some(*rule)),
            None => (self.default_profile, None),
        }
    }

    /// A profile by index (indices come from [`Policy::profile_for`]).
    pub fn profile(&self, index: usize) -> Option<&Profile> {
        self.profiles.get(index)
    }

    /// All profiles.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// Decides for a name. `labels` yields its labels leftmost first (see [`Store::lookup`]);
    /// it is called once per store consulted.
    pub fn decide<'a, F, I>(&self, profile: usize, labels: F, lists: &Store) -> Decision
    where
        F: Fn() -> I,
        I: DoubleEndedIterator<Item = &'a [u8]>,
    {
        let Some(profile) = self.profiles.get(profile) else {
            return Decision::Forward;
        };
        if !profile.rules.is_empty() {
            let rules = profile.rules.lookup(labels());
            if rules & (1 << RULE_ALLOW) != 0 {
                return Decision::Forward;
            }
            if rules & (1 << RULE_DENY) != 0 {
                return Decision::Block(BlockReason::Denied);
            }
        }
        if profile.block_mask == 0 {
            return Decision::Forward;
        }
        let hit = lists.lookup(labels()) & profile.block_mask;
        if hit == 0 {
            Decision::Forward
        } else {
            // The lowest bit wins: vocabulary order, then custom categories by name.
            Decision::Block(BlockReason::Category(hit.trailing_zeros() as u8))
        }
    }
}

fn unknown_category_message(name: &str, categories: &Categories) -> String {
    let close = categories
        .names()
        .filter(|known| edit_distance(known, name) <= 2)
        .map(|known| format!(" (did you mean \"{known}\"?)"))
        .next()
        .unwrap_or_default();
    let vocabulary: Vec<&str> = category::VOCABULARY.iter().map(|c| c.name).collect();
    format!(
        "unknown category \"{name}\"{close}; known categories are {} plus any <name>.txt in the list directories",
        vocabulary.join(", ")
    )
}

/// Levenshtein distance, for "did you mean" hints on short names.
fn edit_distance(a: &str, b: &str) -> usize {
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
    use std::path::Path;

    fn setup(profiles: &str) -> (Config, LoadedLists) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("gambling.txt"), "casino.example\n").expect("write");
        std::fs::write(
            dir.path().join("adult.txt"),
            "adult.example\nboth.example\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("drogue.txt"), "both.example\n").expect("write");
        let source = format!(
            "[upstream]\nservers = [\"127.0.0.1:53\"]\n[lists]\ndirs = [\"{}\"]\n[defaults]\nprofile = \"teen\"\n{profiles}",
            dir.path().display()
        );
        let config = Config::from_source(Path::new("/k/kidsafe.toml"), &source).expect("config");
        let lists = crate::blocklist::load_dirs(&config.list_dirs).expect("lists");
        (config, lists)
    }

    fn decide(policy: &Policy, lists: &LoadedLists, profile: &str, name: &str) -> Decision {
        let index = policy
            .profiles()
            .iter()
            .position(|p| p.name == profile)
            .expect("profile");
        policy.decide(index, || name.split('.').map(str::as_bytes), &lists.store)
    }

    #[test]
    fn allow_beats_deny_beats_categories() {
        let (config, lists) = setup(
            "[profiles.teen]\nblock = [\"gambling\", \"adult\", \"drugs\"]\n\
             allow = [\"ok.casino.example\"]\ndeny = [\"bad.example\", \"casino.example\"]\n",
        );
        let policy = Policy::compile(&config, &lists).expect("compiles");
        let gambling = lists.categories.index("gambling").expect("g");
        let adult = lists.categories.index("adult").expect("a");
        assert_eq!(
            decide(&policy, &lists, "teen", "www.ok.casino.example"),
            Decision::Forward
        );
        assert_eq!(
            decide(&policy, &lists, "teen", "casino.example"),
            Decision::Block(BlockReason::Denied)
        );
        assert_eq!(
            decide(&policy, &lists, "teen", "x.bad.example"),
            Decision::Block(BlockReason::Denied)
        );
        assert_eq!(
            decide(&policy, &lists, "teen", "adult.example"),
            Decision::Block(BlockReason::Category(adult))
        );
        // In two categories: the vocabulary order decides which is reported.
        assert_eq!(
            decide(&policy, &lists, "teen", "both.example"),
            Decision::Block(BlockReason::Category(adult))
        );
        assert_ne!(adult, gambling);
        assert_eq!(
            decide(&policy, &lists, "teen", "school.example"),
            Decision::Forward
        );
    }

    #[test]
    fn a_profile_blocks_only_its_categories() {
        let (config, lists) = setup("[profiles.teen]\nblock = [\"drugs\"]\n[profiles.staff]\n");
        let policy = Policy::compile(&config, &lists).expect("compiles");
        let drugs = lists.categories.index("drugs").expect("d");
        assert_eq!(
            decide(&policy, &lists, "teen", "casino.example"),
            Decision::Forward
        );
        assert_eq!(
            decide(&policy, &lists, "teen", "both.example"),
            Decision::Block(BlockReason::Category(drugs))
        );
        assert_eq!(
            decide(&policy, &lists, "staff", "both.example"),
            Decision::Forward
        );
    }

    #[test]
    fn unknown_categories_are_located_and_hinted() {
        let (config, lists) = setup("[profiles.teen]\nblock = [\"adult\", \"gamblng\"]\n");
        let err = Policy::compile(&config, &lists).unwrap_err();
        let p = err.problems().first().expect("problem").clone();
        assert_eq!(p.key, "profiles.teen.block[1]");
        assert_eq!((p.at.line, p.at.column), (8, 19));
        assert!(
            p.message.contains("did you mean \"gambling\""),
            "{}",
            p.message
        );
        assert!(
            err.to_string()
                .starts_with("/k/kidsafe.toml:8:19: profiles.teen.block[1]:"),
            "{err}"
        );
    }

    #[test]
    fn vocabulary_categories_need_no_list_yet() {
        let (config, lists) = setup("[profiles.teen]\nblock = [\"dating\", \"agressif\"]\n");
        Policy::compile(&config, &lists).expect("known categories compile without a list");
    }

    #[test]
    fn clients_get_their_longest_prefix_profile() {
        let (config, lists) = setup(
            "[profiles.teen]\n[profiles.child]\n[profiles.staff]\n\
             [[clients]]\nname = \"school\"\nmatch = [\"10.0.0.0/16\"]\nprofile = \"staff\"\n\
             [[clients]]\nname = \"kids\"\nmatch = [\"10.0.5.0/24\"]\nprofile = \"child\"\n",
        );
        let policy = Policy::compile(&config, &lists).expect("compiles");
        let name_of =
            |ip: &str| &policy.profiles()[policy.profile_for(ip.parse().expect("ip"))].name;
        assert_eq!(name_of("10.0.5.9"), "child");
        assert_eq!(name_of("10.0.6.9"), "staff");
        assert_eq!(name_of("192.168.9.9"), "teen");
        assert!(policy.client_allowed("192.168.9.9".parse().expect("ip")));
        assert!(!policy.client_allowed("203.0.113.9".parse().expect("ip")));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("gambling", "gamblng"), 1);
        assert_eq!(edit_distance("adult", "adult"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
