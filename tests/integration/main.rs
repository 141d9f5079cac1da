//! Integration tests: the daemon on loopback ports, a real upstream (an in-process hickory
//! authority), real DNS messages over real UDP and TCP sockets, and the binary as users run it.
//! Only 127.0.0.0/8 addresses, ephemeral ports, bounded waits.

mod cli;
mod encrypted;
mod feed;
mod feed_minisign;
mod feed_server;
mod filtering;
mod fuzz_corpus;
mod harness;
mod profiles;
mod protection;
mod reload;
mod resilience;
mod service;
mod tcp;
mod wire;
