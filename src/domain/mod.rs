//! Pure rules of the session hub and of media routing: no tokio, no tonic, no I/O, no clock,
//! no randomness, no password hashing. Time, ids and hashes come in as data.

pub mod access;
pub mod agents;
pub mod bounds;
pub mod commands;
mod desktop;
pub mod error;
pub mod events;
mod fold;
pub mod hearing;
pub mod ids;
mod paging;
pub mod presence;
pub mod principals;
pub mod routing;
pub mod services;
pub mod signins;
pub mod snapshot;
pub mod state;
pub mod workflow;

pub use commands::{Command, PrepareResult, SessionView};
pub use error::{DomainError, DomainResult};
pub use events::{Event, Millis, Record, Revision, Subjects};
pub use hearing::Hearing;
pub use ids::ClientId;
pub use paging::Page;
pub use principals::{Actor, Principal, Role};
pub use services::{ServiceDirectory, ServiceKind};
pub use snapshot::Snapshot;
pub use state::{Decided, State};
pub use workflow::{ModelCatalog, WorkflowModel};
