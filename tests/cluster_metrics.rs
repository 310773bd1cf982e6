//! Metrics on a cluster of real nodes sharing a PostgreSQL journal: the leader says it leads
//! and the follower that it does not; a write sent to the follower is counted once on each
//! node it reached (forwarded by one, served by the other); and the contact-center counters,
//! derived from the shared journal's records, are the same on both nodes.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{Cluster, WAIT};
use common::scrape::{Scrape, scrape};
use switchboard::pb;
use switchboard::pb::admin_service_client::AdminServiceClient;
use switchboard::pb::routing_service_client::RoutingServiceClient;

/// Where node `i` serves `/metrics`, from its start-up line (`metrics=Some(addr)`).
fn metrics_addr(cluster: &Cluster, i: usize) -> SocketAddr {
    let logged = cluster
        .log_field(i, "switchboard serving", "metrics")
        .expect("the start-up line names the metrics address");
    logged
        .trim_start_matches("Some(")
        .trim_end_matches(')')
        .parse()
        .unwrap_or_else(|_| panic!("a metrics address, not {logged}"))
}

/// Scrapes node `i` until `done` holds; fails after `WAIT`.
async fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let scraped = scrape(addr).await;
        if done(&scraped) {
            return scraped;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}:\n{}",
            scraped.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_node_counts_what_reached_it_and_shows_the_same_center() {
    let cluster = Cluster::start(2, &["--metrics-listen", "127.0.0.1:0"]).await;
    let (leader, _) = cluster.leader().await;
    let follower = 1 - leader;
    let (on_leader, on_follower) = (
        metrics_addr(&cluster, leader),
        metrics_addr(&cluster, follower),
    );
    let leads = |m: &Scrape| m.sum("switchboard_cluster_leader", &[]);
    scrape_until(on_leader, "the leader says it leads", |m| leads(m) == 1.0).await;
    scrape_until(on_follower, "the follower says it does not", |m| {
        m.matching("switchboard_cluster_leader", &[]).count() == 1 && leads(m) == 0.0
    })
    .await;

    // Written through the follower, which forwards both calls to the leader.
    let channel = cluster.channel(follower);
    AdminServiceClient::new(channel.clone())
        .upsert_mrd(pb::UpsertMrdRequest {
            mrd: Some(pb::Mrd {
                name: "chat".into(),
                max_tasks: 1,
                offer_timeout_seconds: 30,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("the MRD is written");
    let created = RoutingServiceClient::new(channel)
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the task is submitted")
        .into_inner();
    let revision = created.revision as f64;

    let queued = [("mrd", "chat"), ("queue", "default")];
    let new_task = [
        ("grpc_method", "NewTask"),
        ("grpc_service", "switchboard.v1.RoutingService"),
        ("grpc_code", "OK"),
    ];
    for (node, addr) in [("leader", on_leader), ("follower", on_follower)] {
        let m = scrape_until(addr, "the node has the task's revision", |m| {
            m.value("switchboard_revision", &[]) >= revision
        })
        .await;
        assert_eq!(
            m.value("grpc_server_handled_total", &new_task),
            1.0,
            "{node}"
        );
        assert_eq!(
            m.value("switchboard_tasks_queued_total", &queued),
            1.0,
            "{node}"
        );
        assert_eq!(
            m.value("switchboard_queue_tasks_waiting", &queued),
            1.0,
            "{node}"
        );
    }
    // Only the leader writes the journal.
    let follower_commits = scrape(on_follower)
        .await
        .sum("switchboard_journal_commit_records_count", &[]);
    assert_eq!(follower_commits, 0.0);
    assert!(
        scrape(on_leader)
            .await
            .value("switchboard_journal_commit_records_sum", &[])
            >= 2.0
    );
}
