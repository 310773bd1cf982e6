//! Presence: which registered clients are still there. A client is present while it has an
//! open stream (its `Connect` stream, or a watch that names it) and for a grace period after
//! its last stream closed or its last call. Past that its lease expires and the state lets it
//! go. Presence is not journaled: after a restart every client starts a fresh grace period, in
//! which its desktop reconnects.

use std::collections::{BTreeSet, HashMap};

use super::events::Millis;
use super::ids::ClientId;

/// Identifies one open stream of a client, so that a late close of a replaced stream does
/// not end the lease its replacement holds.
pub type StreamId = u64;

#[derive(Debug, Clone)]
pub struct Presence {
    grace_ms: Millis,
    streams: HashMap<ClientId, BTreeSet<StreamId>>,
    /// When each client without a stream expires.
    expires_at: HashMap<ClientId, Millis>,
    /// The same, ordered by time, for the engine's next wake-up.
    leases: BTreeSet<(Millis, ClientId)>,
}

impl Presence {
    pub fn new(grace_ms: Millis) -> Self {
        Self {
            grace_ms,
            streams: HashMap::new(),
            expires_at: HashMap::new(),
            leases: BTreeSet::new(),
        }
    }

    /// A client registered, or was there when the server started: its grace period begins.
    pub fn arrived(&mut self, client_id: ClientId, now: Millis) {
        self.renew(client_id, now);
    }

    /// A call named the client: its lease starts again, unless a stream holds it anyway.
    pub fn seen(&mut self, client_id: ClientId, now: Millis) {
        if self.streams.get(&client_id).is_none_or(BTreeSet::is_empty) {
            self.renew(client_id, now);
        }
    }

    /// A stream of the client opened: it holds the lease while it stays open.
    pub fn attach(&mut self, client_id: ClientId, stream: StreamId) {
        self.streams.entry(client_id).or_default().insert(stream);
        self.cancel_lease(client_id);
    }

    /// A stream of the client closed; with none left, the grace period begins.
    pub fn detach(&mut self, client_id: ClientId, stream: StreamId, now: Millis) {
        let Some(open) = self.streams.get_mut(&client_id) else {
            return;
        };
        if open.remove(&stream) && open.is_empty() {
            self.streams.remove(&client_id);
            self.renew(client_id, now);
        }
    }

    pub fn has_stream(&self, client_id: ClientId) -> bool {
        self.streams.contains_key(&client_id)
    }

    /// The client is gone for good (unregistered or expired).
    pub fn forget(&mut self, client_id: ClientId) {
        self.streams.remove(&client_id);
        self.cancel_lease(client_id);
    }

    /// The clients whose lease ran out by `now`, in expiry order; they are forgotten.
    pub fn take_expired(&mut self, now: Millis) -> Vec<ClientId> {
        let mut expired = Vec::new();
        while let Some(&(at, client_id)) = self.leases.first() {
            if at > now {
                break;
            }
            self.forget(client_id);
            expired.push(client_id);
        }
        expired
    }

    pub fn next_deadline(&self) -> Option<Millis> {
        self.leases.first().map(|(at, _)| *at)
    }

    fn renew(&mut self, client_id: ClientId, now: Millis) {
        self.cancel_lease(client_id);
        let at = now.saturating_add(self.grace_ms);
        self.expires_at.insert(client_id, at);
        self.leases.insert((at, client_id));
    }

    fn cancel_lease(&mut self, client_id: ClientId) {
        if let Some(at) = self.expires_at.remove(&client_id) {
            self.leases.remove(&(at, client_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u128) -> ClientId {
        ClientId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_stream_holds_the_lease_and_its_close_starts_the_grace_period() {
        let mut presence = Presence::new(1_000);
        presence.arrived(client(1), 0);
        presence.attach(client(1), 7);
        assert_eq!(presence.next_deadline(), None);
        assert!(presence.take_expired(10_000).is_empty());
        presence.detach(client(1), 7, 10_000);
        assert_eq!(presence.next_deadline(), Some(11_000));
        assert!(presence.take_expired(10_999).is_empty());
        assert_eq!(presence.take_expired(11_000), vec![client(1)]);
        assert_eq!(presence.next_deadline(), None);
    }

    #[test]
    fn a_replaced_stream_closing_late_does_not_end_the_lease() {
        let mut presence = Presence::new(1_000);
        presence.arrived(client(1), 0);
        presence.attach(client(1), 1);
        presence.attach(client(1), 2);
        presence.detach(client(1), 1, 500);
        assert!(presence.has_stream(client(1)));
        assert_eq!(presence.next_deadline(), None);
        // Closing a stream twice, or one that never opened, changes nothing.
        presence.detach(client(1), 1, 600);
        presence.detach(client(1), 9, 600);
        assert_eq!(presence.next_deadline(), None);
    }

    #[test]
    fn calls_renew_a_lease_without_a_stream() {
        let mut presence = Presence::new(1_000);
        presence.arrived(client(1), 0);
        presence.arrived(client(2), 0);
        presence.seen(client(1), 900);
        assert_eq!(presence.take_expired(1_000), vec![client(2)]);
        assert_eq!(presence.take_expired(1_899), vec![]);
        assert_eq!(presence.take_expired(1_900), vec![client(1)]);
    }
}
