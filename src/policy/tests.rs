//! Unit tests of the compiled policy and `decide`.

use super::*;
use crate::blocklist::{FileReport, scan_line};
use std::path::Path;

/// Lists compiled in memory from (file stem, contents), as the loader would from files.
fn lists_of(files: &[(&str, &str)]) -> LoadedLists {
    let named: Vec<(String, &str)> = files
        .iter()
        .map(|(stem, text)| (category::canonical_name(stem), *text))
        .collect();
    let categories =
        Categories::with_custom(named.iter().map(|(c, _)| c.as_str())).expect("categories");
    let mut builder = StoreBuilder::default();
    let mut reports = Vec::new();
    for (category, text) in &named {
        let bit = categories.index(category).expect("bit");
        let mut report = FileReport {
            category: category.clone(),
            ..FileReport::default()
        };
        for line in text.lines() {
            scan_line(line, &mut |name| {
                builder.insert(name, bit);
                report.names += 1;
            });
        }
        reports.push(report);
    }
    LoadedLists {
        store: builder.build(),
        categories,
        files: reports,
    }
}

fn setup(profiles: &str) -> (Config, LoadedLists) {
    let lists = lists_of(&[
        ("adult", "adult.example\nboth.example\n"),
        ("drogue", "both.example\n"),
        ("gambling", "casino.example\n"),
    ]);
    let source = format!(
        "[upstream]\nservers = [\"127.0.0.1:53\"]\n[lists]\nallow = []\n[defaults]\nprofile = \"teen\"\n{profiles}"
    );
    let config = Config::from_source(Path::new("/k/kidsafe.toml"), &source).expect("config");
    (config, lists)
}

fn decide(policy: &Policy, lists: &LoadedLists, profile: &str, name: &str) -> Decision {
    let index = policy
        .profiles()
        .iter()
        .position(|p| p.name == profile)
        .expect("profile");
    policy.decide(
        index,
        || name.split('.').map(str::as_bytes),
        &lists.store,
        &ProfileNow::default(),
    )
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
        Decision::Allowed
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
    let name_of = |ip: &str| &policy.profiles()[policy.profile_for(ip.parse().expect("ip"))].name;
    assert_eq!(name_of("10.0.5.9"), "child");
    assert_eq!(name_of("10.0.6.9"), "staff");
    assert_eq!(name_of("192.168.9.9"), "teen");
    assert!(policy.client_allowed("192.168.9.9".parse().expect("ip")));
    assert!(!policy.client_allowed("203.0.113.9".parse().expect("ip")));
}

fn decide_at(
    policy: &Policy,
    lists: &LoadedLists,
    profile: &str,
    name: &str,
    now: &ProfileNow,
) -> Decision {
    let index = policy
        .profiles()
        .iter()
        .position(|p| p.name == profile)
        .expect("profile");
    policy.decide(
        index,
        || name.split('.').map(str::as_bytes),
        &lists.store,
        now,
    )
}

#[test]
fn presets_with_additions_and_removals() {
    let (config, lists) = setup(
        "[profiles.teen]\npreset = \"13-15\"\nblock = [\"gambling\"]\nunblock = [\"drugs\"]\n\
         [profiles.kid]\npreset = \"under-9\"\n",
    );
    let policy = Policy::compile(&config, &lists).expect("compiles");
    let bit = |c: &str| 1u64 << lists.categories.index(c).expect("known");
    let teen = &policy.profiles()[policy
        .profiles()
        .iter()
        .position(|p| p.name == "teen")
        .expect("teen")];
    assert_ne!(teen.block_mask & bit("gambling"), 0);
    assert_eq!(teen.block_mask & bit("drugs"), 0, "unblocked");
    assert_ne!(teen.block_mask & bit("hate"), 0, "from the preset");
    assert!(teen.safe_search && teen.youtube == YouTube::Moderate && teen.guards);
    let kid = &policy.profiles()[policy
        .profiles()
        .iter()
        .position(|p| p.name == "kid")
        .expect("kid")];
    assert_ne!(kid.block_mask & bit("social"), 0);
    assert_eq!(kid.youtube, YouTube::Strict);
    assert_eq!(
        decide(&policy, &lists, "teen", "both.example"),
        Decision::Block(BlockReason::Category(
            lists.categories.index("adult").expect("a")
        ))
    );
}

#[test]
fn exact_and_wildcard_rules_and_the_global_allow_list() {
    let (mut config, lists) = setup(
        "[profiles.teen]\nblock = [\"adult\"]\n\
         allow = [\"=adult.example\"]\ndeny = [\"*.school.example\"]\n",
    );
    assert_eq!(
        decide(&policy_of(&config, &lists), &lists, "teen", "adult.example"),
        Decision::Allowed
    );
    let adult = lists.categories.index("adult").expect("a");
    assert_eq!(
        decide(
            &policy_of(&config, &lists),
            &lists,
            "teen",
            "www.adult.example"
        ),
        Decision::Block(BlockReason::Category(adult)),
        "=name allows only that name"
    );
    assert_eq!(
        decide(
            &policy_of(&config, &lists),
            &lists,
            "teen",
            "school.example"
        ),
        Decision::Forward
    );
    assert_eq!(
        decide(
            &policy_of(&config, &lists),
            &lists,
            "teen",
            "chat.school.example"
        ),
        Decision::Block(BlockReason::Denied),
        "*.name denies only below it"
    );
    config.global_allow = vec![NameRule {
        name: "chat.school.example".into(),
        form: RuleForm::Tree,
    }];
    assert_eq!(
        decide(
            &policy_of(&config, &lists),
            &lists,
            "teen",
            "x.chat.school.example"
        ),
        Decision::Allowed
    );
}

