//! [`ReloadHandle`]: how anything asks for a rebuild without knowing who rebuilds.
//!
//! The reloader (the `reload` module) owns the receiving end; the feed updater, the signal handler
//! and the file watch only hold a handle. A leaf module, so that the feed (which asks) and the
//! reloader (which builds, and reads the feed's snapshots) need not import each other.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Asks the reloader for a reload; cheap, callable from any thread, coalescing.
#[derive(Clone)]
pub struct ReloadHandle {
    wake: Arc<Notify>,
    reason: Arc<Mutex<&'static str>>,
}

impl ReloadHandle {
    /// A handle and the `Notify` its owner waits on; `initial` is the reason given when a
    /// wake-up arrives without one (a file change from the watch).
    pub fn new(initial: &'static str) -> Self {
        Self {
            wake: Arc::new(Notify::new()),
            reason: Arc::new(Mutex::new(initial)),
        }
    }

    /// Requests a reload, saying why (shown in the log and the status file).
    pub fn request(&self, reason: &'static str) {
        if let Ok(mut r) = self.reason.lock() {
            *r = reason;
        }
        self.wake.notify_one();
    }

    /// What the owner waits on (the file watch also wakes it directly).
    pub fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    /// The reason of the last request, leaving `then` in its place.
    pub fn take_reason(&self, then: &'static str) -> &'static str {
        match self.reason.lock() {
            Ok(mut r) => std::mem::replace(&mut *r, then),
            Err(_) => "reload",
        }
    }
}
