//! Platform metrics: how the journal keeps up (each commit's time and size, told by the
//! committer through the tap), and, read at each scrape, the revision, the engine's inbox,
//! watches, clients and the node's part in its cluster.

use metrics::{Counter, Gauge, Histogram, Label};
use tokio::sync::watch;

use super::recorder::{Kind, Metric, Registry};
use crate::cluster::{NodeRole, NodeView};
use crate::engine::EngineHandle;
use crate::watch::Commit;

const COMMIT_SECONDS: &str = "switchboard_journal_commit_seconds";
const SYNC_SECONDS: &str = "switchboard_journal_sync_seconds";
const COMMIT_RECORDS: &str = "switchboard_journal_commit_records";
const REVISION: &str = "switchboard_revision";
const INBOX: &str = "switchboard_engine_inbox_depth";
const WATCHES_OPEN: &str = "switchboard_watches_open";
const WATCHES_LAGGED: &str = "switchboard_watches_lagged_total";
const CLIENTS: &str = "switchboard_clients";
const LEADER: &str = "switchboard_cluster_leader";

/// From half a millisecond (a commit on a fast disk) to 2.5 s (a disk in trouble).
const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

pub const METRICS: &[Metric] = &[
    Metric {
        name: COMMIT_SECONDS,
        help: "How long one journal commit (a group of batches in one transaction, its fsync \
               included) took, in seconds.",
        kind: Kind::Histogram(COMMIT_BUCKETS),
    },
    Metric {
        name: SYNC_SECONDS,
        help: "How long the durable step of one journal commit took, in seconds: SQLite's \
               COMMIT, which writes and fsyncs its write-ahead log. Not measured on \
               PostgreSQL, whose COMMIT is pipelined with the inserts (its server's \
               pg_stat_wal has its WAL sync times).",
        kind: Kind::Histogram(COMMIT_BUCKETS),
    },
    Metric {
        name: COMMIT_RECORDS,
        help: "Events written by one journal commit.",
        kind: Kind::Histogram(&[
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
        ]),
    },
    Metric {
        name: REVISION,
        help: "The last revision durable and visible on this node.",
        kind: Kind::Gauge,
    },
    Metric {
        name: INBOX,
        help: "Commands waiting for the engine (lane: writes, reads); a full lane refuses \
               the next one (--inbox-depth).",
        kind: Kind::Gauge,
    },
    Metric {
        name: WATCHES_OPEN,
        help: "WatchRoutingEvents and WatchSessionState streams open now.",
        kind: Kind::Gauge,
    },
    Metric {
        name: WATCHES_LAGGED,
        help: "Watches ended for falling too far behind (--watch-buffer).",
        kind: Kind::Counter,
    },
    Metric {
        name: CLIENTS,
        help: "Clients registered (RegisterClient) and not gone; on a cluster node, the \
               cluster's.",
        kind: Kind::Gauge,
    },
    Metric {
        name: LEADER,
        help: "1 while this node leads its cluster and takes writes, else 0; only on a \
               cluster node.",
        kind: Kind::Gauge,
    },
];

pub struct Platform {
    commit_seconds: Histogram,
    sync_seconds: Histogram,
    commit_records: Histogram,
    revision: Gauge,
    inbox_writes: Gauge,
    inbox_reads: Gauge,
    watches_open: Gauge,
    watches_lagged: Counter,
    clients: Gauge,
    leader: Gauge,
}

impl Platform {
    /// `clustered`: the server is a node of a cluster, which alone shows whether it leads.
    pub fn new(registry: &Registry, clustered: bool) -> Self {
        let lane = |name| vec![Label::from_static_parts("lane", name)];
        Self {
            commit_seconds: registry.histogram(COMMIT_SECONDS, Vec::new()),
            sync_seconds: registry.histogram(SYNC_SECONDS, Vec::new()),
            commit_records: registry.histogram(COMMIT_RECORDS, Vec::new()),
            revision: registry.gauge(REVISION, Vec::new()),
            inbox_writes: registry.gauge(INBOX, lane("writes")),
            inbox_reads: registry.gauge(INBOX, lane("reads")),
            watches_open: registry.gauge(WATCHES_OPEN, Vec::new()),
            watches_lagged: registry.counter(WATCHES_LAGGED, Vec::new()),
            clients: registry.gauge(CLIENTS, Vec::new()),
            leader: if clustered {
                registry.gauge(LEADER, Vec::new())
            } else {
                Gauge::noop()
            },
        }
    }

    /// One journal commit.
    pub fn committed(&self, commit: Commit) {
        self.commit_seconds.record(commit.took.as_secs_f64());
        if let Some(sync) = commit.sync {
            self.sync_seconds.record(sync.as_secs_f64());
        }
        // Exact up to 2^53 records, far past any one commit.
        self.commit_records.record(commit.records as f64);
    }

    /// The figures read at a scrape; `clients` when the engine answered.
    pub fn show(
        &self,
        engine: &EngineHandle,
        node: &watch::Receiver<NodeView>,
        clients: Option<usize>,
    ) {
        self.revision.set(*engine.applied().borrow() as f64);
        let (writes, reads) = engine.inbox_depth();
        self.inbox_writes.set(writes as f64);
        self.inbox_reads.set(reads as f64);
        self.watches_open.set(engine.watch().open_watches() as f64);
        self.watches_lagged
            .absolute(engine.watch().lagged_watches());
        if let Some(clients) = clients {
            self.clients.set(clients as f64);
        }
        match node.borrow().role {
            NodeRole::Standalone => {}
            NodeRole::Leader { ready: true } => self.leader.set(1.0),
            NodeRole::Leader { ready: false } | NodeRole::Follower => self.leader.set(0.0),
        }
    }
}
