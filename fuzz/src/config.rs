//! Target `config`: the input is a config file. `Config::from_source` must never panic, and
//! what it returns must be usable:
//! - an error lists at least one problem, and every problem points into the file: line ≥ 1,
//!   column ≥ 1, and no further than one past the end of that line (editors jump there);
//! - the error renders (`path:line:column: key: message`);
//! - a valid config is consistent: its default profile and every client's profile exist,
//!   it listens somewhere and has an upstream, and its paths are absolute (resolved against
//!   the config's directory);
//! - compiling its profiles against the built-in categories (`Policy::compile`, as a runtime
//!   build does) does not panic, and its problems point into the file too.

use std::path::Path;

use kidsafe::config::{Config, ConfigError, Problem};
use kidsafe::lists::load_dirs;
use kidsafe::policy::Policy;

/// Where the fuzzed text "comes from": only used for relative paths and messages.
const PATH: &str = "/nonexistent/kidsafe-fuzz/kidsafe.toml";

/// Runs the checks on one input; panics on a violation.
pub fn check(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return; // `Config::load` reads a String: non-UTF-8 never reaches the parser
    };
    let path = Path::new(PATH);
    match Config::from_source(path, source) {
        Err(error) => check_error(source, &error),
        Ok(config) => {
            assert!(
                config.default_profile < config.profiles.len(),
                "default profile out of range"
            );
            for client in &config.clients {
                assert!(
                    client.profile < config.profiles.len(),
                    "client profile out of range"
                );
            }
            assert!(
                !config.server.listen.is_empty(),
                "valid config listens nowhere"
            );
            assert!(
                !config.upstream.servers.is_empty(),
                "valid config has no upstream"
            );
            assert!(config.server.state_dir.is_absolute(), "relative state_dir");
            for dir in &config.list_dirs {
                assert!(dir.is_absolute(), "relative list dir {}", dir.display());
            }
            // The built-in vocabulary only: a list directory of the fuzzed config does not exist.
            let lists = load_dirs(&[]).expect("no directories load");
            if let Err(error) = Policy::compile(&config, &lists) {
                check_error(source, &error);
            }
        }
    }
}

fn check_error(source: &str, error: &ConfigError) {
    let problems = error.problems();
    assert!(!problems.is_empty(), "an error without problems: {error}");
    for problem in problems {
        check_location(source, problem);
    }
    let rendered = error.to_string();
    assert!(
        rendered.starts_with(PATH),
        "rendered error does not name the file: {rendered}"
    );
}

fn check_location(source: &str, problem: &Problem) {
    let at = problem.at;
    assert!(
        at.line >= 1 && at.column >= 1,
        "problem at line {} column {} (1-based expected): {problem:?}",
        at.line,
        at.column
    );
    // `lines()` drops a final empty line; a problem may point at the end of the file.
    let line = source.split('\n').nth(at.line - 1).unwrap_or_else(|| {
        panic!(
            "problem at line {} of a {}-line file: {problem:?}",
            at.line,
            source.split('\n').count()
        )
    });
    let width = line.chars().count();
    assert!(
        at.column <= width + 1,
        "problem at column {} of a {width}-character line: {problem:?}",
        at.column
    );
}
