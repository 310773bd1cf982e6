use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use super::super::testing::{NOW, b64url, config, forge, issuer, issuer_with};
use super::*;

fn agent_roles() -> BTreeSet<Role> {
    [Role::Agent].into()
}

fn agent_token(issuer: &TokenIssuer, now_secs: u64) -> String {
    issuer
        .issue(&Actor::Agent("a1".into()), &agent_roles(), 3, now_secs)
        .expect("issued")
        .token
}

/// Well-formed claims as `issuer` writes them, to be altered and signed with its own key.
fn claims(issuer: &TokenIssuer) -> Value {
    json!({
        "iss": issuer.config().issuer,
        "aud": issuer.config().audience,
        "sub": "agent:a1",
        "roles": ["agent"],
        "ver": 3,
        "iat": NOW,
        "exp": NOW + 60,
        "jti": "00000000-0000-4000-8000-000000000000",
    })
}

/// `claims` signed with the issuer's real key and kid: only the claims are wrong.
fn signed(issuer: &TokenIssuer, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(issuer.kid().to_owned());
    jsonwebtoken::encode(&header, claims, &issuer.key.encoding).expect("signed")
}

#[test]
fn an_issued_token_verifies_to_its_principal() {
    let issuer = issuer();
    let roles: BTreeSet<Role> = [Role::Supervisor, Role::Admin].into();
    let actor = Actor::Account("boss".into());
    let issued = issuer.issue(&actor, &roles, 7, NOW).expect("issued");
    assert_eq!(issued.expires_at_secs, NOW + 900);

    let verified = issuer.verify(&issued.token, NOW + 10).expect("verifies");
    assert_eq!(
        verified,
        VerifiedToken {
            principal: Principal { actor, roles },
            credential_version: 7,
            expires_at_secs: NOW + 900,
        }
    );
}

#[test]
fn header_and_claims_are_as_documented() {
    let issuer = issuer();
    let token = agent_token(&issuer, NOW);
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some(issuer.kid()));

    let claims: Value =
        jsonwebtoken::dangerous::insecure_decode_claims(&token).expect("claims decode");
    assert_eq!(claims["iss"], "switchboard-test");
    assert_eq!(claims["aud"], "switchboard");
    assert_eq!(claims["sub"], "agent:a1");
    assert_eq!(claims["roles"], json!(["agent"]));
    assert_eq!(claims["ver"], 3);
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["exp"], NOW + 900);
    let jti = claims["jti"].as_str().expect("jti");
    assert_eq!(
        uuid::Uuid::parse_str(jti).map(|id| id.get_version_num()),
        Ok(4)
    );
    assert_ne!(
        agent_token(&issuer, NOW),
        token,
        "each token has its own jti"
    );
}

