use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::HeaderValue;
use serde_json::json;
use tonic::Code;
use tower::ServiceExt;

use super::super::testing::{NOW, b64url, config, forge, issuer, issuer_with};
use super::*;
use crate::auth::tokens::{SigningKey, TokenConfig};
use crate::domain::Role;

const STATUS: &str = "/switchboard.v1.CoreService/GetServerStatus";
const UPSERT_AGENT: &str = "/switchboard.v1.AdminService/UpsertAgent";
const LIST_TASKS: &str = "/switchboard.v1.RoutingService/ListTasks";
const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

/// Credential versions by actor, changed by the tests as the engine would.
#[derive(Default)]
struct Standing(Mutex<HashMap<Actor, u64>>);

impl Standing {
    fn set(&self, actor: &Actor, version: Option<u64>) {
        let mut versions = self.0.lock().expect("lock");
        match version {
            Some(version) => versions.insert(actor.clone(), version),
            None => versions.remove(actor),
        };
    }
}

impl CredentialStanding for Standing {
    fn current_version(&self, actor: &Actor) -> Option<u64> {
        self.0.lock().expect("lock").get(actor).copied()
    }
}

struct Harness {
    layer: AuthLayer,
    issuer: Arc<TokenIssuer>,
    standing: Arc<Standing>,
    calls: Arc<AtomicUsize>,
}

/// What the inner service saw, handed back in the response's extensions.
#[derive(Clone)]
struct Seen(Option<Principal>, Option<Authenticated>);

fn harness_with(issuer: TokenIssuer, reflection_requires_auth: bool) -> Harness {
    let issuer = Arc::new(issuer);
    let standing = Arc::new(Standing::default());
    let layer = AuthLayer::new(
        issuer.clone(),
        standing.clone(),
        Arc::new(TokenCache::default()),
        reflection_requires_auth,
    );
    Harness {
        layer,
        issuer,
        standing,
        calls: Arc::new(AtomicUsize::new(0)),
    }
}

fn harness() -> Harness {
    harness_with(issuer(), false)
}

fn agent() -> Actor {
    Actor::Agent("a1".into())
}

fn admin() -> Actor {
    Actor::Account("root".into())
}

impl Harness {
    /// A token for `actor` with `roles`, valid now, at the actor's current version (1 when
    /// the actor is new).
    fn token(&self, actor: &Actor, roles: &[Role]) -> String {
        let version = self.standing.current_version(actor).unwrap_or(1);
        self.standing.set(actor, Some(version));
        let roles: BTreeSet<Role> = roles.iter().copied().collect();
        self.issuer
            .issue(actor, &roles, version, now_secs())
            .expect("issued")
            .token
    }

