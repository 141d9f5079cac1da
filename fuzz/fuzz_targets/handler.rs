#![no_main]
//! `cargo fuzz run handler`: see fuzz/README.md and the checks in fuzz/src/handler.rs.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kidsafe_fuzz::handler::check(data));
