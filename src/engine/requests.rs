//! Idempotency: the answers the engine gave to requests that carried an id, kept for a window
//! so that a retry (after a lost reply, or a restart) gets the first answer and changes
//! nothing, and a different request reusing the id is refused. Ids are scoped per principal:
//! one caller's id never answers, or blocks, another's request.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::handle::{Committed, RequestKey};
use crate::domain::{Actor, DomainError, Millis};
use crate::store::RememberedRequest;

/// A first answer, kept as the journal stores it: a retry reads it back as its command's
/// answer type (the fingerprint names the method, so only the same command can match it).
struct Remembered {
    fingerprint: String,
    answer: String,
    time_ms: Millis,
}

pub(super) struct RequestLedger {
    by_id: HashMap<String, Remembered>,
    /// Ids in the order they were remembered, to forget them when the window passes.
    order: VecDeque<(Millis, String)>,
    /// At most this many answers are kept, however young: past it the oldest go first, so
    /// that a burst of ids shortens the window instead of growing the heap without end.
    max: usize,
    /// Whether the cap has cut the window short yet (said once in the log).
    capped: bool,
}

impl RequestLedger {
    /// The ledger as the journal kept it, holding at most `max` answers.
    pub fn recover(stored: Vec<RememberedRequest>, max: usize) -> Self {
        let mut ledger = Self {
            by_id: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            capped: false,
        };
        for request in stored {
            ledger.insert(
                request.request_id,
                Remembered {
                    fingerprint: request.fingerprint,
                    answer: request.answer,
                    time_ms: request.time_ms,
                },
            );
        }
        ledger
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The answer for a request seen before: the first answer if it is the same request,
    /// ALREADY_EXISTS if the id was used for another. `None` for an id not seen.
    pub fn answer<A: DeserializeOwned>(
        &self,
        owner: &Actor,
        key: &RequestKey,
    ) -> Option<Result<Committed<A>, DomainError>> {
        let seen = self.by_id.get(&scoped_id(owner, &key.id))?;
        Some(if seen.fingerprint == key.fingerprint {
            serde_json::from_str(&seen.answer).map_err(|e| {
                // Only an answer written by a server of another version can fail here.
                DomainError::Internal(format!(
                    "the remembered answer to request_id '{}' is unreadable: {e}",
                    key.id
                ))
            })
        } else {
            Err(DomainError::AlreadyExists(format!(
                "request_id '{}' was already used for a different request",
                key.id
            )))
        })
    }

    /// Remembers a first answer; returns what the journal must store with the batch.
    pub fn remember<A: Serialize>(
        &mut self,
        owner: &Actor,
        key: RequestKey,
        answer: &Committed<A>,
        now: Millis,
    ) -> RememberedRequest {
        // Answers are plain data with string keys: serialising them cannot fail.
        let serialised = serde_json::to_string(answer).unwrap_or_default();
        let id = scoped_id(owner, &key.id);
        let stored = RememberedRequest {
            request_id: id.clone(),
            fingerprint: key.fingerprint.clone(),
            answer: serialised.clone(),
            revision: answer.revision,
            time_ms: now,
        };
        self.insert(
            id,
            Remembered {
                fingerprint: key.fingerprint,
                answer: serialised,
                time_ms: now,
            },
        );
        stored
    }

    /// Forgets ids remembered before `cutoff`.
    pub fn forget_before(&mut self, cutoff: Millis) {
        while let Some((at, _)) = self.order.front() {
            if *at >= cutoff {
                break;
            }
            if let Some((at, id)) = self.order.pop_front()
                && self.by_id.get(&id).is_some_and(|r| r.time_ms == at)
            {
                self.by_id.remove(&id);
            }
        }
    }

    fn insert(&mut self, id: String, remembered: Remembered) {
        self.order.push_back((remembered.time_ms, id.clone()));
        self.by_id.insert(id, remembered);
        while self.by_id.len() > self.max {
            let Some((at, id)) = self.order.pop_front() else {
                break;
            };
            if self.by_id.get(&id).is_some_and(|r| r.time_ms == at) {
                self.by_id.remove(&id);
                if !self.capped {
                    self.capped = true;
                    tracing::warn!(
                        max = self.max,
                        "request ids arrive faster than the window can keep them: the oldest \
                         are forgotten early (raise --max-remembered-requests)"
                    );
                }
            }
        }
    }
}

/// The ledger's key: the principal, then the caller's id. A newline cannot occur in an actor
/// (ids are checked), so two principals' ids never collide.
fn scoped_id(owner: &Actor, request_id: &str) -> String {
    format!("{owner}\n{request_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> RequestKey {
        RequestKey {
            id: id.into(),
            fingerprint: format!("fingerprint of {id}"),
        }
    }

    #[test]
    fn past_its_cap_the_ledger_forgets_the_oldest_first() {
        let mut ledger = RequestLedger::recover(Vec::new(), 2);
        let owner = Actor::Engine;
        for (at, id) in [(1, "a"), (2, "b"), (3, "c")] {
            let answer = Committed {
                answer: id.to_owned(),
                revision: at,
            };
            ledger.remember(&owner, key(id), &answer, at);
        }
        assert_eq!(ledger.len(), 2);
        assert!(ledger.answer::<String>(&owner, &key("a")).is_none());
        for id in ["b", "c"] {
            let answer = ledger.answer::<String>(&owner, &key(id)).unwrap().unwrap();
            assert_eq!(answer.answer, id);
        }
    }
}
