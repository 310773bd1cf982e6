//! Disk faults: a journal that cannot be written, a torn last write, a snapshot that does not
//! decode. Every case drives a real server over gRPC.
//!
//! - A journal whose appends fail while a switch is on (the real SQLite journal inside): the
//!   failing batch's callers get UNAVAILABLE, health turns NOT_SERVING, reads answer the
//!   durable state, and writes resume once the switch is off; a restart loses nothing.
//! - A real full disk: the server binary on a small tmpfs this test mounts, filled until a
//!   write fails (the test runs as root, as CI does).
//! - A torn last write: SIGKILL, a few bytes cut off the WAL, restart.
//! - The latest snapshot corrupted: the previous one plus events recover the same state.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::desktop::ConnectedDesktop;
use common::journals::HookedJournal;
use common::process::ServerProcess;
use common::{ADMIN, Channel, Clients, TestServer, Who, assert_status, sign_in, signed};
use switchboard::config::ServerConfig;
use switchboard::domain::Revision;
use switchboard::pb;
use switchboard::server::Server;
use switchboard::store::{SqliteJournal, StoreError};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Bounds every wait for a condition: a failure guard, never a timing assertion.
const WAIT: Duration = Duration::from_secs(30);

// ---- A journal that fails on demand ---------------------------------------------------------

/// The real SQLite journal, whose writes fail while `failing` is on, as on a full disk.
fn faulty_journal(data_dir: &Path, failing: Arc<AtomicBool>) -> HookedJournal<SqliteJournal> {
    HookedJournal {
        inner: SqliteJournal::open(data_dir).expect("the journal opens"),
        hook: Box::new(move || {
            if failing.load(Ordering::SeqCst) {
                Err(StoreError::Write(
                    "database or disk is full (injected)".into(),
                ))
            } else {
                Ok(())
            }
        }),
    }
}

// ---- Helpers ------------------------------------------------------------------------------

fn reason_code(code: &str) -> pb::UpsertReasonCodeRequest {
    pb::UpsertReasonCodeRequest {
        reason_code: Some(pb::ReasonCode {
            code: code.into(),
            // Long, so that each write takes room on the disk.
            label: format!("{code} {}", "x".repeat(200)),
            category: pb::ReasonCategory::NotReady.into(),
        }),
        request_id: String::new(),
    }
}

async fn upsert(clients: &mut Clients, code: &str) -> Result<Revision, tonic::Status> {
    clients
        .admin
        .upsert_reason_code(reason_code(code))
        .await
        .map(|r| r.into_inner().revision)
}

async fn codes(clients: &mut Clients) -> BTreeSet<String> {
    clients
        .admin
        .list_reason_codes(pb::ListReasonCodesRequest {})
        .await
        .expect("reason codes are listed")
        .into_inner()
        .reason_codes
        .into_iter()
        .map(|r| r.code)
        .collect()
}

fn set_of(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| (*c).to_owned()).collect()
}

/// The health of the server as a whole and of every one of its services.
async fn health(channel: &Channel) -> Vec<ServingStatus> {
    let mut client = HealthClient::new(channel.clone());
    let mut all = Vec::new();
    for service in [
        "",
        "switchboard.v1.CoreService",
        "switchboard.v1.AdminService",
        "switchboard.v1.ProcessorService",
    ] {
        let status = client
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status();
        all.push(status);
    }
    all
}

/// Polls until every service's health is `wanted`.
async fn wait_for_health(channel: &Channel, wanted: ServingStatus) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = health(channel).await;
        if now.iter().all(|s| *s == wanted) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health is {now:?}, not {wanted:?}, after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn server_status(clients: &mut Clients) -> pb::GetServerStatusResponse {
    clients
        .core
        .get_server_status(pb::GetServerStatusRequest {})
        .await
        .expect("the server status is a read, answered while writes are refused")
        .into_inner()
}

// ---- The fault-injecting journal over gRPC -------------------------------------------------

/// A server on a faulty journal in `data_dir`, with the first admin signed in: its
/// connection and its access token.
async fn start_faulty(data_dir: &Path, failing: Arc<AtomicBool>) -> (Server, Channel, String) {
    let journal = faulty_journal(data_dir, failing);
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: data_dir.to_owned(),
        ..ServerConfig::default()
    };
    let secret_file = config.bootstrap_secret_path();
    let server = Server::start_with_journal(config, Arc::new(journal))
        .await
        .expect("the server starts");
    let raw = tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
        .expect("an endpoint")
        .connect()
        .await
        .expect("the server accepts connections");
    let secret = common::auth::read_bootstrap_secret(&secret_file);
    let token = sign_in(&raw, Who::Account(ADMIN), &secret).await;
    (server, signed(raw, &token), token)
}

