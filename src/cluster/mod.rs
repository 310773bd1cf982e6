//! Several nodes on one PostgreSQL journal (README "Several nodes"): one leads (holds the
//! lease row and applies every command), the others follow the journal, answer reads and
//! watches, and forward the rest to the leader.
//!
//! - `lease`: the lease row; `keeper`: who leads, and telling the engine;
//! - `wakeup`: the journal's notifications; `keys`: the cluster's one signing key;
//! - `node`: joining a cluster at start-up;
//! - `placement`, `route`, `forward`: which calls only the leader serves, where it is, and the
//!   edge that forwards them; `peer`: the caller carried across a forward.

mod bodies;
pub mod forward;
mod keeper;
pub mod keys;
pub mod lease;
mod node;
pub mod peer;
pub mod placement;
pub mod route;
pub mod wakeup;

pub use forward::{ClientTls, FORWARDED_BY_HEADER, ForwardLayer, MIN_REVISION_HEADER};
pub use keeper::{Keeper, LeaseSettings, NodeRole, NodeView};
pub use node::{ClusterError, ClusterNode};
pub use placement::{Placement, placement};
pub use route::Route;
