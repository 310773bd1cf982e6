//! Pure rules of the session hub: no tokio, no tonic, no I/O. Time is a parameter.

pub mod agents;
pub mod bounds;
pub mod commands;
pub mod error;
pub mod events;
pub mod ids;
pub mod presence;
pub mod routing;
pub mod services;
pub mod snapshot;
pub mod state;
pub mod workflow;

pub use commands::{Command, Outcome, PrepareResult, SessionView};
pub use error::{DomainError, DomainResult};
pub use events::{Event, Millis, Record, Revision};
pub use ids::ClientId;
pub use services::{ServiceDirectory, ServiceKind};
pub use snapshot::Snapshot;
pub use state::{Decided, State};
pub use workflow::{ModelCatalog, WorkflowModel};
