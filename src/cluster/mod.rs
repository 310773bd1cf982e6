//! What the nodes of a cluster share through PostgreSQL, beside the journal: the leader's
//! lease, the wake-ups that tell followers the journal grew, and the token signing key.

pub mod keys;
pub mod lease;
pub mod wakeup;
