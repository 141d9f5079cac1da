//! De-duplication of identical concurrent cache misses: the first query for a question asks the
//! upstream, the ones that arrive while it waits share its outcome. A popular name expiring
//! under load, or a client retrying, then costs one upstream query instead of hundreds.
//!
//! Invariants: the map holds one entry per question being resolved, so it is bounded by the
//! requests in flight (`server.max_in_flight`); the entry is removed when the leader finishes
//! *or is dropped* (a cancelled leader lets its followers fall back rather than wait forever).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::cache::{Answer, CacheKey};

/// What the leader got: the answer, or `None` when the upstreams failed.
pub type Outcome = Option<Arc<Answer>>;

type Slot = watch::Receiver<Option<Outcome>>;

/// Questions being resolved upstream right now.
#[derive(Default)]
pub struct Coalescer {
    waiting: Mutex<HashMap<CacheKey, Slot>>,
}

/// Whether this query asks the upstream or waits for another that does.
pub enum Role {
    /// Ask the upstream, then [`Leader::finish`].
    Leader(Leader),
    /// Wait with [`Follower::outcome`].
    Follower(Follower),
}

impl Coalescer {
    /// Joins the resolution of `key`: the first caller leads, later ones follow until the
    /// leader finishes. The leader holds the coalescer, so it may finish in another task (a
    /// prefetch in the background).
    pub fn join(self: &Arc<Self>, key: &CacheKey) -> Role {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = waiting.get(key) {
            return Role::Follower(Follower(slot.clone()));
        }
        let (tx, rx) = watch::channel(None);
        waiting.insert(key.clone(), rx);
        Role::Leader(Leader {
            coalescer: Arc::clone(self),
            key: key.clone(),
            tx,
        })
    }

    /// Questions being resolved now.
    pub fn len(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no question is being resolved.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remove(&self, key: &CacheKey) {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// The query that asks the upstream for everyone.
pub struct Leader {
    coalescer: Arc<Coalescer>,
    key: CacheKey,
    tx: watch::Sender<Option<Outcome>>,
}

impl Leader {
    /// Hands the outcome to every follower and ends the shared resolution.
    pub fn finish(self, outcome: Outcome) {
        // Remove first: a query arriving after this point finds the cache (or leads anew),
        // never a finished slot.
        self.coalescer.remove(&self.key);
        self.tx.send_replace(Some(outcome));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Already removed by `finish`, or the leader was cancelled: either way the slot goes,
        // and followers of a cancelled leader see the sender dropped.
        if self.tx.borrow().is_none() {
            self.coalescer.remove(&self.key);
        }
    }
}

/// A query waiting for a leader's outcome.
pub struct Follower(Slot);

impl Follower {
    /// The leader's outcome; `None` if the upstreams failed or the leader was cancelled.
    pub async fn outcome(mut self) -> Outcome {
        match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().flatten(),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode};
    use hickory_proto::rr::{LowerName, Name, RecordType};

    fn key(n: &str) -> CacheKey {
        CacheKey {
            name: LowerName::from(Name::from_ascii(n).expect("name")),
            qtype: RecordType::A,
            dnssec_ok: false,
            checking_disabled: false,
        }
    }

    fn answer() -> Arc<Answer> {
        let m = Message::new(1, MessageType::Response, OpCode::Query);
        Arc::new(Answer::from_upstream(m, 60, 60))
    }

    #[tokio::test]
    async fn followers_share_the_leaders_outcome_and_the_slot_is_freed() {
        let c = Arc::new(Coalescer::default());
        let Role::Leader(leader) = c.join(&key("a.test.")) else {
            panic!("first caller leads");
        };
        let Role::Follower(f1) = c.join(&key("a.test.")) else {
            panic!("second caller follows");
        };
        let Role::Leader(other) = c.join(&key("b.test.")) else {
            panic!("another question leads on its own");
        };
        assert_eq!(c.len(), 2);
        let waiting = tokio::spawn(f1.outcome());
        let shared = answer();
        leader.finish(Some(Arc::clone(&shared)));
        let got = waiting.await.expect("join").expect("an answer");
        assert!(Arc::ptr_eq(&got, &shared));
        other.finish(None);
        assert!(c.is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_leader_releases_its_followers() {
        let c = Arc::new(Coalescer::default());
        let Role::Leader(leader) = c.join(&key("a.test.")) else {
            panic!("leads");
        };
        let Role::Follower(f) = c.join(&key("a.test.")) else {
            panic!("follows");
        };
        drop(leader);
        assert!(f.outcome().await.is_none());
        assert!(c.is_empty());
        assert!(matches!(c.join(&key("a.test.")), Role::Leader(_)));
    }
}