#[test]
fn the_key_id_is_sixteen_hex_digits() {
    let issuer = issuer();
    assert_eq!(issuer.kid().len(), 16);
    assert!(issuer.kid().chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(issuer.kid(), super::super::testing::issuer().kid());
}

#[test]
fn a_token_expires_at_its_exp() {
    let issuer = issuer();
    let token = agent_token(&issuer, NOW);
    assert!(issuer.verify(&token, NOW + 899).is_ok());
    assert_eq!(issuer.verify(&token, NOW + 900), Err(TokenError::Expired));
    assert_eq!(issuer.verify(&token, u64::MAX), Err(TokenError::Expired));
}

#[test]
fn garbage_is_malformed() {
    let issuer = issuer();
    for garbage in ["", "abc", "a.b", "a.b.c", "....", "Bearer x.y.z"] {
        assert_eq!(
            issuer.verify(garbage, NOW),
            Err(TokenError::Malformed),
            "{garbage:?}"
        );
    }
}

#[test]
fn a_changed_signature_does_not_verify() {
    let issuer = issuer();
    let token = agent_token(&issuer, NOW);
    let (body, signature) = token.rsplit_once('.').expect("three segments");
    let mut bytes = signature.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{body}.{}", String::from_utf8(bytes).expect("ascii"));
    assert_eq!(issuer.verify(&tampered, NOW), Err(TokenError::Signature));
}

#[test]
fn changed_claims_do_not_verify() {
    let issuer = issuer();
    let token = agent_token(&issuer, NOW);
    let mut escalated = claims(&issuer);
    escalated["roles"] = json!(["admin"]);
    let forged = forge(&token, None, Some(&escalated.to_string()));
    assert_eq!(issuer.verify(&forged, NOW), Err(TokenError::Signature));
}

#[test]
fn alg_none_is_refused() {
    let issuer = issuer();
    let token = agent_token(&issuer, NOW);
    let header = json!({"alg": "none", "typ": "JWT", "kid": issuer.kid()}).to_string();
    let claims = claims(&issuer).to_string();
    let unsigned = format!(
        "{}.{}.",
        b64url(header.as_bytes()),
        b64url(claims.as_bytes())
    );
    assert!(issuer.verify(&unsigned, NOW).is_err());
    // The same with the real signature left on.
    assert!(
        issuer
            .verify(&forge(&token, Some(&header), None), NOW)
            .is_err()
    );
}

#[test]
fn an_hmac_token_is_refused_for_its_algorithm() {
    let issuer = issuer();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(issuer.kid().to_owned());
    let key = EncodingKey::from_secret(issuer.kid().as_bytes()).expect("hmac key");
    let token = jsonwebtoken::encode(&header, &claims(&issuer), &key).expect("signed");
    assert_eq!(issuer.verify(&token, NOW), Err(TokenError::Algorithm));
}

#[test]
fn a_token_of_another_key_is_refused() {
    let issuer = issuer();
    let other = super::super::testing::issuer();
    assert_eq!(
        issuer.verify(&agent_token(&other, NOW), NOW),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn a_token_without_a_key_id_is_refused() {
    let issuer = issuer();
    let token = agent_token(&issuer, NOW);
    let header = json!({"alg": "EdDSA", "typ": "JWT"}).to_string();
    assert_eq!(
        issuer.verify(&forge(&token, Some(&header), None), NOW),
        Err(TokenError::MissingKeyId)
    );
}

#[test]
fn issuer_and_audience_must_match() {
    let key = SigningKey::generate().expect("key");
    let ours = TokenIssuer::new(config(), key.clone());
    let elsewhere = TokenIssuer::new(
        TokenConfig {
            issuer: "elsewhere".into(),
            ..config()
        },
        key.clone(),
    );
    let other_audience = TokenIssuer::new(
        TokenConfig {
            audience: "billing".into(),
            ..config()
        },
        key,
    );
    assert_eq!(
        ours.verify(&agent_token(&elsewhere, NOW), NOW),
        Err(TokenError::Issuer)
    );
    assert_eq!(
        ours.verify(&agent_token(&other_audience, NOW), NOW),
        Err(TokenError::Audience)
    );
    assert!(ours.verify(&agent_token(&ours, NOW), NOW).is_ok());
}

#[test]
fn the_subject_must_be_an_agent_or_an_account() {
    let issuer = issuer();
    for sub in ["engine", "bogus", "agent:", "user:x"] {
        let mut bad = claims(&issuer);
        bad["sub"] = json!(sub);
        assert_eq!(
            issuer.verify(&signed(&issuer, &bad), NOW),
            Err(TokenError::Subject),
            "{sub}"
        );
    }
    assert_eq!(
        issuer.issue(&Actor::Engine, &agent_roles(), 1, NOW),
        Err(TokenError::Subject)
    );
    assert!(
        issuer
            .verify(&signed(&issuer, &claims(&issuer)), NOW)
            .is_ok()
    );
}

#[test]
fn an_unknown_role_is_refused() {
    let issuer = issuer();
    let mut bad = claims(&issuer);
    bad["roles"] = json!(["agent", "root"]);
    assert_eq!(
        issuer.verify(&signed(&issuer, &bad), NOW),
        Err(TokenError::UnknownRole)
    );
}

#[test]
fn missing_claims_are_malformed() {
    let issuer = issuer();
    for claim in ["iss", "aud", "sub", "roles", "ver", "exp"] {
        let mut bad = claims(&issuer);
        bad.as_object_mut().expect("object").remove(claim);
        assert_eq!(
            issuer.verify(&signed(&issuer, &bad), NOW),
            Err(TokenError::Malformed),
            "{claim}"
        );
    }
}

#[test]
fn refusals_and_debug_never_show_the_token() {
    let issuer = issuer();
    let other = issuer_with(config());
    let issued = issuer
        .issue(&Actor::Agent("a1".into()), &agent_roles(), 1, NOW)
        .expect("issued");
    let token = issued.token.clone();
    let signature = token.rsplit_once('.').map(|(_, s)| s).unwrap_or_default();
    let refusals = [
        issuer.verify(&token, NOW + 10_000),
        other.verify(&token, NOW),
        issuer.verify(&token[..token.len() - 4], NOW),
    ];
    for refusal in refusals {
        let message = refusal.expect_err("refused").to_string();
        assert!(!message.contains(signature), "{message}");
        assert!(!message.contains(&token[..20]), "{message}");
    }
    let debug = format!("{issued:?} {issuer:?}");
    assert!(!debug.contains(signature), "{debug}");
    assert!(debug.contains("<redacted>"));
}

#[test]
fn without_a_directory_each_key_is_new() {
    let first = SigningKey::load_or_create(None).expect("key");
    let second = SigningKey::load_or_create(None).expect("key");
    assert_ne!(first.kid(), second.kid());
}

#[test]
fn the_key_file_is_private_and_outlives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    let first = SigningKey::load_or_create(Some(&keys)).expect("created");
    let path = keys.join(KEY_FILE);
    let mode = fs::metadata(&path).expect("key file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        fs::read_dir(&keys).expect("dir").count(),
        1,
        "no temporary file is left behind"
    );

    let before = TokenIssuer::new(config(), first);
    let token = agent_token(&before, NOW);
    let second = SigningKey::load_or_create(Some(&keys)).expect("read back");
    assert_eq!(second.kid(), before.kid());
    let after = TokenIssuer::new(config(), second);
    assert!(after.verify(&token, NOW).is_ok());
}

#[test]
fn a_key_file_that_is_not_a_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join(KEY_FILE), b"not a key").expect("written");
    let error = SigningKey::load_or_create(Some(dir.path())).expect_err("refused");
    assert!(matches!(error, KeyError::Invalid(_)), "{error}");
}
