//! Paging, written once for every listing: `page_size` (0 means the default) and opaque page
//! tokens. A token encodes the last key of the page before (keys are unique and ordered), so
//! a listing resumes exactly where it stopped; a token this server did not make is refused.

use crate::domain::bounds::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_PAGE_TOKEN_CHARS};
use crate::domain::{DomainError, DomainResult, Page};

/// Marks the token format, so that it can change without misreading old tokens.
const TOKEN_PREFIX: &str = "p1.";

/// Where a page starts and how long it is, from a request's `page_size` and `page_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PageRequest {
    pub after: Option<String>,
    pub limit: usize,
}

impl PageRequest {
    pub fn parse(page_size: u32, page_token: &str) -> DomainResult<Self> {
        let limit = match usize::try_from(page_size).unwrap_or(usize::MAX) {
            0 => DEFAULT_PAGE_SIZE,
            n if n <= MAX_PAGE_SIZE => n,
            _ => {
                return Err(DomainError::invalid(
                    "page_size",
                    format!("must be at most {MAX_PAGE_SIZE}"),
                ));
            }
        };
        let after = if page_token.is_empty() {
            None
        } else if page_token.len() > MAX_PAGE_TOKEN_CHARS {
            return Err(DomainError::invalid(
                "page_token",
                format!(
                    "must be at most {MAX_PAGE_TOKEN_CHARS} characters; pass the \
                     next_page_token of the previous page, or leave it empty for the first page"
                ),
            ));
        } else {
            Some(decode(page_token).ok_or_else(|| {
                DomainError::invalid(
                    "page_token",
                    "is not a token this server issued; pass the next_page_token of the \
                     previous page, or leave it empty for the first page",
                )
            })?)
        };
        Ok(Self { after, limit })
    }
}

/// The `next_page_token` of a page: empty on the last one.
pub(super) fn next_page_token<T>(page: &Page<T>) -> String {
    page.next_after.as_deref().map(encode).unwrap_or_default()
}

fn encode(key: &str) -> String {
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + key.len() * 2);
    token.push_str(TOKEN_PREFIX);
    for byte in key.as_bytes() {
        token.push_str(&format!("{byte:02x}"));
    }
    token
}

fn decode(token: &str) -> Option<String> {
    let hex = token.strip_prefix(TOKEN_PREFIX)?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        let page = Page::<()> {
            items: vec![],
            next_after: Some("agent-7".into()),
        };
        let token = next_page_token(&page);
        let parsed = PageRequest::parse(0, &token).unwrap();
        assert_eq!(parsed.after.as_deref(), Some("agent-7"));
        assert_eq!(parsed.limit, DEFAULT_PAGE_SIZE);
        for bad in ["agent-7", "p1.", "p1.zz", "p1.abc", "p1.ff", "x1.61"] {
            let err = PageRequest::parse(0, bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    DomainError::InvalidArgument {
                        field: "page_token",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
        assert!(PageRequest::parse(u32::MAX, "").is_err());
    }

    #[test]
    fn the_longest_key_fits_in_a_token() {
        let key = "\u{10FFFF}".repeat(crate::domain::bounds::MAX_ID_CHARS);
        let token = next_page_token(&Page::<()> {
            items: vec![],
            next_after: Some(key.clone()),
        });
        assert!(token.len() <= MAX_PAGE_TOKEN_CHARS, "{}", token.len());
        assert_eq!(PageRequest::parse(0, &token).unwrap().after, Some(key));
        let err = PageRequest::parse(0, &"p1.00".repeat(MAX_PAGE_TOKEN_CHARS)).unwrap_err();
        assert!(
            err.to_string().starts_with("page_token: must be at most"),
            "{err}"
        );
    }
}
