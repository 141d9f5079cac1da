//! Integration tests: the daemon on loopback against a real upstream (written next).
