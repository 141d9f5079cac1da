#![no_main]
//! `cargo fuzz run list_line`: see fuzz/README.md and the checks in fuzz/src/list_line.rs.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kidsafe_fuzz::list_line::check(data));
