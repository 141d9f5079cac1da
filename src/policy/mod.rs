//! Compiled profiles and the one question the query path asks: what to do with this name for
//! this client, now ([`Policy::decide`]).
//!
//! Order of precedence, highest first (each step in README "How a decision is made"):
//! 0. helplines (built in, plus `[lists] helplines`): they answer for every profile, whatever
//!    the deny lists, categories, schedules, pauses or walled gardens say;
//! 1. `[lists] allow` (safety sites no profile may block);
//! 2. the profile's `allow` list and any `kidsafe grant` in force;
//! 3. the profile's `deny` list;
//! 4. a schedule window with `block = "all"`, or a `kidsafe pause`;
//! 5. a walled garden (`mode = "allowlist"`): allow-type categories only;
//! 6. bypass guards (DoH canary, Private Relay, DDR, the built-in public DoH resolvers; the
//!    `bypass` category itself only where the profile blocks it);
//! 7. safe-search and YouTube rewrites;
//! 8. blocked categories (the profile's, a schedule window's);
//! 9. forward.
//!
//! Everything here is immutable, built once per runtime; time-dependent facts come in a
//! [`live::ProfileNow`]. A decision takes no lock, does no I/O and allocates nothing.

pub mod clients;
pub mod explain;
pub mod live;
pub mod schedule;
pub mod special;

use std::net::IpAddr;

pub use clients::PrefixMap;

use crate::blocklist::{LoadedLists, Store, StoreBuilder};
use crate::category::{self, Categories, CategoryKind};
use crate::config::Mac;
use crate::config::YouTube;
use crate::config::{Config, ConfigError, Located, NameRule, Problems, RuleForm};
use live::ProfileNow;
use special::{GuardAnswer, Rewrite};

/// Store bits of allow and deny rules, by form.
mod rule_bits {
    pub const ALLOW_TREE: u8 = 0;
    pub const DENY_TREE: u8 = 1;
    pub const ALLOW_EXACT: u8 = 2;
    pub const DENY_EXACT: u8 = 3;
    pub const ALLOW_BELOW: u8 = 4;
    pub const DENY_BELOW: u8 = 5;
    pub const HELPLINE_TREE: u8 = 6;
    pub const HELPLINE_EXACT: u8 = 7;
    pub const HELPLINE_BELOW: u8 = 8;
}

/// What to do with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Resolve it upstream.
    Forward,
    /// Resolve it upstream: an allow rule named it, so nothing else is checked (not even the
    /// CNAME chain of the answer).
    Allowed,
    /// Answer with a block response.
    Block(BlockReason),
    /// Answer with a CNAME to a safe-search target and the target's records.
    Rewrite(Rewrite),
}

/// Why a name was blocked: the only thing about a query that may be counted or told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    /// The name is in a blocked category (its bit index).
    Category(u8),
    /// The name is on the profile's deny list.
    Denied,
    /// A schedule window or a pause blocks everything not allowed.
    Schedule,
    /// A walled garden lets through only what is allowed.
    WalledGarden,
    /// A bypass guard answers this name.
    Guard(GuardAnswer),
}

impl BlockReason {
    /// The category name reported for this reason (stats, Extended DNS Error text).
    pub fn category<'a>(&self, categories: &'a Categories) -> &'a str {
        match self {
            BlockReason::Category(bit) => categories.name(*bit),
            BlockReason::Denied => "denylist",
            BlockReason::Schedule => "schedule",
            BlockReason::WalledGarden => "walled-garden",
            BlockReason::Guard(_) => "bypass",
        }
    }
}

/// One compiled profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Its name (used in stats, never with a query name).
    pub name: String,
    /// Bits of the categories it blocks.
    pub block_mask: u64,
    /// Allow and deny names, by form (see [`rule_bits`]).
    rules: Store,
    /// A walled garden.
    pub allowlist_mode: bool,
    /// Categories a walled garden lets through.
    pub allow_mask: u64,
    /// Safe search forced.
    pub safe_search: bool,
    /// YouTube restriction.
    pub youtube: YouTube,
    /// Bypass guards on.
    pub guards: bool,
    /// Schedule windows.
    pub schedule: Vec<schedule::Window>,
}

