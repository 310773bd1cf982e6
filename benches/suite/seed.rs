//! Large starting states, written straight into a journal the server then recovers from:
//! thousands of agents over gRPC would each cost a password hash, which is slow on purpose.
//! The events come from the rules themselves (`World`), as the engine would have journaled
//! them.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use switchboard::domain::agents::PasswordHashString;
use switchboard::domain::{Actor, Event, Record};
use switchboard::store::{Journal, SqliteJournal};

use crate::world::World;

/// Events written per journal transaction while seeding.
const CHUNK: usize = 10_000;

/// A real Argon2id hash of `password` at the smallest cost Argon2 allows. Servers check a
/// password with the parameters stored in its hash, so agents seeded with it log in in
/// microseconds; hashes the server makes itself keep the default cost.
pub fn cheap_hash(password: &str) -> PasswordHashString {
    let params = Params::new(Params::MIN_M_COST, Params::MIN_T_COST, 1, None)
        .expect("the minimum parameters are valid");
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .expect("hashing works")
        .to_string();
    serde_json::from_value(serde_json::Value::String(phc)).expect("a PHC string is a hash")
}

/// A `World` whose events go into a journal in chunks, on today's clock (so that the timers
/// the server recovers are due when they should be).
pub struct Seeder {
    pub world: World,
    journal: SqliteJournal,
    revision: u64,
}

impl Seeder {
    pub fn new(data_dir: &Path, password: &str) -> Self {
        let mut world = World::new();
        world.now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        world.password_hash = cheap_hash(password);
        Self {
            world,
            journal: SqliteJournal::open(data_dir).expect("the journal opens"),
            revision: 0,
        }
    }

    /// Writes what the world did since the last call, when it is a chunk's worth.
    pub fn flush_some(&mut self) {
        if self.world.events.len() >= CHUNK {
            self.flush();
        }
    }

    /// Moves the world's new events into the journal as the next revisions.
    pub fn flush(&mut self) {
        let now = self.world.now;
        let records: Vec<Record> = self
            .world
            .events
            .drain(..)
            .map(|event: Event| {
                self.revision += 1;
                Record {
                    revision: self.revision,
                    time_ms: now,
                    // Seeds stand for what the engine would have journaled on its own.
                    actor: Actor::Engine,
                    event,
                }
            })
            .collect();
        let refs: Vec<&Record> = records.iter().collect();
        self.journal
            .append(&refs, &[], &[])
            .expect("the journal takes the batch");
    }

    /// Flushes and closes the journal (the server needs its directory); returns the revision.
    pub fn finish(mut self) -> u64 {
        self.flush();
        self.journal.close().expect("the journal closes");
        self.revision
    }
}