fn policy_of(config: &Config, lists: &LoadedLists) -> Policy {
    Policy::compile(config, lists).expect("compiles")
}

#[test]
fn schedules_pauses_and_grants_come_through_the_live_state() {
    let (config, lists) =
        setup("[profiles.teen]\nblock = [\"adult\"]\nallow = [\"helpline.example\"]\n");
    let policy = policy_of(&config, &lists);
    let bedtime = ProfileNow {
        block_all: true,
        ..ProfileNow::default()
    };
    assert_eq!(
        decide_at(&policy, &lists, "teen", "school.example", &bedtime),
        Decision::Block(BlockReason::Schedule)
    );
    assert_eq!(
        decide_at(&policy, &lists, "teen", "helpline.example", &bedtime),
        Decision::Allowed,
        "allow beats schedules"
    );
    let homework = ProfileNow {
        extra_mask: 1 << lists.categories.index("gambling").expect("g"),
        ..ProfileNow::default()
    };
    assert!(matches!(
        decide_at(&policy, &lists, "teen", "casino.example", &homework),
        Decision::Block(BlockReason::Category(_))
    ));
    assert_eq!(
        decide(&policy, &lists, "teen", "casino.example"),
        Decision::Forward
    );
    let mut grants = StoreBuilder::default();
    grants.insert("adult.example", 0);
    let granted = ProfileNow {
        grants: grants.build(),
        ..bedtime
    };
    assert_eq!(
        decide_at(&policy, &lists, "teen", "www.adult.example", &granted),
        Decision::Allowed
    );
}

#[test]
fn walled_gardens_guards_and_safe_search() {
    let lists = lists_of(&[
        ("adult", "adult.example\n"),
        ("child", "games-for-kids.example\n"),
        ("bypass", "vpn.example\n"),
    ]);
    let source = "[upstream]\nservers = [\"127.0.0.1:53\"]\n[defaults]\nprofile = \"garden\"\n\
         [profiles.garden]\nmode = \"allowlist\"\nallow = [\"school.example\"]\n\
         [profiles.teen]\nblock = [\"adult\"]\nsafe_search = true\nyoutube = \"strict\"\n\
         [profiles.kid]\nblock = [\"bypass\"]\n\
         [profiles.open]\n";
    let config =
        Config::from_source(std::path::Path::new("/k/kidsafe.toml"), source).expect("config");
    let policy = policy_of(&config, &lists);
    assert_eq!(
        decide(&policy, &lists, "garden", "games-for-kids.example"),
        Decision::Allowed,
        "UT1 child maps to kids"
    );
    assert_eq!(
        decide(&policy, &lists, "garden", "www.school.example"),
        Decision::Allowed
    );
    assert_eq!(
        decide(&policy, &lists, "garden", "news.example"),
        Decision::Block(BlockReason::WalledGarden)
    );
    assert_eq!(
        decide(&policy, &lists, "teen", "use-application-dns.net"),
        Decision::Block(BlockReason::Guard(GuardAnswer::NxDomain))
    );
    assert_eq!(
        decide(&policy, &lists, "teen", "_dns.resolver.arpa"),
        Decision::Block(BlockReason::Guard(GuardAnswer::NoData))
    );
    assert_eq!(
        decide(&policy, &lists, "teen", "www.google.al"),
        Decision::Rewrite(Rewrite::Google)
    );
    assert_eq!(
        decide(&policy, &lists, "teen", "www.youtube.com"),
        Decision::Rewrite(Rewrite::YouTubeStrict)
    );
    let bypass = lists.categories.index("bypass").expect("bypass");
    assert_eq!(
        decide(&policy, &lists, "teen", "search.brave.com"),
        Decision::Block(BlockReason::Category(bypass))
    );
    assert_eq!(
        decide(&policy, &lists, "open", "search.brave.com"),
        Decision::Forward
    );
    // The guards block the built-in DoH resolvers, not the whole `bypass` category: a VPN
    // provider listed there is blocked only where the profile blocks `bypass`.
    assert_eq!(
        decide(&policy, &lists, "teen", "dns.google"),
        Decision::Block(BlockReason::Category(bypass))
    );
    assert_eq!(
        decide(&policy, &lists, "teen", "www.vpn.example"),
        Decision::Forward
    );
    assert_eq!(
        decide(&policy, &lists, "kid", "www.vpn.example"),
        Decision::Block(BlockReason::Category(bypass))
    );
    // A profile that blocks nothing has no guards and no rewrites.
    assert_eq!(
        decide(&policy, &lists, "open", "use-application-dns.net"),
        Decision::Forward
    );
    assert_eq!(
        decide(&policy, &lists, "open", "www.google.al"),
        Decision::Forward
    );
}

#[test]
fn edit_distance_counts_edits() {
    assert_eq!(
        crate::config::suggest::edit_distance("gambling", "gamblng"),
        1
    );
    assert_eq!(crate::config::suggest::edit_distance("adult", "adult"), 0);
    assert_eq!(crate::config::suggest::edit_distance("", "abc"), 3);
}
