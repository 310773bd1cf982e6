//! TLS on the gRPC listener, end to end: the real server binary with certificates made here by
//! rcgen, reached over real sockets by a tonic client, grpcurl and the generated Python client;
//! client certificates (mTLS, required and optional); bad TLS files and plaintext on a
//! non-loopback address stopping start-up; and the verified client certificate's identity as
//! a handler sees it; and signing in over TLS, which a token still needs.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::ServerProcess;
use common::tools;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use switchboard::pb;
use switchboard::pb::core_service_client::CoreServiceClient;
use switchboard::tls::{ClientAuth, PeerIdentity, ServerTls, TlsFiles, peer_identity};
use tempfile::TempDir;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Guards each external command against hanging; never what a test's outcome depends on.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// A client certificate and its key, as files and as PEM text.
struct ClientCert {
    cert: PathBuf,
    key: PathBuf,
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl ClientCert {
    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }
}

/// Everything a TLS deployment needs, written into a temporary directory: a CA for the
/// server's certificate (for `localhost` and 127.0.0.1), a CA for client certificates, a
/// client certificate from it, and one with the same name from an unrelated CA.
struct Pki {
    dir: TempDir,
    server_ca: PathBuf,
    server_ca_pem: String,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_ca: PathBuf,
    client: ClientCert,
    stranger: ClientCert,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let write = |name: &str, contents: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).expect("a PEM file is written");
            path
        };

        let server_ca = ca("Switchboard test server CA");
        let (server_cert, server_key) = leaf(
            &server_ca,
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client_ca = ca("Switchboard test client CA");
        let other_ca = ca("Some other CA");
        let client_cert = |issuer: &CertifiedIssuer<'static, KeyPair>, prefix: &str| {
            let (cert, key) = leaf(
                issuer,
                "integration-1",
                &[],
                ExtendedKeyUsagePurpose::ClientAuth,
            );
            ClientCert {
                cert: write(&format!("{prefix}.pem"), &cert.pem()),
                key: write(&format!("{prefix}.key"), &key.serialize_pem()),
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                der: cert.der().to_vec(),
            }
        };
        let client = client_cert(&client_ca, "client");
        let stranger = client_cert(&other_ca, "stranger");

        Self {
            server_ca: write("server-ca.pem", &server_ca.pem()),
            server_ca_pem: server_ca.pem(),
            server_cert: write("server.pem", &server_cert.pem()),
            server_key: write("server.key", &server_key.serialize_pem()),
            client_ca: write("client-ca.pem", &client_ca.pem()),
            client,
            stranger,
            dir,
        }
    }

    /// A file in the temporary directory with `contents`.
    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("a file is written");
        path
    }

    /// `--tls-cert` and `--tls-key` with the server's files, then `extra`.
    fn tls_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--in-memory".to_owned(),
            "--tls-cert".to_owned(),
            path_str(&self.server_cert),
            "--tls-key".to_owned(),
            path_str(&self.server_key),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    }

    /// A server serving TLS on a free loopback port.
    async fn server(&self, extra: &[&str]) -> ServerProcess {
        let args = self.tls_args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ServerProcess::start(&args).await
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("a CA key");
    CertifiedIssuer::self_signed(params, key).expect("a CA certificate")
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (rcgen::Certificate, KeyPair) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("leaf parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("a leaf key");
    let cert = params.signed_by(&key, issuer).expect("a leaf certificate");
    (cert, key)
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// `GetServerStatus` over TLS from a tonic client that trusts `ca_pem` and checks the name
/// `localhost`, presenting `identity` if given. Any failure, connecting or calling, is `Err`
/// with what went wrong.
async fn status_over_tls(
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<Identity>,
) -> Result<pb::GetServerStatusResponse, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .expect("a valid endpoint")
        .tls_config(tls)
        .map_err(|e| format!("TLS configuration: {e:?}"))?
        .connect()
        .await
        .map_err(|e| format!("connecting: {e:?}"))?;
    CoreServiceClient::new(channel)
        .get_server_status(pb::GetServerStatusRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| format!("calling: {status:?}"))
}

/// Runs the server binary with `args` and waits for it to exit (it is expected to refuse to
/// start).
async fn run_server_to_exit(args: Vec<String>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command.arg("serve").args(args).env("RUST_LOG", "info");
    tokio::task::spawn_blocking(move || tools::run_with_timeout(command, COMMAND_LIMIT))
        .await
        .expect("the runner does not panic")
}

/// Runs `command` (grpcurl, Python) off the runtime's workers.
async fn run(command: Command) -> Output {
    tokio::task::spawn_blocking(move || tools::run_with_timeout(command, COMMAND_LIMIT))
        .await
        .expect("the runner does not panic")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_calls_get_server_status_over_tls() {
    let pki = Pki::new();
    let server = pki.server(&[]).await;
    assert_eq!(
        server
            .log_field("switchboard serving", "transport")
            .as_deref(),
        Some("tls")
    );

    let status = status_over_tls(server.addr(), &pki.server_ca_pem, None)
        .await
        .expect("GetServerStatus answers over TLS");
    assert_eq!(status.server_id, common::DEFAULT_PROCESSOR_ID);
    assert!(status.accepting_clients);

    // A client that trusts another CA does not get through: the server's certificate is
    // checked.
    let other = std::fs::read_to_string(&pki.client_ca).expect("the client CA");
    let refused = status_over_tls(server.addr(), &other, None).await;
    assert!(
        refused.is_err(),
        "a client trusting another CA got {refused:?}"
    );
}

/// A tonic connection over TLS that trusts `ca_pem` and checks the name `localhost`.
async fn tls_channel(addr: SocketAddr, ca_pem: &str) -> tonic::transport::Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("a valid endpoint")
        .tls_config(tls)
        .expect("a valid TLS configuration")
        .connect()
        .await
        .expect("the TLS handshake succeeds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_works_over_tls_and_other_calls_need_the_token() {
    let pki = Pki::new();
    let server = pki.server(&[]).await;
    let channel = tls_channel(server.addr(), &pki.server_ca_pem).await;
    let register = pb::RegisterClientRequest {
        client_name: "tls desktop".into(),
        ..Default::default()
    };

    // TLS is no substitute for a token.
    let refused = CoreServiceClient::new(channel.clone())
        .register_client(register.clone())
        .await;
    let status = refused.expect_err("a call without a token is refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

    // The first admin signs in over the same TLS connection, and its token lets the call in.
    let token = common::sign_in(
        &channel,
        common::Who::Account(common::ADMIN),
        &server.admin_secret(),
    )
    .await;
    let registered = CoreServiceClient::new(common::signed(channel, &token))
        .register_client(register)
        .await
        .expect("a signed-in call over TLS is answered")
        .into_inner();
    assert!(!registered.client_id.is_empty(), "{registered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_calls_over_tls_and_plaintext_is_refused() {
    let pki = Pki::new();
    let server = pki.server(&[]).await;
    let target = server.addr().to_string();
    const METHOD: &str = "switchboard.v1.CoreService/GetServerStatus";

    // Through reflection, so the whole exchange is over TLS; 127.0.0.1 is checked against
    // the certificate's IP address.
    let mut over_tls = Command::new(tools::grpcurl());
    over_tls
        .arg("-cacert")
        .arg(&pki.server_ca)
        .args(["-d", "{}", &target, METHOD]);
    let output = run(over_tls).await;
    let report = tools::describe_output("grpcurl -cacert", &output);
    assert!(output.status.success(), "{report}");
    let answer: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert_eq!(answer["serverId"], common::DEFAULT_PROCESSOR_ID, "{report}");

    // The server hangs up on a client that does not start with a TLS handshake; grpcurl
    // redials until its connect timeout, then fails. A plaintext server would have answered.
    let mut plaintext = Command::new(tools::grpcurl());
    plaintext.args(["-plaintext", "-d", "{}", &target, METHOD]);
    let output = run(plaintext).await;
    let report = tools::describe_output("grpcurl -plaintext", &output);
    assert!(!output.status.success(), "plaintext got through: {report}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("serverId"),
        "{report}"
    );

    // A tonic client without TLS meets the same hang-up, on its first call.
    let plaintext = match Endpoint::from_shared(format!("http://{target}"))
        .expect("a valid endpoint")
        .connect()
        .await
    {
        Ok(channel) => CoreServiceClient::new(channel)
            .get_server_status(pb::GetServerStatusRequest {})
            .await
            .map_err(|status| format!("{status:?}")),
        Err(e) => Err(format!("{e:?}")),
    };
    assert!(plaintext.is_err(), "plaintext got {plaintext:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_over_tls() {
    let pki = Pki::new();
    let server = pki.server(&[]).await;

    let mut command = Command::new(tools::python());
    command
        .arg(tools::repo_root().join("tests/python/tls_status.py"))
        .args(["--target", &server.addr().to_string()])
        .arg("--ca")
        .arg(&pki.server_ca)
        .env("SWITCHBOARD_PYPROTO", tools::pyproto_dir())
        .env("PYTHONUNBUFFERED", "1");
    let output = run(command).await;
    let report = tools::describe_output("tls_status.py", &output);
    assert!(output.status.success(), "{report}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.trim() == format!("server_id: {}", common::DEFAULT_PROCESSOR_ID)),
        "{report}"
    );
    assert_eq!(stdout.lines().last(), Some("tls status: OK"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificates_must_come_from_the_client_ca() {
    let pki = Pki::new();
    let client_ca = path_str(&pki.client_ca);
    let server = pki.server(&["--client-ca", &client_ca]).await;
    assert_eq!(
        server
            .log_field("switchboard serving", "transport")
            .as_deref(),
        Some("mtls-required")
    );
    let addr = server.addr();

    status_over_tls(addr, &pki.server_ca_pem, Some(pki.client.identity()))
        .await
        .expect("a certificate from the client CA gets in");
    let stranger = status_over_tls(addr, &pki.server_ca_pem, Some(pki.stranger.identity())).await;
    assert!(
        stranger.is_err(),
        "a certificate from another CA got {stranger:?}"
    );
    let anonymous = status_over_tls(addr, &pki.server_ca_pem, None).await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate got {anonymous:?}"
    );

    // grpcurl presents the client certificate as the README shows.
    let mut grpcurl = Command::new(tools::grpcurl());
    grpcurl
        .arg("-cacert")
        .arg(&pki.server_ca)
        .arg("-cert")
        .arg(&pki.client.cert)
        .arg("-key")
        .arg(&pki.client.key)
        .args([
            &addr.to_string(),
            "switchboard.v1.CoreService/GetServerStatus",
        ]);
    let output = run(grpcurl).await;
    let report = tools::describe_output("grpcurl -cert -key", &output);
    assert!(output.status.success(), "{report}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(common::DEFAULT_PROCESSOR_ID),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_let_anonymous_clients_in_but_no_strangers() {
    let pki = Pki::new();
    let client_ca = path_str(&pki.client_ca);
    let server = pki
        .server(&["--client-ca", &client_ca, "--client-auth", "optional"])
        .await;
    assert_eq!(
        server
            .log_field("switchboard serving", "transport")
            .as_deref(),
        Some("mtls-optional")
    );
    let addr = server.addr();

    status_over_tls(addr, &pki.server_ca_pem, None)
        .await
        .expect("a client without a certificate gets in");
    status_over_tls(addr, &pki.server_ca_pem, Some(pki.client.identity()))
        .await
        .expect("a certificate from the client CA gets in");
    let stranger = status_over_tls(addr, &pki.server_ca_pem, Some(pki.stranger.identity())).await;
    assert!(
        stranger.is_err(),
        "a certificate from another CA got {stranger:?}"
    );
}

/// The identity helper as a handler (here an interceptor in front of the health service) sees
/// it, on a server configured by `ServerTls` exactly as `switchboard serve` is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_the_verified_client_certificate_identity() {
    let pki = Pki::new();
    let tls = ServerTls::load(TlsFiles {
        cert: &pki.server_cert,
        key: &pki.server_key,
        client_ca: Some(&pki.client_ca),
        client_auth: ClientAuth::Optional,
    })
    .expect("the TLS files load");
    assert_eq!(tls.client_auth(), Some(ClientAuth::Optional));

    let seen: Arc<Mutex<Vec<Option<PeerIdentity>>>> = Arc::default();
    let record = Arc::clone(&seen);
    let (_health, health_service) = tonic_health::server::health_reporter();
    let service = tonic::service::interceptor::InterceptedService::new(
        health_service,
        move |request: tonic::Request<()>| {
            record
                .lock()
                .expect("not poisoned")
                .push(peer_identity(&request));
            Ok(request)
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(tls.tonic_config())
            .expect("tonic takes the TLS settings")
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let check = |identity: Option<Identity>| {
        let ca = pki.server_ca_pem.clone();
        async move {
            let mut tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost");
            if let Some(identity) = identity {
                tls = tls.identity(identity);
            }
            let channel = Endpoint::from_shared(format!("https://{addr}"))
                .expect("a valid endpoint")
                .tls_config(tls)
                .expect("client TLS settings")
                .connect()
                .await
                .expect("the server accepts the connection");
            tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .expect("health answers");
        }
    };
    check(Some(pki.client.identity())).await;
    check(None).await;
    serving.abort();

    let expected = PeerIdentity::of_certificate(&pki.client.der);
    assert_eq!(*seen.lock().expect("not poisoned"), [Some(expected), None]);
    assert_ne!(expected, PeerIdentity::of_certificate(&pki.stranger.der));
    let shown = expected.to_string();
    assert!(
        shown.starts_with("sha256:") && shown.len() == "sha256:".len() + 64,
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_stop_start_up_naming_the_file_and_the_reason() {
    let pki = Pki::new();
    let missing = pki.dir.path().join("absent.pem");
    let garbage = pki.file("garbage.pem", "this is not PEM\n");
    let cert = path_str(&pki.server_cert);
    let key = path_str(&pki.server_key);
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "--tls-cert".into(),
                path_str(&missing),
                "--tls-key".into(),
                key.clone(),
            ],
            format!("--tls-cert {}: cannot read it", missing.display()),
        ),
        (
            vec![
                "--tls-cert".into(),
                path_str(&garbage),
                "--tls-key".into(),
                key.clone(),
            ],
            format!("--tls-cert {}: no PEM certificate in it", garbage.display()),
        ),
        (
            // A certificate where the key should be.
            vec![
                "--tls-cert".into(),
                cert.clone(),
                "--tls-key".into(),
                cert.clone(),
            ],
            format!("--tls-key {cert}: no PEM private key"),
        ),
        (
            // Someone else's key.
            vec![
                "--tls-cert".into(),
                cert.clone(),
                "--tls-key".into(),
                path_str(&pki.client.key),
            ],
            format!(
                "--tls-key {}: not usable with the certificate in {cert}",
                pki.client.key.display()
            ),
        ),
        (
            vec![
                "--tls-cert".into(),
                cert.clone(),
                "--tls-key".into(),
                key.clone(),
                "--client-ca".into(),
                path_str(&garbage),
            ],
            format!(
                "--client-ca {}: no PEM certificate in it",
                garbage.display()
            ),
        ),
        (
            vec![
                "--tls-cert".into(),
                cert.clone(),
                "--tls-key".into(),
                key.clone(),
                "--client-ca".into(),
                path_str(&missing),
            ],
            format!("--client-ca {}: cannot read it", missing.display()),
        ),
        // Both or neither: clap says which one is missing.
        (vec!["--tls-cert".into(), cert.clone()], "--tls-key".into()),
        (vec!["--tls-key".into(), key.clone()], "--tls-cert".into()),
        (
            vec!["--client-auth".into(), "optional".into()],
            "--client-ca".into(),
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["--in-memory".to_owned()];
        all.extend(args.iter().cloned());
        let output = run_server_to_exit(all).await;
        let report = tools::describe_output(&format!("serve {}", args.join(" ")), &output);
        assert!(!output.status.success(), "started anyway: {report}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(&needle),
            "no {needle:?} in the error: {report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_on_a_non_loopback_address_needs_insecure() {
    // The wildcard address: every interface, so not loopback. Nothing here sends traffic
    // anywhere but 127.0.0.1.
    let refused = run_server_to_exit(
        ["--in-memory", "--listen", "0.0.0.0:0"]
            .map(str::to_owned)
            .to_vec(),
    )
    .await;
    let report = tools::describe_output("serve --listen 0.0.0.0:0", &refused);
    assert!(!refused.status.success(), "started anyway: {report}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refusing to serve plaintext gRPC on 0.0.0.0:0")
            && stderr.contains("configure TLS")
            && stderr.contains("--insecure"),
        "{report}"
    );

    let server = ServerProcess::start_on("0.0.0.0:0", &["--in-memory", "--insecure"]).await;
    assert!(server.addr().ip().is_unspecified(), "{}", server.addr());
    assert_eq!(
        server
            .log_field("switchboard serving", "transport")
            .as_deref(),
        Some("plaintext")
    );
    let loopback = SocketAddr::from(([127, 0, 0, 1], server.addr().port()));
    let channel = Endpoint::from_shared(format!("http://{loopback}"))
        .expect("a valid endpoint")
        .connect()
        .await
        .expect("the server accepts connections");
    CoreServiceClient::new(channel)
        .get_server_status(pb::GetServerStatusRequest {})
        .await
        .expect("status answers");
    let status = server.terminate().await;
    assert!(status.success(), "the server stopped with {status}");

    // With TLS the same address needs no --insecure.
    let pki = Pki::new();
    let args = pki.tls_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerProcess::start_on("0.0.0.0:0", &args).await;
    let loopback = SocketAddr::from(([127, 0, 0, 1], server.addr().port()));
    status_over_tls(loopback, &pki.server_ca_pem, None)
        .await
        .expect("GetServerStatus answers over TLS");
    let status = server.terminate().await;
    assert!(status.success(), "the server stopped with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_signs_in_with_its_client_certificate() {
    use switchboard::pb::admin_service_client::AdminServiceClient;
    use switchboard::pb::routing_service_client::RoutingServiceClient;
    let pki = Pki::new();
    let client_ca = path_str(&pki.client_ca);
    let server = pki
        .server(&["--client-ca", &client_ca, "--client-auth", "optional"])
        .await;
    let mtls = |identity: Identity| {
        let ca = pki.server_ca_pem.clone();
        let addr = server.addr();
        async move {
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost")
                .identity(identity);
            Endpoint::from_shared(format!("https://{addr}"))
                .expect("a valid endpoint")
                .tls_config(tls)
                .expect("client TLS settings")
                .connect()
                .await
                .expect("the server accepts the certificate")
        }
    };
    // The admin maps the client certificate to an integration account.
    let anonymous = tls_channel(server.addr(), &pki.server_ca_pem).await;
    let token = common::sign_in(
        &anonymous,
        common::Who::Account(common::ADMIN),
        &server.admin_secret(),
    )
    .await;
    let mut admin = AdminServiceClient::new(common::signed(anonymous, &token));
    let fingerprint = PeerIdentity::of_certificate(&pki.client.der).to_string();
    let mrd = pb::Mrd {
        name: "chat".into(),
        max_tasks: 1,
        offer_timeout_seconds: 30,
        ..Default::default()
    };
    admin
        .upsert_mrd(pb::UpsertMrdRequest {
            mrd: Some(mrd),
            ..Default::default()
        })
        .await
        .expect("an MRD");
    let account = |roles: Vec<i32>| pb::UpsertAccountRequest {
        account: Some(pb::Account {
            account_id: "web-chat".into(),
            display_name: "Web chat".into(),
            secret: "a long random secret".into(),
            roles,
            client_certificate_sha256: fingerprint.clone(),
        }),
        ..Default::default()
    };
    let refused = admin
        .upsert_account(account(vec![pb::Role::Supervisor.into()]))
        .await
        .expect_err("only integrations sign in by certificate");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    admin
        .upsert_account(account(vec![pb::Role::Integration.into()]))
        .await
        .expect("the integration is created");

    // Its certificate alone signs it in: it submits a task, and is refused what it may not do.
    let mut channel_server = RoutingServiceClient::new(mtls(pki.client.identity()).await);
    let task = channel_server
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("the integration submits a task with its certificate")
        .into_inner();
    assert!(!task.task_id.is_empty());
    let denied = channel_server
        .list_agent_states(pb::ListAgentStatesRequest::default())
        .await
        .expect_err("an integration may not list agents");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");

    // Without the mapping the same certificate is just TLS: no principal.
    admin
        .upsert_account(pb::UpsertAccountRequest {
            account: Some(pb::Account {
                client_certificate_sha256: String::new(),
                ..account(vec![pb::Role::Integration.into()]).account.unwrap()
            }),
            ..Default::default()
        })
        .await
        .expect("the mapping is removed");
    let unmapped = RoutingServiceClient::new(mtls(pki.client.identity()).await)
        .new_task(pb::NewTaskRequest {
            mrd: "chat".into(),
            ..Default::default()
        })
        .await
        .expect_err("an unmapped certificate signs nobody in");
    assert_eq!(
        unmapped.code(),
        tonic::Code::Unauthenticated,
        "{unmapped:?}"
    );
}
