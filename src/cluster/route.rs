//! Where this node sends what only the leader may do. The lease keeper publishes it on a
//! `tokio::sync::watch` channel; the forwarding layer reads the latest value per request.

/// Who applies commands, as this node sees it right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// This node does: it leads, or it runs alone.
    Local,
    /// Another node does, reachable at this address (`host:port`).
    Leader(String),
    /// Nobody does for the moment: a hand-over is in progress.
    NoLeader,
}