#[tokio::test]
async fn a_journal_that_cannot_write_refuses_writes_answers_reads_and_resumes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let failing = Arc::new(AtomicBool::new(false));
    let (server, channel, token) = start_faulty(dir.path(), Arc::clone(&failing)).await;
    let mut clients = Clients::new(channel.clone());
    let written = upsert(&mut clients, "before").await.expect("a write");
    wait_for_health(&channel, ServingStatus::Serving).await;
    let mut desktop = ConnectedDesktop::open_as(server.local_addr(), &token, None).await;
    let client_id = desktop.client_id().to_owned();

    failing.store(true, Ordering::SeqCst);
    // The failing batch's caller, and every caller after it, hears the change did not happen.
    assert_status(
        upsert(&mut clients, "lost").await,
        Code::Unavailable,
        "journal",
    );
    let concurrent: Vec<_> = (0..8)
        .map(|i| {
            let mut clients = clients.clone();
            tokio::spawn(async move { upsert(&mut clients, &format!("lost-{i}")).await })
        })
        .collect();
    for call in concurrent {
        let result = call.await.expect("the call's task");
        assert_status(result, Code::Unavailable, "journal");
    }
    wait_for_health(&channel, ServingStatus::NotServing).await;
    // Desktop streams end, telling the desktop to reconnect; a new one is refused meanwhile.
    let ended = desktop
        .ending()
        .await
        .expect("the stream ends with a status");
    assert_eq!(ended.code(), Code::Aborted, "{ended:?}");
    assert!(ended.message().contains("reconnect"), "{ended:?}");
    let refused = ConnectedDesktop::try_open_as(server.local_addr(), &token, None).await;
    assert_status(refused.map(|d| d.greeting), Code::Unavailable, "journal");
    // Degraded now: a write is refused at once, saying why.
    assert_status(
        upsert(&mut clients, "refused").await,
        Code::Unavailable,
        "journal cannot be written",
    );
    // Reads answer the durable state: nothing of the failed changes is visible.
    assert_eq!(codes(&mut clients).await, set_of(&["before"]));
    let status = server_status(&mut clients).await;
    assert!(
        status.status() == pb::ServiceStatus::OutOfService && !status.accepting_clients,
        "a server that cannot write is out of service and takes no clients: {status:?}"
    );
    let services = clients
        .core
        .list_services(pb::ListServicesRequest {})
        .await
        .expect("services are listed")
        .into_inner()
        .services;
    assert!(
        services
            .iter()
            .all(|s| s.status() == pb::ServiceStatus::OutOfService && !s.accepting_clients),
        "{services:?}"
    );

    failing.store(false, Ordering::SeqCst);
    wait_for_health(&channel, ServingStatus::Serving).await;
    let resumed = upsert(&mut clients, "after").await.expect("writes resume");
    assert!(resumed > written, "{resumed} follows {written}");
    assert_eq!(codes(&mut clients).await, set_of(&["after", "before"]));
    let status = server_status(&mut clients).await;
    assert!(
        status.status() == pb::ServiceStatus::InService && status.accepting_clients,
        "{status:?}"
    );
    // The desktop comes back as the client it was: its registration was durable.
    let back = ConnectedDesktop::open_as(server.local_addr(), &token, Some(&client_id)).await;
    assert_eq!(back.client_id(), client_id);
    back.close().await;
    server.shutdown().await.expect("a clean stop");

    // Nothing acknowledged is lost, nothing refused appears.
    let restarted = TestServer::start_with(ServerConfig {
        data_dir: dir.path().to_owned(),
        ..ServerConfig::default()
    })
    .await;
    let mut clients = restarted.clients().await;
    assert_eq!(codes(&mut clients).await, set_of(&["after", "before"]));
    restarted.stop().await;
}

// ---- A real full disk ----------------------------------------------------------------------

/// A tmpfs of `size` mounted at a fresh directory; unmounted on drop, also when a test fails.
struct Tmpfs {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mount_point = dir.path().join("disk");
        std::fs::create_dir(&mount_point).expect("the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount_point)
            .status()
            .expect("`mount` runs");
        assert!(
            status.success(),
            "mounting a tmpfs failed ({status}): this test needs root, as CI has"
        );
        Self {
            mount_point,
            _dir: dir,
        }
    }

