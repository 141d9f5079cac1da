//! What each fuzz target checks, as plain functions of the input bytes.
//!
//! The targets in `fuzz_targets/` are one-line wrappers around these, and the main package's
//! `tests/integration/fuzz_corpus.rs` includes the same files to replay the committed seeds
//! and regression inputs on the stable toolchain, without libFuzzer. So each module here must
//! stand alone: it may use `kidsafe`, hickory, tokio, tempfile and async-trait, never
//! `crate::`.

pub mod config;
pub mod feed_files;
pub mod handler;
pub mod list_line;
