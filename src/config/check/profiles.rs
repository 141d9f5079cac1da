//! Checks of `[profiles.*]` (presets, categories, allow and deny rules, schedules) and
//! `[[clients]]`.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use toml::Spanned;

use crate::blocklist::parse::{Normalised, normalise};

use super::super::raw::*;
use super::super::settings::*;
use super::Checker;
use super::is_profile_name;
use crate::config::Location;

impl Checker<'_> {
    pub(super) fn rules(&mut self, values: &[Spanned<String>], key: &str) -> Vec<NameRule> {
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let text = v.get_ref().trim();
            let (form, rest) = if let Some(rest) = text.strip_prefix('=') {
                (RuleForm::Exact, rest)
            } else if let Some(rest) = text.strip_prefix("*.") {
                (RuleForm::Below, rest)
            } else {
                (RuleForm::Tree, text)
            };
            match normalise(rest) {
                Ok(Normalised::Name(name)) if !rest.starts_with('*') && !rest.starts_with('.') => {
                    out.push(NameRule {
                        name: name.into_owned(),
                        form,
                    })
                }
                _ => self.problem(
                    v,
                    format!("{key}[{i}]"),
                    "not a domain name; write \"example.com\" (with its subdomains), \"*.example.com\" (only subdomains) or \"=example.com\" (only that name)",
                ),
            }
        }
        out
    }

    pub(super) fn categories_at(
        &self,
        values: &[Spanned<String>],
        key: &str,
    ) -> Vec<Located<String>> {
        values
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut located = self.locate(c, format!("{key}[{i}]"));
                located.value = crate::category::canonical_name(&located.value);
                located
            })
            .collect()
    }

    pub(super) fn check_schedule(
        &mut self,
        s: &ScheduleConfig,
        key: &str,
    ) -> Option<ScheduleSettings> {
        use crate::config::schedule::{DateRange, Effect, Window, parse_days, parse_time};
        let days: Vec<&str> = s.days.iter().map(|d| d.get_ref().as_str()).collect();
        let days = match parse_days(&days) {
            Ok(d) if d.iter().any(|x| *x) => Some(d),
            Ok(_) => {
                self.problems.at(
                    Location::of_offset(self.source, s.from.span().start),
                    format!("{key}.days"),
                    "needs at least one day",
                );
                None
            }
            Err(msg) => {
                let at = s.days.first().map(|d| d.span()).unwrap_or(0..0);
                self.problems
                    .at_span(self.source, at, format!("{key}.days"), msg);
                None
            }
        };
        let time =
            |this: &mut Self, v: &Spanned<String>, field: &str, allow_24: bool| match parse_time(
                v.get_ref(),
                allow_24,
            ) {
                Ok(t) => Some(t),
                Err(msg) => {
                    this.problem(v, format!("{key}.{field}"), msg);
                    None
                }
            };
        let from = time(self, &s.from, "from", false);
        let to = time(self, &s.to, "to", true);
        let ranges = |this: &mut Self, values: &[Spanned<String>], field: &str| {
            let mut out = Vec::new();
            for (i, v) in values.iter().enumerate() {
                match DateRange::parse(v.get_ref()) {
                    Ok(r) => out.push(r),
                    Err(msg) => this.problem(v, format!("{key}.{field}[{i}]"), msg),
                }
            }
            out
        };
        let except = ranges(self, &s.except, "except");
        let only = ranges(self, &s.only, "only");
        let (block_all, categories) = match s.block.get_ref() {
            toml::Value::String(all) if all == "all" => (true, Vec::new()),
            toml::Value::Array(items) => {
                let mut names = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(c) => names.push(Located {
                            value: crate::category::canonical_name(c),
                            at: Location::of_offset(self.source, s.block.span().start),
                            key: format!("{key}.block[{i}]"),
                        }),
                        None => self.problem(
                            &s.block,
                            format!("{key}.block[{i}]"),
                            "categories are strings",
                        ),
                    }
                }
                (false, names)
            }
            _ => {
                self.problem(
                    &s.block,
                    format!("{key}.block"),
                    "write block = \"all\" or block = [\"games\", \"social\"]",
                );
                (false, Vec::new())
            }
        };
        Some(ScheduleSettings {
            window: Window {
                days: days?,
                from: from?,
                to: to?,
                effect: Effect::BlockAll,
                except,
                only,
            },
            block_all,
            categories,
        })
    }

    pub(super) fn check_profiles(
        &mut self,
        profiles: &BTreeMap<Spanned<String>, ProfileConfig>,
    ) -> Vec<ProfileSettings> {
        use crate::config::YouTube;
        use crate::config::presets;
        let mut out = Vec::with_capacity(profiles.len());
        for (spanned_name, p) in profiles {
            let name = spanned_name.get_ref();
            let key = format!("profiles.{name}");
            if !is_profile_name(name) {
                self.problem(
                    spanned_name,
                    key.clone(),
                    "profile names use letters, digits, '_' and '-' (at most 40)",
                );
            }
            let preset = match &p.preset {
                None => None,
                Some(v) => match presets::find(v.get_ref()) {
                    Some(found) => Some((found, v)),
                    None => {
                        let names: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
                        let written = v.get_ref();
                        let close = crate::config::suggest::closest(written, names.iter().copied())
                            .map(|close| format!(" (did you mean \"{close}\"?)"))
                            .unwrap_or_default();
                        self.problem(
                            v,
                            format!("{key}.preset"),
                            format!(
                                "unknown preset \"{written}\"{close}; use one of {}",
                                names.join(", ")
                            ),
                        );
                        None
                    }
                },
            };
            let mut block: Vec<Located<String>> = Vec::new();
            if let Some((found, v)) = &preset {
                let at = Location::of_offset(self.source, v.span().start);
                block.extend(found.block.iter().map(|c| Located {
                    value: (*c).to_string(),
                    at,
                    key: format!("{key}.preset"),
                }));
            }
            block.extend(self.categories_at(&p.block, &format!("{key}.block")));
            let unblock = self.categories_at(&p.unblock, &format!("{key}.unblock"));
            let allow = self.rules(&p.allow, &format!("{key}.allow"));
            let deny = self.rules(&p.deny, &format!("{key}.deny"));
            let allowlist_mode = match p.mode.as_ref().map(|m| m.get_ref().as_str()) {
                None | Some("filter") => false,
                Some("allowlist") => true,
                Some(_) => {
                    if let Some(m) = &p.mode {
                        self.problem(
                            m,
                            format!("{key}.mode"),
                            "must be \"filter\" or \"allowlist\"",
                        );
                    }
                    false
                }
            };
            let allow_categories = p
                .allow_categories
                .as_ref()
                .map(|c| self.categories_at(c, &format!("{key}.allow_categories")));
            let safe_search = p
                .safe_search
                .unwrap_or_else(|| preset.as_ref().is_some_and(|(found, _)| found.safe_search));
            let youtube_text = match &p.youtube {
                Some(v) => v.get_ref().clone(),
                None => preset
                    .as_ref()
                    .map_or("off", |(found, _)| found.youtube)
                    .to_string(),
            };
            let youtube = match youtube_text.as_str() {
                "off" => YouTube::Off,
                "moderate" => YouTube::Moderate,
                "strict" => YouTube::Strict,
                _ => {
                    if let Some(v) = &p.youtube {
                        self.problem(
                            v,
                            format!("{key}.youtube"),
                            "must be \"strict\", \"moderate\" or \"off\"",
                        );
                    }
                    YouTube::Off
                }
            };
            let schedule = p
                .schedule
                .iter()
                .enumerate()
                .filter_map(|(i, s)| self.check_schedule(s, &format!("{key}.schedule[{i}]")))
                .collect();
            out.push(ProfileSettings {
                name: name.clone(),
                block,
                unblock,
                allow,
                deny,
                allowlist_mode,
                allow_categories,
                safe_search,
                youtube,
                bypass_guards: p.bypass_guards,
                schedule,
            });
        }
        out
    }

    pub(super) fn profile_ref(
        &mut self,
        names: &[&str],
        value: &Spanned<String>,
        key: &str,
    ) -> Option<usize> {
        let wanted = value.get_ref();
        let found = names.iter().position(|n| n == wanted);
        if found.is_none() {
            let known = if names.is_empty() {
                "no profiles are defined".to_string()
            } else {
                format!("defined profiles: {}", names.join(", "))
            };
            self.problem(
                value,
                key,
                format!("unknown profile \"{wanted}\" ({known}); add a [profiles.{wanted}] table or fix the name"),
            );
        }
        found
    }

    pub(super) fn check_clients(
        &mut self,
        names: &[&str],
        clients: &[ClientConfig],
    ) -> Vec<ClientSettings> {
        let mut out = Vec::with_capacity(clients.len());
        let mut seen: HashMap<IpNet, (String, usize)> = HashMap::new();
        for (i, c) in clients.iter().enumerate() {
            let key = format!("clients[{i}]");
            let profile = self.profile_ref(names, &c.profile, &format!("{key}.profile"));
            let mut macs = Vec::new();
            let mut networks = Vec::new();
            for (j, m) in c.matches.iter().enumerate() {
                let text = m.get_ref();
                if let Some(mac) = crate::config::parse_mac(text) {
                    macs.push(mac);
                    continue;
                }
                let net = match super::parse_network(text) {
                    Ok(net) => net,
                    Err(_) if !text.contains('/') && text.parse::<IpNet>().is_err() => {
                        self.problem(
                            m,
                            format!("{key}.match[{j}]"),
                            format!("\"{text}\" is not an IP address, network or MAC address; write e.g. \"192.168.1.7\", \"192.168.1.0/24\" or \"aa:bb:cc:dd:ee:01\""),
                        );
                        continue;
                    }
                    Err(msg) => {
                        self.problem(m, format!("{key}.match[{j}]"), msg);
                        continue;
                    }
                };
                networks.push(net);
                if let Some((other, other_profile)) = seen.get(&net) {
                    if Some(*other_profile) != profile {
                        self.problem(
                            m,
                            format!("{key}.match[{j}]"),
                            format!("{net} is already matched by client \"{other}\" with another profile; a network may have one profile"),
                        );
                    }
                } else if let Some(p) = profile {
                    seen.insert(net, (c.name.clone(), p));
                }
            }
            if let Some(profile) = profile {
                out.push(ClientSettings {
                    name: c.name.clone(),
                    macs,
                    networks,
                    profile,
                });
            }
        }
        out
    }
}
