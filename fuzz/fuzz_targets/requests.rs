//! Every request type from arbitrary bytes: the first byte picks the RPC (from the descriptor
//! set's methods, `api::decode::METHODS`), the rest is its body. Decoding and validating it as
//! the handler does never panics and ends in OK, INVALID_ARGUMENT (naming a field), NOT_FOUND
//! (a service this server does not host), INTERNAL (a body that does not decode, as tonic
//! answers it) or, from `AuthService`, UNAUTHENTICATED (a refresh token that does not parse is
//! refused as a wrong one is).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use switchboard::api::decode::{METHODS, check_request};
use switchboard::domain::ServiceDirectory;
use tonic::Code;

static DIRECTORY: LazyLock<ServiceDirectory> =
    LazyLock::new(|| ServiceDirectory::new(uuid::Uuid::nil(), "processor"));

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(pick) % METHODS.len()];
    let Err(status) = check_request(&DIRECTORY, method, body) else {
        return;
    };
    match status.code() {
        Code::InvalidArgument | Code::NotFound | Code::Internal => {}
        Code::Unauthenticated if method.starts_with("/switchboard.v1.AuthService/") => {}
        other => panic!("{method}: unexpected {other:?}: {}", status.message()),
    }
    assert!(!status.message().is_empty(), "{method}: a status says why");
});
