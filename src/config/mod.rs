//! The TOML configuration, by stage (as ripgrep splits raw and validated arguments):
//!
//! - [`raw`]: the schema as written (the `*Config` serde structs, unknown keys rejected at every
//!   level) and its defaults;
//! - [`settings`]: the validated [`Config`] and its settings types;
//! - `check`: the checker that turns one into the other, per section (server, upstream, cache,
//!   feed and sources in `check/server.rs`; profiles, schedules and clients in
//!   `check/profiles.rs`);
//! - [`schedule`], [`presets`] and the value types here ([`Mac`], [`YouTube`]): values a config
//!   holds, which the policy evaluates.
//!
//! [`Config::load`] turns a file into a validated [`Config`] or a [`ConfigError`] that lists
//! every problem with file, line, column and key path. Checks that need the lists too (does a
//! category exist?) happen when the runtime is built, using the [`Located`] values kept here.
//! Relative paths resolve against the directory of the config file, never the working directory.

mod check;
pub mod edit;
mod error;
pub mod presets;
pub mod raw;
pub mod schedule;
pub mod settings;
pub mod suggest;
mod values;

pub use check::{parse_network, parse_upstream};
pub use error::{ConfigError, Location, Problem, Problems, key_path_at};
pub use raw::*;
pub use settings::*;
pub use values::{IP_NEIGH, Mac, YouTube, parse_mac};

#[cfg(test)]
mod tests;