    fn path(&self) -> &Path {
        &self.mount_point
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a server still holding files must not keep the mount behind.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

/// Writes zeros to `path` until the disk refuses; returns how many bytes fit.
fn fill_disk(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("the filler file");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // Whatever the page cache still holds must land, or fail, now.
    let _ = file.sync_all();
    written
}

#[tokio::test]
async fn a_full_disk_refuses_writes_answers_reads_and_resumes_when_space_returns() {
    let disk = Tmpfs::mount("3m");
    let data_dir = disk.path().join("data");
    let server = ServerProcess::start_durable(&data_dir, &[]).await;
    // Signing in writes too: done while there is room.
    let channel = server.channel().await;
    let mut clients = Clients::new(channel.clone());
    upsert(&mut clients, "before").await.expect("a write");

    let filler = disk.path().join("filler");
    let filled = fill_disk(&filler);
    assert!(filled > 0, "the filler took some room");
    // The journal may still have room in pages it had: write until a write is refused.
    let mut acknowledged = vec!["before".to_owned()];
    let mut refused = None;
    for i in 0..5_000 {
        let code = format!("while-full-{i}");
        match upsert(&mut clients, &code).await {
            Ok(_) => acknowledged.push(code),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.message().contains("journal"), "{status:?}");
                refused = Some(code);
                break;
            }
        }
    }
    let refused = refused.expect("a write is refused once the disk is full");
    wait_for_health(&channel, ServingStatus::NotServing).await;
    assert_status(
        upsert(&mut clients, "refused-too").await,
        Code::Unavailable,
        "journal",
    );
    let listed = codes(&mut clients).await;
    let acknowledged: BTreeSet<String> = acknowledged.into_iter().collect();
    assert_eq!(listed, acknowledged, "reads answer what is durable");
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l.contains("journal append failed")),
        "the log says the journal failed"
    );

    std::fs::remove_file(&filler).expect("the filler goes");
    wait_for_health(&channel, ServingStatus::Serving).await;
    upsert(&mut clients, "after").await.expect("writes resume");
    assert!(
        server.logs().iter().any(|l| l.contains("writes resume")),
        "the log says writes resumed"
    );
    let status = server.terminate().await;
    assert!(status.success(), "a clean stop: {status}");

    let restarted = ServerProcess::start_durable(&data_dir, &[]).await;
    let mut clients = Clients::new(restarted.channel().await);
    let recovered = codes(&mut clients).await;
    let mut expected = acknowledged.clone();
    expected.insert("after".into());
    assert_eq!(recovered, expected, "nothing acknowledged is lost");
    assert!(!recovered.contains(&refused));
    drop(restarted);
}

// ---- A torn last write ---------------------------------------------------------------------

#[tokio::test]
async fn a_torn_last_write_is_cut_back_to_the_last_whole_transaction() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    let server = ServerProcess::start_durable(&data_dir, &[]).await;
    let mut clients = Clients::new(server.channel().await);
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(
            upsert(&mut clients, &format!("code-{i}"))
                .await
                .expect("a write"),
        );
    }
    server.kill();

    let wal = data_dir.join("journal.sqlite3-wal");
    let len = std::fs::metadata(&wal)
        .expect("a crash leaves the WAL")
        .len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .and_then(|file| file.set_len(len - 7))
        .expect("cut the WAL's tail");

    let restarted = ServerProcess::start_durable(&data_dir, &[]).await;
    // The last write was one transaction: it goes, everything before it stays.
    let whole = revisions[revisions.len() - 2];
    assert_eq!(restarted.recovered_revision(), whole);
    assert_eq!(
        restarted
            .log_field("was not closed cleanly", "last_revision")
            .as_deref(),
        Some(whole.to_string().as_str()),
        "the log says the journal was cut back; log:\n{}",
        restarted.logs().join("\n")
    );
    let mut clients = Clients::new(restarted.channel().await);
    assert_eq!(
        codes(&mut clients).await,
        set_of(&["code-0", "code-1", "code-2", "code-3"])
    );
}

// ---- A snapshot that does not decode -------------------------------------------------------

#[tokio::test]
async fn a_latest_snapshot_that_does_not_decode_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    let args = ["--snapshot-every", "3", "--retain-events", "0"];
    let server = ServerProcess::start_durable(&data_dir, &args).await;
    let mut clients = Clients::new(server.channel().await);
    for i in 0..10 {
        upsert(&mut clients, &format!("code-{i}"))
            .await
            .expect("a write");
    }
    let before = codes(&mut clients).await;
    // A graceful stop leaves a snapshot of everything.
    assert!(server.terminate().await.success());

    let latest = {
        let db = rusqlite::Connection::open(data_dir.join("journal.sqlite3")).expect("the file");
        let kept: Vec<i64> = db
            .prepare("SELECT revision FROM snapshots ORDER BY revision DESC")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .expect("the snapshots");
        assert_eq!(kept.len(), 2, "the latest snapshot and the one before it");
        db.execute(
            "UPDATE snapshots SET body = '{\"not a snapshot' WHERE revision = ?1",
            [kept[0]],
        )
        .expect("corrupt the latest snapshot");
        kept[0]
    };

    let restarted = ServerProcess::start_durable(&data_dir, &args).await;
    assert_eq!(
        restarted.recovered_revision(),
        u64::try_from(latest).expect("a revision"),
        "the previous snapshot and the events after it reach the same revision"
    );
    assert_eq!(
        restarted
            .log_field("a snapshot does not decode", "revision")
            .as_deref(),
        Some(latest.to_string().as_str()),
        "the log names the skipped snapshot; log:\n{}",
        restarted.logs().join("\n")
    );
    let mut clients = Clients::new(restarted.channel().await);
    assert_eq!(codes(&mut clients).await, before);
}