    async fn call(&self, path: &str, authorization: Option<&str>) -> Response<Body> {
        let calls = self.calls.clone();
        let inner = tower::service_fn(move |request: Request<Body>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let seen = Seen(
                request.extensions().get::<Principal>().cloned(),
                request.extensions().get::<Authenticated>().cloned(),
            );
            async move {
                let mut response = Response::new(Body::default());
                response.extensions_mut().insert(seen);
                Ok::<_, Infallible>(response)
            }
        });
        let mut request = Request::builder()
            .uri(format!("http://switchboard{path}"))
            .body(Body::default())
            .expect("request");
        if let Some(value) = authorization {
            request.headers_mut().insert(
                AUTHORIZATION,
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        match self.layer.layer(inner).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    async fn bearer_call(&self, path: &str, token: &str) -> Response<Body> {
        self.call(path, Some(&format!("Bearer {token}"))).await
    }

    fn inner_calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The principal the inner service saw, or the refusal it was spared.
fn outcome(response: &Response<Body>) -> Result<Option<Principal>, Status> {
    if let Some(status) = Status::from_header_map(response.headers()) {
        assert_eq!(
            response.status(),
            http::StatusCode::OK,
            "gRPC errors ride on 200"
        );
        assert_eq!(
            response.headers().get(http::header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/grpc"))
        );
        assert!(response.extensions().get::<Seen>().is_none());
        return Err(status);
    }
    let Seen(principal, authenticated) = response
        .extensions()
        .get::<Seen>()
        .cloned()
        .expect("the inner service answered");
    assert_eq!(
        principal,
        authenticated.map(|authenticated| authenticated.principal)
    );
    Ok(principal)
}

fn passed(response: &Response<Body>) -> Option<Principal> {
    outcome(response).unwrap_or_else(|status| panic!("refused: {status:?}"))
}

fn refused_with(response: &Response<Body>, code: Code, token: Option<&str>) -> String {
    let status = outcome(response).expect_err("refused");
    assert_eq!(status.code(), code, "{}", status.message());
    if let Some(token) = token {
        let signature = token.rsplit_once('.').map_or(token, |(_, s)| s);
        assert!(
            !status.message().contains(signature),
            "{}",
            status.message()
        );
    }
    status.message().to_owned()
}

#[tokio::test]
async fn a_public_method_passes_without_a_token() {
    let h = harness();
    assert_eq!(passed(&h.call(STATUS, None).await), None);
    assert_eq!(
        passed(&h.call("/grpc.health.v1.Health/Check", None).await),
        None
    );
}

#[tokio::test]
async fn a_public_method_still_learns_a_valid_caller() {
    let h = harness();
    let token = h.token(&agent(), &[Role::Agent]);
    let seen = outcome(&h.bearer_call(STATUS, &token).await).expect("passes");
    assert_eq!(seen.map(|p| p.actor), Some(agent()));
    // A bad token on a public method counts as none.
    assert_eq!(passed(&h.bearer_call(STATUS, "garbage").await), None);
    assert_eq!(passed(&h.call(STATUS, Some("Basic abc")).await), None);
}

#[tokio::test]
async fn a_missing_token_is_unauthenticated() {
    let h = harness();
    let message = refused_with(&h.call(LIST_TASKS, None).await, Code::Unauthenticated, None);
    assert_eq!(message, "missing authorization: Bearer <token>");
    assert_eq!(h.inner_calls(), 0);
}

#[tokio::test]
async fn a_header_that_is_not_bearer_is_unauthenticated() {
    let h = harness();
    let token = h.token(&admin(), &[Role::Admin]);
    for value in [
        format!("Basic {token}"),
        token.clone(),
        "Bearer ".to_owned(),
        format!("Bearer {}", "x".repeat(MAX_TOKEN_LEN + 1)),
    ] {
        refused_with(
            &h.call(LIST_TASKS, Some(&value)).await,
            Code::Unauthenticated,
            Some(&token),
        );
    }
    // The scheme is matched in any case.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let value = format!("{scheme} {token}");
        assert!(outcome(&h.call(LIST_TASKS, Some(&value)).await).is_ok());
    }
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let h = harness();
    let token = h.token(&admin(), &[Role::Admin]);
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("value");
    headers.append(AUTHORIZATION, value.clone());
    headers.append(AUTHORIZATION, value);
    let status = h
        .layer
        .authenticate(&headers, now_secs())
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_garbage_token_is_unauthenticated() {
    let h = harness();
    let message = refused_with(
        &h.bearer_call(LIST_TASKS, "xq.yq.zq").await,
        Code::Unauthenticated,
        Some("xq.yq.zq"),
    );
    assert_eq!(message, "invalid access token: token is malformed");
}

#[tokio::test]
async fn a_tampered_signature_is_unauthenticated() {
    let h = harness();
    let token = h.token(&admin(), &[Role::Admin]);
    let (body, signature) = token.rsplit_once('.').expect("segments");
    let flipped: String = signature
        .chars()
        .enumerate()
        .map(|(i, c)| match (i, c) {
            (5, 'A') => 'B',
            (5, _) => 'A',
            (_, c) => c,
        })
        .collect();
    let tampered = format!("{body}.{flipped}");
    let message = refused_with(
        &h.bearer_call(LIST_TASKS, &tampered).await,
        Code::Unauthenticated,
        Some(&tampered),
    );
    assert!(message.contains("signature"), "{message}");
}

#[tokio::test]
async fn an_alg_none_token_is_unauthenticated() {
    let h = harness();
    let token = h.token(&admin(), &[Role::Admin]);
    let header = json!({"alg": "none", "typ": "JWT", "kid": h.issuer.kid()}).to_string();
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(&token).expect("claims");
    let unsigned = format!(
        "{}.{}.",
        b64url(header.as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    refused_with(
        &h.bearer_call(LIST_TASKS, &unsigned).await,
        Code::Unauthenticated,
        None,
    );
    let resigned = forge(&token, Some(&header), None);
    refused_with(
        &h.bearer_call(LIST_TASKS, &resigned).await,
        Code::Unauthenticated,
        Some(&resigned),
    );
    assert_eq!(h.inner_calls(), 0);
}

#[tokio::test]
async fn a_token_for_another_issuer_audience_or_key_is_unauthenticated() {
    let key = SigningKey::generate().expect("key");
    let h = harness_with(TokenIssuer::new(config(), key.clone()), false);
    h.standing.set(&admin(), Some(1));
    let roles: BTreeSet<Role> = [Role::Admin].into();
    let foreign = [
        (
            TokenIssuer::new(
                TokenConfig {
                    issuer: "elsewhere".into(),
                    ..config()
                },
                key.clone(),
            ),
            "issuer",
        ),
        (
            TokenIssuer::new(
                TokenConfig {
                    audience: "billing".into(),
                    ..config()
                },
                key,
            ),
            "audience",
        ),
        (issuer_with(config()), "unknown key"),
    ];
    for (other, reason) in foreign {
        let token = other
            .issue(&admin(), &roles, 1, now_secs())
            .expect("issued")
            .token;
        let message = refused_with(
            &h.bearer_call(LIST_TASKS, &token).await,
            Code::Unauthenticated,
            Some(&token),
        );
        assert!(message.contains(reason), "{message}");
    }
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let h = harness();
    h.standing.set(&admin(), Some(1));
    let roles: BTreeSet<Role> = [Role::Admin].into();
    // Issued at a fixed time long past; its 900 s ran out long ago.
    let token = h
        .issuer
        .issue(&admin(), &roles, 1, NOW)
        .expect("issued")
        .token;
    let message = refused_with(
        &h.bearer_call(LIST_TASKS, &token).await,
        Code::Unauthenticated,
        Some(&token),
    );
    assert_eq!(message, "invalid access token: token has expired");

    // `authenticate` takes time as data: valid until its exp, not after.
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("value");
    headers.insert(AUTHORIZATION, value);
    assert!(h.layer.authenticate(&headers, NOW + 899).is_ok());
    // The cached verification expires with the token too.
    assert!(h.layer.authenticate(&headers, NOW + 900).is_err());
}

#[tokio::test]
async fn a_token_of_an_older_credential_version_is_revoked() {
    let h = harness();
    let token = h.token(&admin(), &[Role::Admin]);
    assert!(outcome(&h.bearer_call(LIST_TASKS, &token).await).is_ok());
    h.standing.set(&admin(), Some(2));
    // Refused at once, though the verified token sits in the cache.
    let message = refused_with(
        &h.bearer_call(LIST_TASKS, &token).await,
        Code::Unauthenticated,
        Some(&token),
    );
    assert!(message.contains("revoked"), "{message}");
    let fresh = h.token(&admin(), &[Role::Admin]);
    assert!(outcome(&h.bearer_call(LIST_TASKS, &fresh).await).is_ok());
}

#[tokio::test]
async fn a_token_of_a_removed_principal_is_unauthenticated() {
    let h = harness();
    let token = h.token(&admin(), &[Role::Admin]);
    h.standing.set(&admin(), None);
    let message = refused_with(
        &h.bearer_call(LIST_TASKS, &token).await,
        Code::Unauthenticated,
        Some(&token),
    );
    assert!(message.contains("no longer exists"), "{message}");
    // Not known on a public method either.
    assert_eq!(passed(&h.bearer_call(STATUS, &token).await), None);
}

#[tokio::test]
async fn a_missing_role_is_permission_denied() {
    let h = harness();
    let token = h.token(&agent(), &[Role::Agent]);
    let message = refused_with(
        &h.bearer_call(UPSERT_AGENT, &token).await,
        Code::PermissionDenied,
        Some(&token),
    );
    assert_eq!(
        message,
        "/switchboard.v1.AdminService/UpsertAgent needs one of the roles ROLE_ADMIN"
    );
    assert_eq!(h.inner_calls(), 0);
}

#[tokio::test]
async fn the_right_role_passes_with_the_caller_in_extensions() {
    let h = harness();
    let token = h.token(&admin(), &[Role::Admin]);
    let response = h.bearer_call(UPSERT_AGENT, &token).await;
    let principal = outcome(&response).expect("passes").expect("a principal");
    assert_eq!(principal.actor, admin());
    assert!(principal.has(Role::Admin));
    let Seen(_, authenticated) = response.extensions().get::<Seen>().cloned().expect("seen");
    let authenticated = authenticated.expect("authenticated");
    assert_eq!(authenticated.credential_version, 1);
    assert!(authenticated.expires_at_secs > now_secs());
    assert_eq!(h.inner_calls(), 1);
}

#[tokio::test]
async fn an_unlisted_method_is_denied_to_everyone() {
    let h = harness();
    let token = h.token(&admin(), &Role::ALL);
    for authorization in [None, Some(format!("Bearer {token}"))] {
        let message = refused_with(
            &h.call(
                "/switchboard.v1.AdminService/DropEverything",
                authorization.as_deref(),
            )
            .await,
            Code::PermissionDenied,
            Some(&token),
        );
        assert!(message.contains("not allowed for anyone"), "{message}");
    }
    refused_with(&h.call("/", None).await, Code::PermissionDenied, None);
    assert_eq!(h.inner_calls(), 0);
}

#[tokio::test]
async fn reflection_is_public_unless_the_layer_closes_it() {
    let open = harness();
    assert_eq!(passed(&open.call(REFLECTION, None).await), None);

    let closed = harness_with(issuer(), true);
    refused_with(
        &closed.call(REFLECTION, None).await,
        Code::Unauthenticated,
        None,
    );
    let token = closed.token(&agent(), &[Role::Integration]);
    assert!(outcome(&closed.bearer_call(REFLECTION, &token).await).is_ok());
    // Health stays open.
    assert_eq!(
        passed(&closed.call("/grpc.health.v1.Health/Watch", None).await),
        None
    );
}

#[test]
fn authorize_applies_the_same_table_to_each_path() {
    let agent = Principal {
        actor: agent(),
        roles: [Role::Agent].into(),
    };
    assert!(authorize("/switchboard.v1.RoutingService/AcceptTask", &agent).is_ok());
    assert!(authorize(STATUS, &agent).is_ok());
    let denied = authorize(LIST_TASKS, &agent).expect_err("denied");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("ROLE_SUPERVISOR, ROLE_ADMIN"));
    let unlisted = authorize("/switchboard.v1.CoreService/Nope", &agent).expect_err("denied");
    assert_eq!(unlisted.code(), Code::PermissionDenied);
}

#[test]
fn token_errors_become_statuses() {
    assert_eq!(
        Status::from(TokenError::Expired).code(),
        Code::Unauthenticated
    );
    assert_eq!(Status::from(TokenError::Signing).code(), Code::Internal);
}

#[tokio::test]
async fn the_layer_guards_a_tonic_router() {
    use crate::pb::ListTasksRequest;
    use crate::pb::routing_service_client::RoutingServiceClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let h = harness();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(h.layer.clone())
            .add_service(health)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move {
                    let _ = stopped.await;
                },
            ),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connected");

    let mut health = HealthClient::new(channel.clone());
    assert!(health.check(HealthCheckRequest::default()).await.is_ok());

    let mut routing = RoutingServiceClient::new(channel);
    let refused = routing
        .list_tasks(ListTasksRequest::default())
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated);

    // Past the layer the router answers: no RoutingService is mounted here.
    let token = h.token(&admin(), &[Role::Supervisor]);
    let mut request = tonic::Request::new(ListTasksRequest::default());
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    let passed = routing
        .list_tasks(request)
        .await
        .expect_err("unimplemented");
    assert_eq!(passed.code(), Code::Unimplemented);

    let _ = stop.send(());
    server.await.expect("joined").expect("served");
}
