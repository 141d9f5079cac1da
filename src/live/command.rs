//! `kidsafe grant` and `kidsafe pause`: a time-limited override written to the overrides file,
//! which the running daemon's ticker applies within a second.

use jiff::Timestamp;

use crate::blocklist::parse::{Normalised, normalise};
use crate::config::Config;
use crate::policy::live::{Grant, Pause};

/// Why an override was not written.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    /// The request itself is wrong (unknown profile, bad duration or name).
    #[error("{0}")]
    Usage(String),
    /// The overrides file could not be read or written.
    #[error("{0}")]
    State(String),
}

/// Adds a grant of `allow` (or, without one, a pause) for `profile`, lasting `duration` from
/// `now`; returns the sentence that tells the parent what happens.
pub fn add_override(
    config: &Config,
    profile: &str,
    allow: Option<&str>,
    duration: &str,
    now: Timestamp,
) -> Result<String, OverrideError> {
    if config.profile_index(profile).is_none() {
        let names: Vec<&str> = config.profiles.iter().map(|p| p.name.as_str()).collect();
        return Err(OverrideError::Usage(format!(
            "no profile \"{profile}\" in {}; profiles: {}",
            config.path.display(),
            names.join(", ")
        )));
    }
    let span = match humantime::parse_duration(duration) {
        Ok(d) if d.as_secs() >= 60 && d.as_secs() <= 7 * 86_400 => d,
        _ => {
            return Err(OverrideError::Usage(format!(
                "--for {duration:?}: write a duration between 1m and 7d, e.g. \"30m\" or \"2h\""
            )));
        }
    };
    let until =
        now + jiff::SignedDuration::from_secs(i64::try_from(span.as_secs()).unwrap_or(i64::MAX));
    let dir = &config.server.state_dir;
    let mut overrides = super::read_overrides(dir).map_err(OverrideError::State)?;
    overrides.prune(now);
    let what = match allow {
        Some(name) => {
            let name = match normalise(name) {
                Ok(Normalised::Name(n)) => n.into_owned(),
                _ => {
                    return Err(OverrideError::Usage(format!(
                        "--allow {name:?} is not a domain name"
                    )));
                }
            };
            overrides.grants.push(Grant {
                profile: profile.to_string(),
                allow: name.clone(),
                until,
            });
            format!("{name} is allowed for profile {profile}")
        }
        None => {
            overrides.pauses.push(Pause {
                profile: profile.to_string(),
                until,
            });
            format!("profile {profile} is paused (only allowed names resolve)")
        }
    };
    super::write_overrides(&overrides, dir).map_err(|e| {
        OverrideError::State(format!("cannot write overrides in {}: {e}", dir.display()))
    })?;
    let local = until.to_zoned_datetime(config.server.timezone.clone());
    Ok(format!(
        "{what} until {}; the running daemon applies it within a second",
        local.strftime("%Y-%m-%d %H:%M %Z")
    ))
}
