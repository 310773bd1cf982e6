//! Inputs the fuzz targets (`fuzz/`) once stopped on, each kept as the check it failed.

use switchboard::api::decode::check_request;
use switchboard::domain::ServiceDirectory;
use tonic::Code;

fn directory() -> ServiceDirectory {
    ServiceDirectory::new(uuid::Uuid::nil(), "processor")
}

/// `requests`: a refresh token that does not parse is refused as a wrong one is, with
/// UNAUTHENTICATED and the message that never says which part was wrong.
#[test]
fn a_malformed_refresh_token_is_unauthenticated() {
    // The body the fuzzer found: a `refresh_token` (field 1) of 42 bytes that is no token.
    let body = b"\x0a************************\x06ta\x1a\x04chapz\x09nz\x08accep";
    for method in ["Refresh", "Logout"] {
        let status = check_request(
            &directory(),
            &format!("/switchboard.v1.AuthService/{method}"),
            body,
        )
        .expect_err(method);
        assert_eq!(status.code(), Code::Unauthenticated, "{method}: {status:?}");
        assert_eq!(status.message(), "agent id or password is wrong");
    }
}
