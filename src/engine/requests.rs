//! Idempotency: the answers the engine gave to requests that carried an id, kept for a window
//! so that a retry (after a lost reply, or a restart) gets the first answer and changes
//! nothing, and a different request reusing the id is refused.

use std::collections::{HashMap, VecDeque};

use tracing::warn;

use super::handle::{Committed, RequestKey};
use crate::domain::{DomainError, Millis};
use crate::store::RememberedRequest;

struct Remembered {
    fingerprint: String,
    answer: Committed,
    time_ms: Millis,
}

#[derive(Default)]
pub(super) struct RequestLedger {
    by_id: HashMap<String, Remembered>,
    /// Ids in the order they were remembered, to forget them when the window passes.
    order: VecDeque<(Millis, String)>,
}

impl RequestLedger {
    /// The ledger as the journal kept it; an answer this server cannot read is skipped.
    pub fn recover(stored: Vec<RememberedRequest>) -> Self {
        let mut ledger = Self::default();
        for request in stored {
            match serde_json::from_str::<Committed>(&request.answer) {
                Ok(answer) => ledger.insert(
                    request.request_id,
                    Remembered {
                        fingerprint: request.fingerprint,
                        answer,
                        time_ms: request.time_ms,
                    },
                ),
                Err(e) => {
                    warn!(request_id = %request.request_id, error = %e, "unreadable remembered answer");
                }
            }
        }
        ledger
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The answer for a request seen before: the first answer if it is the same request,
    /// ALREADY_EXISTS if the id was used for another. `None` for an id not seen.
    pub fn answer(&self, key: &RequestKey) -> Option<Result<Committed, DomainError>> {
        let seen = self.by_id.get(&key.id)?;
        Some(if seen.fingerprint == key.fingerprint {
            Ok(seen.answer.clone())
        } else {
            Err(DomainError::AlreadyExists(format!(
                "request_id '{}' was already used for a different request",
                key.id
            )))
        })
    }

    /// Remembers a first answer; returns what the journal must store with the batch.
    pub fn remember(
        &mut self,
        key: RequestKey,
        answer: &Committed,
        now: Millis,
    ) -> RememberedRequest {
        let stored = RememberedRequest {
            request_id: key.id.clone(),
            fingerprint: key.fingerprint.clone(),
            // `Committed` is plain data with string keys: serialising it cannot fail.
            answer: serde_json::to_string(answer).unwrap_or_default(),
            revision: answer.revision,
            time_ms: now,
        };
        self.insert(
            key.id,
            Remembered {
                fingerprint: key.fingerprint,
                answer: answer.clone(),
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
    }
}