/// All profiles, the client rules, and the access list.
#[derive(Debug, Clone)]
pub struct Policy {
    profiles: Vec<Profile>,
    default_profile: usize,
    /// Network → (profile index, index of the `[[clients]]` rule).
    clients: PrefixMap<(usize, usize)>,
    /// MAC → (profile index, client rule index).
    mac_rules: Vec<(Mac, (usize, usize))>,
    allowed_clients: PrefixMap<()>,
    /// `[lists] allow` (the allow bits of [`rule_bits`]) and the helplines (its helpline bits):
    /// one lookup answers both.
    global_allow: Store,
    /// Guarded names: bit 0 NXDOMAIN, bit 1 NODATA, bit 2 a public DoH/DoT resolver
    /// ([`special::BYPASS_RESOLVERS`], blocked as `bypass`).
    guarded: Store,
    /// Search engines without enforceable safe search.
    no_safe_search: Store,
    bypass_bit: u64,
    timezone: jiff::tz::TimeZone,
}

/// Collects decision steps for `kidsafe explain`; the query path uses [`NoTrace`].
pub trait Trace {
    /// Records a step; `text` is only called when someone is listening.
    fn note(&mut self, text: impl FnOnce() -> String);
}

/// The query path's tracer: records nothing and compiles to nothing.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn note(&mut self, _text: impl FnOnce() -> String) {}
}

impl Trace for Vec<String> {
    fn note(&mut self, text: impl FnOnce() -> String) {
        self.push(text());
    }
}

fn rules_store(rules: &[NameRule], tree: u8, exact: u8, below: u8, into: &mut StoreBuilder) {
    for r in rules {
        let bit = match r.form {
            RuleForm::Tree => tree,
            RuleForm::Exact => exact,
            RuleForm::Below => below,
        };
        into.insert(&r.name, bit);
    }
}

/// Whether (own, ancestor) bits from [`Store::lookup_parts`] match a rule of one kind.
fn rule_hit((own, ancestors): (u64, u64), tree: u8, exact: u8, below: u8) -> bool {
    (own | ancestors) & (1 << tree) != 0 || own & (1 << exact) != 0 || ancestors & (1 << below) != 0
}

impl Policy {
    /// Compiles the config's profiles against the loaded lists. Every category a profile names
    /// must be in the vocabulary or fed by a list file; the error says where it was written.
    pub fn compile(config: &Config, lists: &LoadedLists) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        let categories = &lists.categories;
        let mask_of = |names: &[Located<String>], problems: &mut Problems| {
            let mut mask = 0u64;
            for located in names {
                match categories.index(&located.value) {
                    Some(bit) => mask |= 1 << u32::from(bit),
                    None => problems.at(
                        located.at,
                        located.key.clone(),
                        unknown_category_message(&located.value, categories),
                    ),
                }
            }
            mask
        };
        let allow_type_mask: u64 = category::VOCABULARY
            .iter()
            .filter(|c| c.kind == CategoryKind::Allow)
            .filter_map(|c| categories.index(c.name))
            .fold(0, |m, bit| m | (1 << u32::from(bit)));
        let bypass_bit = categories
            .index("bypass")
            .map_or(0, |b| 1u64 << u32::from(b));

