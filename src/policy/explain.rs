//! `kidsafe explain NAME --client ADDR [--at TIME]`: the decision chain for one name, offline,
//! from the config and lists alone — which client rule chose which profile, which allow, deny,
//! schedule or guard applied, which listed suffix matched in which category, and the answer.

use std::net::IpAddr;

use jiff::Timestamp;

use std::collections::HashMap;

use super::live::{LiveState, Overrides};
use super::{BlockReason, Decision, Policy};
use crate::blocklist::LoadedLists;
use crate::config::{Config, Mac};

/// What an explanation reads: the rules of one built runtime and the world around it (the
/// overrides in force and the neighbour tables), all read by the caller.
pub struct Subject<'a> {
    /// The validated config.
    pub config: &'a Config,
    /// Its compiled policy.
    pub policy: &'a Policy,
    /// Its lists.
    pub lists: &'a LoadedLists,
    /// The overrides file's contents.
    pub overrides: &'a Overrides,
    /// The neighbour tables' contents.
    pub neighbours: &'a HashMap<Mac, Vec<IpAddr>>,
}

/// The explanation, one line a step.
pub fn explain(subject: &Subject<'_>, name: &str, client: IpAddr, at: Timestamp) -> Vec<String> {
    let Subject {
        config,
        policy,
        lists,
        overrides,
        neighbours,
    } = *subject;
    let mut lines = Vec::new();
    let name = name.trim_end_matches('.').to_ascii_lowercase();

    let live = LiveState::compute(policy, overrides, neighbours, at);
    let zoned = at.to_zoned_datetime(policy.timezone().clone());
    lines.push(format!(
        "query    {name} from {client} at {}",
        zoned.strftime("%Y-%m-%d %H:%M %Z")
    ));
    if !policy.client_allowed(client) {
        lines.push("access   not in server.allow_clients: REFUSED".into());
        return lines;
    }
    let (profile, rule) = match live.by_mac.get(&client) {
        Some((p, r)) => {
            lines.push(format!(
                "client   matched by MAC through the neighbour table: rule \"{}\"",
                config.clients[*r].name
            ));
            (*p, Some(*r))
        }
        None => policy.classify(client),
    };
    let profile_name = &policy.profiles()[profile].name;
    match rule {
        Some(r) => lines.push(format!(
            "client   rule \"{}\" (longest matching prefix) -> profile {profile_name}",
            config.clients[r].name
        )),
        None => lines.push(format!(
            "client   no [[clients]] rule matches -> defaults.profile {profile_name}"
        )),
    }
    let now = &live.profiles[profile];
    if now.block_all {
        lines.push("schedule a block-all window or a pause is in force".into());
    }
    if now.extra_mask != 0 {
        let cats: Vec<&str> = (0..64u8)
            .filter(|b| now.extra_mask & (1 << b) != 0)
            .map(|b| lists.categories.name(b))
            .collect();
        lines.push(format!("schedule a window blocks {} now", cats.join(", ")));
    }
    if let Some(next) = now.next_change {
        lines.push(format!(
            "schedule the next change is at {}",
            next.to_zoned_datetime(policy.timezone().clone())
                .strftime("%Y-%m-%d %H:%M %Z")
        ));
    }
    for (suffix, bits) in lists.store.matching_suffixes(&name) {
        let cats: Vec<&str> = (0..64u8)
            .filter(|b| bits & (1 << b) != 0)
            .map(|b| lists.categories.name(b))
            .collect();
        lines.push(format!(
            "lists    {suffix} is listed in {}",
            cats.join(", ")
        ));
    }
    let mut steps: Vec<String> = Vec::new();
    let decision = policy.decide_traced(
        profile,
        || name.split('.').map(str::as_bytes),
        &lists.store,
        now,
        &mut steps,
    );
    for step in steps {
        let step = match step.strip_prefix("category bit ") {
            Some(rest) => {
                let (bit, why) = rest.split_once(':').unwrap_or((rest, ""));
                let category = bit.parse().map_or("?", |b| lists.categories.name(b));
                format!("category {category}:{why}")
            }
            None => step,
        };
        lines.push(format!("policy   {step}"));
    }
    let server = &config.server;
    let answer = match decision {
        Decision::Forward | Decision::Allowed => "forwarded to the upstream resolvers".to_string(),
        Decision::Rewrite(r) => format!("CNAME {} and its addresses", r.target()),
        Decision::Block(reason) => {
            let style = match reason {
                BlockReason::Guard(super::special::GuardAnswer::NxDomain) => "NXDOMAIN".to_string(),
                BlockReason::Guard(super::special::GuardAnswer::NoData) => "NODATA".to_string(),
                _ => format!("{:?}", server.block_response),
            };
            format!(
                "blocked ({}): {style}, TTL {} s",
                reason.category(&lists.categories),
                live.seconds_left(profile)
                    .map_or(server.block_ttl, |s| s.min(server.block_ttl))
            )
        }
    };
    lines.push(format!("answer   {answer}"));
    lines
}

/// Reads `--at`: a local date and time in the config's time zone, e.g. "2026-12-01T21:30".
pub fn parse_at(text: &str, tz: jiff::tz::TimeZone) -> Result<Timestamp, String> {
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned_datetime(tz).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| {
            format!("--at {text:?} is not a local date and time; write e.g. \"2026-12-01T21:30\"")
        })
}
