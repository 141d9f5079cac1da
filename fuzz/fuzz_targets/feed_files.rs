#![no_main]
//! `cargo fuzz run feed_files`: see fuzz/README.md and the checks in fuzz/src/feed_files.rs.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kidsafe_fuzz::feed_files::check(data));
