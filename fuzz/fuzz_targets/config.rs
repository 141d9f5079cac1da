#![no_main]
//! `cargo fuzz run config`: see fuzz/README.md and the checks in fuzz/src/config.rs.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kidsafe_fuzz::config::check(data));
