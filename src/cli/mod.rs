//! The command line: clap types, dispatch, and one error type that carries the exit code
//! (0 fine, 1 runtime failure, 2 invalid config, lists or arguments; the feed and sources
//! updates have their own, documented in their `--help`). Each command's body lives in the
//! module that owns it; this module only parses, calls and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::daemon::{self, DaemonError};
use crate::feed::manifest::Encoding;
use crate::feed::{SecretKey, publish};

/// `println!` that gives up quietly when stdout is closed (`kidsafe check | head`) instead of
/// panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// A command that failed: what to tell the user, and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// The message, printed after "error: ".
    pub message: String,
    /// The exit code.
    pub code: u8,
}

impl CliError {
    /// Exit code 2: invalid config, lists or arguments.
    fn usage(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: 2,
        }
    }

    /// Exit code 1: the command could not do its work.
    fn failed(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: 1,
        }
    }
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
        /// Also ask each upstream one question (all at once, each within [upstream] timeout)
        /// and say which answer; exit code 1 when none does.
        #[arg(long)]
        probe: bool,
        /// Exit 1 when a category some profile blocks has no names in any list.
        #[arg(long)]
        strict: bool,
    },
    /// List the categories: what each holds, its other names in lists, the presets that block
    /// it, and (with --config) how many names the config's lists load into each.
    Categories {
        /// A config file whose lists to count (default: the vocabulary alone).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Explain what kidsafe would answer for NAME asked by a client, and why (offline).
    Explain {
        /// The name to explain, or a web address (only its host counts).
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
        /// Only this profile (one of the config's, or one that has statistics).
        #[arg(long)]
        profile: Option<String>,
    },
    /// First run: set the LAN addresses, the parents' devices and the profile of unknown
    /// devices, check, write (comments kept), and print the next steps for this router.
    Setup {
        /// The config file to write (created from --template when missing).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The example config to start from when --config does not exist.
        #[arg(long, default_value = crate::setup::TEMPLATE)]
        template: PathBuf,
        /// An address to answer on (repeatable; default: this machine's LAN addresses, port
        /// 53, and 127.0.0.1:53).
        #[arg(long)]
        listen: Vec<std::net::SocketAddr>,
        /// The parents' devices: MAC addresses, IP addresses or networks (comma-separated or
        /// repeated).
        #[arg(long, value_delimiter = ',')]
        parents: Vec<String>,
        /// The profile of the parents' devices (default: the first that does not block adult
        /// content).
        #[arg(long)]
        parents_profile: Option<String>,
        /// The profile of devices no rule names (default: the config's [defaults] profile).
        #[arg(long)]
        unknown_profile: Option<String>,
        /// Ask nothing: take what is detected for anything no flag gives.
        #[arg(long)]
        yes: bool,
    },
    /// Check the config like `check`, then ask the daemon at PID to reload it (SIGHUP); the
    /// unit's `ExecReload=`, which needs no `kill` binary. Exit code 2 on an invalid config.
    Reload {
        /// The config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The daemon's process id (systemd: `$MAINPID`).
        #[arg(long)]
        pid: u32,
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
    /// Create a signing key pair: DIR/feed.key (secret, unencrypted, mode 0600) and DIR/feed.pub;
    /// never replaces an existing key (to rotate, see docs/feed.md).
    Keygen(FeedKeygenArgs),
    /// Publish the lists of a directory as a signed feed, ready to copy to a web server.
    Publish(FeedPublishArgs),
    /// Build a feed from a sources file (lists per category, corrections, helpline guard) and
    /// publish it signed, as `publish` does; docs/feed-operator.md.
    Build(FeedBuildArgs),
}

/// What `feed build` and `feed publish` both take: the signing key, the feed directory, and
/// the manifest's lifetimes.
#[derive(clap::Args)]
struct SigningArgs {
    /// The secret key file (from `kidsafe feed keygen` or `minisign -G -W`).
    #[arg(long)]
    key: PathBuf,
    /// The feed directory: reads the previous manifest.json, writes the new one and by-hash/.
    #[arg(long)]
    out: PathBuf,
    /// How long clients accept this manifest, e.g. "7d"; re-publish before it runs out.
    #[arg(long, default_value = "7d")]
    expires: String,
    /// The shortest poll interval clients should use, e.g. "1h".
    #[arg(long, default_value = "1h")]
    min_poll: String,
}

#[derive(clap::Args)]
struct FeedBuildArgs {
    #[command(flatten)]
    signing: SigningArgs,
    /// The sources file (TOML): [[list]] category and files, [never_block], [[remove]], [[add]].
    #[arg(long)]
    sources: PathBuf,
    /// The feed id (default: the sources file's feed_id, then the previous manifest's).
    #[arg(long)]
    feed_id: Option<String>,
}

#[derive(clap::Args)]
struct FeedKeygenArgs {
    /// The directory to write feed.key and feed.pub into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct FeedPublishArgs {
    #[command(flatten)]
    signing: SigningArgs,
    /// The directory of lists: <category>.txt (hosts, plain or ||name^ lines), and allow.txt.
    #[arg(long)]
    lists: PathBuf,
    /// The feed id, e.g. "xx.gov.parental" (required on the first publication).
    #[arg(long)]
    feed_id: Option<String>,
    /// Transfer encoding of the list files (default: gzip above 64 KiB, identity below).
    #[arg(long, value_enum)]
    encoding: Option<FeedEncoding>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FeedEncoding {
    Gzip,
    Identity,
}

/// The command-line definition, for generated documentation (`examples/man.rs` writes the
/// manual pages from it).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Parses the command line, runs the command, and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, CliError> {
    let done = |text: String| {
        out!("{text}");
        Ok(ExitCode::SUCCESS)
    };
    match command {
        Command::Run { config } => match daemon::run(&config) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(DaemonError::Build(e)) => Err(CliError::usage(format!(
                "{e}\nkidsafe did not start: fix the config or lists above, then run `kidsafe check`"
            ))),
            Err(e) => Err(CliError::failed(e)),
        },
        Command::Check {
            config,
            probe,
            strict,
        } => {
            let runtime = crate::reload::load_offline(&config).map_err(CliError::usage)?;
            listen_addresses_are_here(&config, &runtime.config)?;
            out!(
                "{}",
                crate::reload::summary::check_report(&runtime, &config)
            );
            let empty = runtime.categories_without_lists();
            if strict && !empty.is_empty() {
                return Err(CliError::failed(format!(
                    "--strict: {} blocked by a profile but listed nowhere: {}",
                    if empty.len() == 1 {
                        "this category is"
                    } else {
                        "these categories are"
                    },
                    empty.join(", ")
                )));
            }
            if probe {
                probe_upstreams(&runtime.config)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Categories { config } => {
            let runtime = match config {
                Some(path) => Some(crate::reload::load_offline(&path).map_err(CliError::usage)?),
                None => None,
            };
            let loaded = runtime.as_ref().map(|r| r.lists.names_per_category());
            done(crate::config::presets::categories_report(loaded.as_ref()))
        }
        Command::Setup {
            config,
            template,
            listen,
            parents,
            parents_profile,
            unknown_profile,
            yes,
        } => {
            use std::io::IsTerminal as _;
            let opts = crate::setup::SetupOptions {
                config,
                template,
                listen,
                parents,
                parents_profile,
                unknown_profile,
                yes,
            };
            let interactive = !yes && std::io::stdin().is_terminal();
            let said = crate::setup::run(&opts, &mut std::io::stdin().lock(), interactive)
                .map_err(|e| match e {
                    crate::setup::SetupError::Usage(m) => CliError::usage(m),
                    crate::setup::SetupError::Failed(m) => CliError::failed(m),
                })?;
            done(said)
        }
        Command::Reload { config, pid } => {
            crate::reload::load_offline(&config).map_err(CliError::usage)?;
            crate::reload::request_reload(pid).map_err(CliError::failed)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { config } => {
            let config = load_config(&config)?;
            let status =
                crate::reload::status::read(&config.server.state_dir).map_err(CliError::failed)?;
            done(crate::reload::status::render(&status))
        }
        Command::Explain {
            name,
            client,
            at,
            config,
        } => {
            let name = crate::policy::explain::parse_name(&name).map_err(CliError::usage)?;
            let runtime = crate::reload::load_offline(&config).map_err(CliError::usage)?;
            let tz = runtime.policy.timezone().clone();
            let at = match at {
                None => jiff::Timestamp::now(),
                Some(text) => {
                    crate::policy::explain::parse_at(&text, tz).map_err(CliError::usage)?
                }
            };
            let server = &runtime.config.server;
            let overrides = crate::live::read_overrides(&server.state_dir).unwrap_or_default();
            let neighbours = crate::live::read_neighbours(&server.neighbour_tables);
            let subject = crate::policy::explain::Subject {
                config: &runtime.config,
                policy: &runtime.policy,
                lists: &runtime.lists,
                overrides: &overrides,
                neighbours: &neighbours,
            };
            let lines = crate::policy::explain::explain(&subject, &name, client, at);
            done(lines.join("\n") + "\n")
        }
        Command::Grant {
            profile,
            allow,
            duration,
            config,
        } => add_override(&config, &profile, Some(&allow), &duration),
        Command::Pause {
            profile,
            duration,
            config,
        } => add_override(&config, &profile, None, &duration),
        Command::Stats {
            config,
            days,
            profile,
        } => {
            use crate::stats::report::{ReportConfig, ReportError, for_state_dir};
            let config = load_config(&config)?;
            let report = ReportConfig {
                state_dir: &config.server.state_dir,
                profiles: config.profiles.iter().map(|p| p.name.as_str()).collect(),
                enabled: config.stats.enabled,
                flush: config.stats.flush,
            };
            let text = for_state_dir(
                &report,
                std::time::SystemTime::now(),
                days.max(1),
                profile.as_deref(),
            )
            .map_err(|e| match e {
                ReportError::UnknownProfile(m) => CliError::usage(m),
                ReportError::Failed(m) => CliError::failed(m),
            })?;
            done(text)
        }
        Command::Feed(FeedCommand::Update { config }) => {
            let config = load_config(&config)?;
            Ok(ExitCode::from(crate::feed::oneshot::update(&config)))
        }
        Command::Feed(FeedCommand::Status { config }) => {
            let config = load_config(&config)?;
            done(crate::feed::oneshot::status(&config).map_err(CliError::usage)?)
        }
        Command::Sources(SourcesCommand::Update { config, index }) => {
            let config = load_config(&config)?;
            Ok(ExitCode::from(crate::feed::oneshot::sources_update(
                &config, &index,
            )))
        }
        Command::Feed(FeedCommand::Keygen(args)) => {
            done(publish::keygen_report(&args.out).map_err(CliError::failed)?)
        }
        Command::Feed(FeedCommand::Publish(args)) => feed_publish(&args),
        Command::Feed(FeedCommand::Build(args)) => feed_build(&args),
    }
}

/// `check` fails when `run` could not bind: a `listen` address that is not this machine's.
fn listen_addresses_are_here(path: &Path, config: &Config) -> Result<(), CliError> {
    let foreign = crate::server::foreign_listen_addresses(&config.server.listen);
    if foreign.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = foreign.iter().map(ToString::to_string).collect();
    Err(CliError::usage(format!(
        "{}: server.listen: {} {} not an address of this machine, so kidsafe could not answer \
         there; use one of its addresses (`ip -brief address` lists them) or \"0.0.0.0:53\"",
        path.display(),
        list.join(", "),
        if list.len() == 1 { "is" } else { "are" }
    )))
}

/// `kidsafe check --probe`: asks each upstream one question and prints which answer; an
/// error (exit code 1) when none does.
fn probe_upstreams(config: &Config) -> Result<(), CliError> {
    use crate::dns::upstream::probe;
    let tls = crate::dns::upstream::tls_for(config)
        .map_err(|e| CliError::usage(format!("{}: {}: {}", e.at, e.key, e.message)))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let results = rt.block_on(probe::probe(&config.upstream, tls));
    let (text, answering) = probe::render(&results, config.upstream.timeout);
    out!("\n{text}");
    if answering == 0 {
        return Err(CliError::failed(
            "no upstream answers from this machine, so every name kidsafe forwards would get \
             SERVFAIL: check the network, or choose other [upstream] servers",
        ));
    }
    Ok(())
}

/// Loads and checks the config, or says why not (exit code 2).
fn load_config(path: &Path) -> Result<Config, CliError> {
    Config::load(path).map_err(CliError::usage)
}

fn add_override(
    path: &Path,
    profile: &str,
    allow: Option<&str>,
    duration: &str,
) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let said = crate::live::add_override(&config, profile, allow, duration, jiff::Timestamp::now())
        .map_err(|e| match e {
            crate::live::OverrideError::Usage(m) => CliError::usage(m),
            crate::live::OverrideError::State(m) => CliError::failed(m),
        })?;
    out!("{said}\n");
    Ok(ExitCode::SUCCESS)
}

/// `--expires` / `--min-poll`: a duration of at least a second.
fn parse_duration(flag: &str, text: &str) -> Result<std::time::Duration, CliError> {
    match humantime::parse_duration(text) {
        Ok(d) if d.as_secs() >= 1 => Ok(d),
        _ => Err(CliError::usage(format!(
            "--{flag} {text:?}: write a duration, e.g. \"7d\" or \"1h\""
        ))),
    }
}

/// The secret key file, as `feed publish` and `feed build` read it.
fn read_secret_key(path: &Path) -> Result<SecretKey, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    SecretKey::from_file_text(&text)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

fn feed_build(args: &FeedBuildArgs) -> Result<ExitCode, CliError> {
    let opts = crate::feed::build::BuildOptions {
        sources: args.sources.clone(),
        out_dir: args.signing.out.clone(),
        feed_id: args.feed_id.clone(),
        expires_in: parse_duration("expires", &args.signing.expires)?,
        min_poll: parse_duration("min-poll", &args.signing.min_poll)?,
        now: jiff::Timestamp::now(),
    };
    let key = read_secret_key(&args.signing.key)?;
    let summary = crate::feed::build::build(&key, &opts).map_err(|e| match e {
        crate::feed::build::BuildError::Sources { .. } => CliError::usage(e),
        _ => CliError::failed(e),
    })?;
    out!("{}", summary.render());
    Ok(ExitCode::SUCCESS)
}

fn feed_publish(args: &FeedPublishArgs) -> Result<ExitCode, CliError> {
    let expires_in = parse_duration("expires", &args.signing.expires)?;
    let min_poll = parse_duration("min-poll", &args.signing.min_poll)?;
    let key = read_secret_key(&args.signing.key)?;
    let opts = publish::PublishOptions {
        lists_dir: args.lists.clone(),
        out_dir: args.signing.out.clone(),
        feed_id: args.feed_id.clone(),
        expires_in,
        min_poll,
        encoding: args.encoding.map(|e| match e {
            FeedEncoding::Gzip => Encoding::Gzip,
            FeedEncoding::Identity => Encoding::Identity,
        }),
        now: jiff::Timestamp::now(),
    };
    let summary = publish::publish(&key, &opts).map_err(CliError::failed)?;
    out!("{}", summary.render());
    Ok(ExitCode::SUCCESS)
}