        let mut profiles = Vec::with_capacity(config.profiles.len());
        for p in &config.profiles {
            let block_mask = mask_of(&p.block, &mut problems) & !mask_of(&p.unblock, &mut problems);
            let allow_mask = match &p.allow_categories {
                Some(names) => mask_of(names, &mut problems),
                None => allow_type_mask,
            };
            let mut schedule = Vec::with_capacity(p.schedule.len());
            for s in &p.schedule {
                let mut window = s.window.clone();
                window.effect = if s.block_all {
                    schedule::Effect::BlockAll
                } else {
                    schedule::Effect::Categories(mask_of(&s.categories, &mut problems))
                };
                schedule.push(window);
            }
            let mut rules = StoreBuilder::default();
            use rule_bits::*;
            rules_store(&p.allow, ALLOW_TREE, ALLOW_EXACT, ALLOW_BELOW, &mut rules);
            rules_store(&p.deny, DENY_TREE, DENY_EXACT, DENY_BELOW, &mut rules);
            profiles.push(Profile {
                name: p.name.clone(),
                block_mask,
                rules: rules.build(),
                allowlist_mode: p.allowlist_mode,
                allow_mask,
                safe_search: p.safe_search,
                youtube: p.youtube,
                guards: p
                    .bypass_guards
                    .unwrap_or(block_mask != 0 || p.allowlist_mode || !p.schedule.is_empty()),
                schedule,
            });
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: config.path.clone(),
                problems: problems.into_vec(),
            });
        }

        let mut clients = PrefixMap::default();
        let mut mac_rules = Vec::new();
        for (index, rule) in config.clients.iter().enumerate() {
            for net in &rule.networks {
                clients.insert(*net, (rule.profile, index));
            }
            for mac in &rule.macs {
                mac_rules.push((*mac, (rule.profile, index)));
            }
        }
        let mut allowed_clients = PrefixMap::default();
        for net in &config.server.allow_clients {
            allowed_clients.insert(*net, ());
        }
        let mut global = StoreBuilder::default();
        {
            use rule_bits::*;
            rules_store(
                &config.global_allow,
                ALLOW_TREE,
                ALLOW_EXACT,
                ALLOW_BELOW,
                &mut global,
            );
            rules_store(
                &config.helplines,
                HELPLINE_TREE,
                HELPLINE_EXACT,
                HELPLINE_BELOW,
                &mut global,
            );
        }
        let mut guarded = StoreBuilder::default();
        for (name, answer) in special::GUARDED {
            guarded.insert(
                name,
                if *answer == GuardAnswer::NxDomain {
                    0
                } else {
                    1
                },
            );
        }
        for name in special::BYPASS_RESOLVERS {
            guarded.insert(name, 2);
        }
        let mut no_safe_search = StoreBuilder::default();
        for name in special::NO_SAFE_SEARCH {
            no_safe_search.insert(name, 0);
        }
        Ok(Self {
            no_safe_search: no_safe_search.build(),
            profiles,
            default_profile: config.default_profile,
            clients,
            mac_rules,
            allowed_clients,
            global_allow: global.build(),
            guarded: guarded.build(),
            bypass_bit,
            timezone: config.server.timezone.clone(),
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
    /// (`None` when the default profile applies). MAC matches are looked up by the caller in
    /// the live state first.
    pub fn classify(&self, ip: IpAddr) -> (usize, Option<usize>) {
        match self.clients.get(ip) {
            Some((profile, rule)) => (*profile, Some(*rule)),
            None => (self.default_profile, None),
        }
    }

    /// A profile by index.
    pub fn profile(&self, index: usize) -> Option<&Profile> {
        self.profiles.get(index)
    }

    /// All profiles.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// The schedules' time zone.
    pub fn timezone(&self) -> &jiff::tz::TimeZone {
        &self.timezone
    }

    /// MAC rules: MAC → (profile, client rule).
    pub fn mac_rules(&self) -> &[(Mac, (usize, usize))] {
        &self.mac_rules
    }

    /// Whether any client is matched by MAC (the neighbour table is only read then).
    pub fn has_mac_rules(&self) -> bool {
        !self.mac_rules.is_empty()
    }

    /// Decides for a name. `labels` yields its labels leftmost first (see [`Store::lookup`]);
    /// it is called once per store consulted. `now` is the profile's live state.
    pub fn decide<'a, F, I>(
        &self,
        profile: usize,
        labels: F,
        lists: &Store,
        now: &ProfileNow,
    ) -> Decision
    where
        F: Fn() -> I,
        I: DoubleEndedIterator<Item = &'a [u8]>,
    {
        self.decide_traced(profile, labels, lists, now, &mut NoTrace)
    }

    /// [`Policy::decide`], telling `trace` each step (for `kidsafe explain`).
    pub fn decide_traced<'a, F, I, T>(
        &self,
        profile: usize,
        labels: F,
        lists: &Store,
        now: &ProfileNow,
        trace: &mut T,
    ) -> Decision
    where
        F: Fn() -> I,
        I: DoubleEndedIterator<Item = &'a [u8]>,
        T: Trace,
    {
        use rule_bits::*;
        let Some(p) = self.profiles.get(profile) else {
            return Decision::Forward;
        };
        let global = if self.global_allow.is_empty() {
            (0, 0)
        } else {
            self.global_allow.lookup_parts(labels())
        };
        if rule_hit(global, HELPLINE_TREE, HELPLINE_EXACT, HELPLINE_BELOW) {
            trace.note(|| {
                "helpline: answers for every profile, whatever deny lists, categories, schedules, pauses or walled gardens say".into()
            });
            return Decision::Allowed;
        }
        if rule_hit(global, ALLOW_TREE, ALLOW_EXACT, ALLOW_BELOW) {
            trace.note(|| "allowed by [lists] allow (no profile may block it)".into());
            return Decision::Allowed;
        }
        let rules = if p.rules.is_empty() {
            (0, 0)
        } else {
            p.rules.lookup_parts(labels())
        };
        if rule_hit(rules, ALLOW_TREE, ALLOW_EXACT, ALLOW_BELOW) {
            trace.note(|| format!("allowed by profile {}'s allow list", p.name));
            return Decision::Allowed;
        }
        if !now.grants.is_empty() && now.grants.lookup(labels()) != 0 {
            trace.note(|| "allowed by a `kidsafe grant` in force".into());
            return Decision::Allowed;
        }
        if rule_hit(rules, DENY_TREE, DENY_EXACT, DENY_BELOW) {
            trace.note(|| format!("denied by profile {}'s deny list", p.name));
            return Decision::Block(BlockReason::Denied);
        }
        if now.block_all {
            trace.note(|| "a schedule window (block = \"all\") or a pause is in force".into());
            return Decision::Block(BlockReason::Schedule);
        }
        let listed = || lists.lookup(labels());
        if p.allowlist_mode {
            let bits = listed();
            return if bits & p.allow_mask != 0 {
                trace.note(|| "walled garden: in an allowed category".into());
                Decision::Allowed
            } else {
                trace.note(|| "walled garden: not allowed, so blocked".into());
                Decision::Block(BlockReason::WalledGarden)
            };
        }
        if p.guards {
            // Only the built-in names: the `bypass` category (VPN providers and web proxies as
            // well as resolvers) blocks where the profile blocks it, like any category.
            let guard = self.guarded.lookup(labels());
            if guard & 0b11 != 0 {
                let answer = if guard & 1 != 0 {
                    GuardAnswer::NxDomain
                } else {
                    GuardAnswer::NoData
                };
                trace.note(|| format!("bypass guard: answered {answer:?}"));
                return Decision::Block(BlockReason::Guard(answer));
            }
            if guard & 0b100 != 0 {
                trace.note(|| "bypass guard: a public DNS-over-HTTPS/TLS resolver".into());
                return Decision::Block(BlockReason::Category(
                    self.bypass_bit.trailing_zeros() as u8
                ));
            }
        }
        if (p.safe_search || p.youtube != YouTube::Off)
            && let Some(rewrite) = special::rewrite_for_iter(labels(), p.safe_search, p.youtube)
        {
            trace.note(|| format!("safe search: CNAME to {}", rewrite.target()));
            return Decision::Rewrite(rewrite);
        }
        if p.safe_search && self.no_safe_search.lookup(labels()) != 0 {
            trace.note(|| "safe search: a search engine without enforceable safe search".into());
            return Decision::Block(BlockReason::Category(self.bypass_bit.trailing_zeros() as u8));
        }
        let mask = p.block_mask | now.extra_mask;
        if mask == 0 {
            trace.note(|| "no category blocked".into());
            return Decision::Forward;
        }
        let hit = listed() & mask;
        if hit == 0 {
            trace.note(|| "in no blocked category".into());
            Decision::Forward
        } else {
            // The lowest bit wins: vocabulary order, then custom categories by name.
            let bit = hit.trailing_zeros() as u8;
            trace.note(|| {
                let why = if p.block_mask & (1 << bit) != 0 {
                    "blocked by the profile"
                } else {
                    "blocked by a schedule window"
                };
                format!("category bit {bit}: {why}")
            });
            Decision::Block(BlockReason::Category(bit))
        }
    }
}

fn unknown_category_message(name: &str, categories: &Categories) -> String {
    let close = categories
        .names()
        .filter(|known| crate::config::suggest::edit_distance(known, name) <= 2)
        .map(|known| format!(" (did you mean \"{known}\"?)"))
        .next()
        .unwrap_or_default();
    let vocabulary: Vec<&str> = category::VOCABULARY.iter().map(|c| c.name).collect();
    format!(
        "unknown category \"{name}\"{close}; known categories are {} plus any <name>.txt in the list directories",
        vocabulary.join(", ")
    )
}

#[cfg(test)]
mod tests;
