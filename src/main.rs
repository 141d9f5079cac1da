//! The `kidsafe` command: parses the command line, runs one subcommand, maps errors to exit
//! codes (0 fine, 1 runtime failure, 2 invalid config or lists).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use kidsafe::config::Config;
use kidsafe::daemon::{self, DaemonError};
use kidsafe::feed::SecretKey;
use kidsafe::feed::manifest::Encoding;
use kidsafe::feed::publish;
use kidsafe::policy::live;
use kidsafe::reload::status;
use kidsafe::runtime::{BuildError, Runtime};

/// `println!` that gives up quietly when stdout is closed (`kidsafe check | head`) instead of
/// panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` likewise.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Where packages install the config.
const DEFAULT_CONFIG: &str = "/etc/kidsafe/kidsafe.toml";

#[derive(Parser)]
#[command(
    name = "kidsafe",
    version,
    about = "Parental-control DNS filter with age profiles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the DNS daemon.
    Run {
        /// The config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Check a config file and its lists, print what they hold, and exit.
    Check {
        /// The config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Explain what kidsafe would answer for NAME asked by a client, and why (offline).
    Explain {
        /// The name to explain.
        name: String,
        /// The client's address.
        #[arg(long)]
        client: std::net::IpAddr,
        /// Local time in the config's time zone, e.g. "2026-12-01T21:30" (default: now).
        #[arg(long)]
        at: Option<String>,
        /// The config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Allow a name for a profile for a while, without editing the config.
    Grant {
        /// The profile.
        #[arg(long)]
        profile: String,
        /// The name to allow (with its subdomains).
        #[arg(long)]
        allow: String,
        /// For how long, e.g. "30m", "2h".
        #[arg(long = "for")]
        duration: String,
        /// The config file of the daemon (its state_dir holds the overrides).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Block everything but allowed names for a profile for a while.
    Pause {
        /// The profile.
        #[arg(long)]
        profile: String,
        /// For how long, e.g. "1h".
        #[arg(long = "for")]
        duration: String,
        /// The config file of the daemon (its state_dir holds the overrides).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show what was blocked, by profile, category and day (counts only, never names).
    Stats {
        /// The config file of the daemon (its state_dir holds stats.db).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// How many days back, today included.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Only this profile.
        #[arg(long)]
        profile: Option<String>,
    },
    /// Show what the running daemon serves and how its last reload went.
    Status {
        /// The config file of the daemon (its state_dir holds status.json).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// The national feed: publish lists (authority), update and inspect it (client); docs/feed.md.
    #[command(subcommand)]
    Feed(FeedCommand),
    /// The `[[lists.sources]]`: public lists fetched into categories.
    #[command(subcommand)]
    Sources(SourcesCommand),
}

/// `kidsafe sources …`.
#[derive(Subcommand)]
enum SourcesCommand {
    /// Fetch the list sources once (those at --index, or all). Exit code: 0 a new copy
    /// installed, 4 nothing changed, 1 a download failed and nothing was installed, 2 bad config.
    Update {
        /// The daemon's config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Only the source at this position in the config (0 is the first); repeatable.
        #[arg(long)]
        index: Vec<usize>,
    },
}

/// `kidsafe feed …`: the authority's tools and the client's.
#[derive(Subcommand)]
enum FeedCommand {
    /// Fetch, verify and install the feed once. Exit code: 0 installed, 4 already current,
    /// 1 unreachable (try later), 3 refused (signature, rollback, expiry, hash), 2 bad config.
    Update {
        /// The daemon's config file (its [feed] and state_dir).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show the installed feed: sequence, age, fresh/stale/expired, lists, last error.
    Status {
        /// The daemon's config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Create a signing key pair: DIR/feed.key (secret, unencrypted, mode 0600) and DIR/feed.pub.
    Keygen(FeedKeygenArgs),
    /// Publish the lists of a directory as a signed feed, ready to copy to a web server.
    Publish(FeedPublishArgs),
}

#[derive(clap::Args)]
struct FeedKeygenArgs {
    /// The directory to write feed.key and feed.pub into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct FeedPublishArgs {
    /// The secret key file (from `kidsafe feed keygen` or `minisign -G -W`).
    #[arg(long)]
    key: PathBuf,
    /// The directory of lists: <category>.txt (hosts, plain or ||name^ lines), and allow.txt.
    #[arg(long)]
    lists: PathBuf,
    /// The feed directory: reads the previous manifest.json, writes the new one and by-hash/.
    #[arg(long)]
    out: PathBuf,
    /// The feed id, e.g. "xx.gov.parental" (required on the first publication).
    #[arg(long)]
    feed_id: Option<String>,
    /// How long clients accept this manifest, e.g. "7d"; re-publish before it runs out.
    #[arg(long, default_value = "7d")]
    expires: String,
    /// The shortest poll interval clients should use, e.g. "1h".
    #[arg(long, default_value = "1h")]
    min_poll: String,
    /// Transfer encoding of the list files (default: gzip above 64 KiB, identity below).
    #[arg(long, value_enum)]
    encoding: Option<FeedEncoding>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FeedEncoding {
    Gzip,
    Identity,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => match daemon::run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(DaemonError::Build(e)) => fail_build(&e),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Check { config } => check(&config),
        Command::Status { config } => status(&config),
        Command::Explain {
            name,
            client,
            at,
            config,
        } => explain(&config, &name, client, at.as_deref()),
        Command::Grant {
            profile,
            allow,
            duration,
            config,
        } => override_for(&config, &profile, Some(&allow), &duration),
        Command::Pause {
            profile,
            duration,
            config,
        } => override_for(&config, &profile, None, &duration),
        Command::Stats {
            config,
            days,
            profile,
        } => stats(&config, days, profile.as_deref()),
        Command::Feed(FeedCommand::Update { config }) => feed_client(&config, |c| {
            ExitCode::from(kidsafe::feed::oneshot::update(c))
        }),
        Command::Feed(FeedCommand::Status { config }) => {
            feed_client(&config, |c| match kidsafe::feed::oneshot::status(c) {
                Ok(text) => {
                    out!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            })
        }
        Command::Sources(SourcesCommand::Update { config, index }) => feed_client(&config, |c| {
            ExitCode::from(kidsafe::feed::oneshot::sources_update(c, &index))
        }),
        Command::Feed(FeedCommand::Keygen(args)) => feed_keygen(&args),
        Command::Feed(FeedCommand::Publish(args)) => feed_publish(&args),
    }
}

fn feed_keygen(args: &FeedKeygenArgs) -> ExitCode {
    match publish::keygen(&args.out) {
        Ok(public) => {
            outln!(
                "wrote {} (secret: keep it off the web server) and {}",
                args.out.join(publish::SECRET_KEY_FILE).display(),
                args.out.join(publish::PUBLIC_KEY_FILE).display()
            );
            outln!("public key {}: {}", public.key_id(), public.to_base64());
            outln!(
                "put it in the clients' config: [feed] public_key = \"{}\"",
                public.to_base64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn feed_publish(args: &FeedPublishArgs) -> ExitCode {
    let duration = |flag: &str, text: &str| match humantime::parse_duration(text) {
        Ok(d) if d.as_secs() >= 1 => Some(d),
        _ => {
            eprintln!("error: --{flag} {text:?}: write a duration, e.g. \"7d\" or \"1h\"");
            None
        }
    };
    let (Some(expires_in), Some(min_poll)) = (
        duration("expires", &args.expires),
        duration("min-poll", &args.min_poll),
    ) else {
        return ExitCode::from(2);
    };
    let key = match std::fs::read_to_string(&args.key)
        .map_err(|e| format!("cannot read {}: {e}", args.key.display()))
        .and_then(|text| {
            SecretKey::from_file_text(&text).map_err(|e| format!("{}: {e}", args.key.display()))
        }) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = publish::PublishOptions {
        lists_dir: args.lists.clone(),
        out_dir: args.out.clone(),
        feed_id: args.feed_id.clone(),
        expires_in,
        min_poll,
        encoding: args.encoding.map(|e| match e {
            FeedEncoding::Gzip => Encoding::Gzip,
            FeedEncoding::Identity => Encoding::Identity,
        }),
        now: jiff::Timestamp::now(),
    };
    match publish::publish(&key, &opts) {
        Ok(summary) => {
            out!("{}", summary.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn stats(path: &Path, days: u32, profile: Option<&str>) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = &config.server.state_dir;
    if !dir.join(kidsafe::stats::store::DB_FILE).exists() {
        eprintln!(
            "error: no statistics yet in {} (the daemon writes them every [stats] flush interval)",
            dir.display()
        );
        return ExitCode::from(1);
    }
    let report = kidsafe::stats::store::StatsDb::open(dir).and_then(|(db, _)| {
        kidsafe::stats::report::render(&db, std::time::SystemTime::now(), days.max(1), profile)
    });
    match report {
        Ok(text) => {
            out!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn status(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match status::read(&config.server.state_dir) {
        Ok(s) => {
            out!("{}", status::render(&s));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Loads the config for a `feed` client command, then runs it.
fn feed_client(path: &Path, command: impl FnOnce(&Config) -> ExitCode) -> ExitCode {
    match Config::load(path) {
        Ok(config) => command(&config),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn fail_build(e: &BuildError) -> ExitCode {
    eprintln!("error: {e}");
    eprintln!("kidsafe did not start: fix the config or lists above, then run `kidsafe check`");
    ExitCode::from(2)
}

fn check(path: &Path) -> ExitCode {
    let runtime = match Runtime::load(path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let lists = &runtime.lists;
    outln!("{}: ok", path.display());
    if let Some(feed) = runtime.feed_summary() {
        outln!("{feed}");
    }
    outln!(
        "lists: {} files, {} names stored ({} KiB), built in {} ms",
        lists.files.len(),
        lists.store.len(),
        lists.store.size_bytes() / 1024,
        runtime.build_time.as_millis()
    );
    for file in &lists.files {
        outln!(
            "  {:<12} {:>9} names  {:>6} skipped  {:>5} bad  {}",
            file.category,
            file.names,
            file.skipped,
            file.bad,
            file.path.display()
        );
        for (line, reason) in &file.first_bad {
            outln!("      line {line}: {}", reason.describe());
        }
    }
    for profile in runtime.policy.profiles() {
        let blocked: Vec<&str> = (0..64u8)
            .filter(|bit| profile.block_mask & (1 << bit) != 0)
            .map(|bit| lists.categories.name(bit))
            .collect();
        outln!(
            "profile {:<10} blocks: {}",
            profile.name,
            blocked.join(", ")
        );
    }
    for category in runtime.categories_without_lists() {
        outln!("warning: category \"{category}\" is blocked by a profile but no list feeds it yet");
    }
    ExitCode::SUCCESS
}

fn explain(path: &Path, name: &str, client: std::net::IpAddr, at: Option<&str>) -> ExitCode {
    let runtime = match Runtime::load(path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let tz = runtime.policy.timezone().clone();
    let at = match at {
        None => jiff::Timestamp::now(),
        Some(text) => match text
            .parse::<jiff::civil::DateTime>()
            .ok()
            .and_then(|dt| dt.to_zoned_datetime(tz).ok())
        {
            Some(z) => z.timestamp(),
            None => {
                eprintln!(
                    "error: --at {text:?} is not a local date and time; write e.g. \"2026-12-01T21:30\""
                );
                return ExitCode::from(2);
            }
        },
    };
    let overrides = live::Overrides::read(&runtime.config.server.state_dir).unwrap_or_default();
    for line in kidsafe::policy::explain::explain(&runtime, name, client, at, &overrides) {
        outln!("{line}");
    }
    ExitCode::SUCCESS
}

fn override_for(path: &Path, profile: &str, allow: Option<&str>, duration: &str) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if config.profile_index(profile).is_none() {
        let names: Vec<&str> = config.profiles.iter().map(|p| p.name.as_str()).collect();
        eprintln!(
            "error: no profile \"{profile}\" in {}; profiles: {}",
            path.display(),
            names.join(", ")
        );
        return ExitCode::from(2);
    }
    let span = match humantime::parse_duration(duration) {
        Ok(d) if d.as_secs() >= 60 && d.as_secs() <= 7 * 86_400 => d,
        _ => {
            eprintln!(
                "error: --for {duration:?}: write a duration between 1m and 7d, e.g. \"30m\" or \"2h\""
            );
            return ExitCode::from(2);
        }
    };
    let now = jiff::Timestamp::now();
    let until =
        now + jiff::SignedDuration::from_secs(i64::try_from(span.as_secs()).unwrap_or(i64::MAX));
    let dir = &config.server.state_dir;
    let mut overrides = match live::Overrides::read(dir) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    overrides.prune(now);
    let what = match allow {
        Some(name) => {
            let name = match kidsafe::blocklist::parse::normalise(name) {
                Ok(kidsafe::blocklist::parse::Normalised::Name(n)) => n.into_owned(),
                _ => {
                    eprintln!("error: --allow {name:?} is not a domain name");
                    return ExitCode::from(2);
                }
            };
            overrides.grants.push(live::Grant {
                profile: profile.to_string(),
                allow: name.clone(),
                until,
            });
            format!("{name} is allowed for profile {profile}")
        }
        None => {
            overrides.pauses.push(live::Pause {
                profile: profile.to_string(),
                until,
            });
            format!("profile {profile} is paused (only allowed names resolve)")
        }
    };
    if let Err(e) = overrides.write(dir) {
        eprintln!("error: cannot write overrides in {}: {e}", dir.display());
        return ExitCode::from(1);
    }
    let local = until.to_zoned_datetime(config.server.timezone.clone());
    outln!(
        "{what} until {}; the running daemon applies it within a second",
        local.strftime("%Y-%m-%d %H:%M %Z")
    );
    ExitCode::SUCCESS
}
