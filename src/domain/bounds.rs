//! Every bound the domain enforces, in one place, with the small checks that enforce them.
//!
//! Requests come from the network, so every count, length and duration a request can set has
//! a maximum here; the domain's validation uses these constants and its messages are built from
//! them, so a message always states the bound that refused the value. The checks return
//! [`DomainError::invalid`] naming the field, so the API layer can use the same ones.
//!
//! Durations are in milliseconds, as the domain keeps them; the contract sets them in seconds,
//! so their messages speak in seconds.
//!
//! Text is counted in characters (Unicode scalar values), not bytes. No id, name or text may
//! carry a control character (NUL, ESC, CR, LF, DEL, C1...) or a bidirectional override or
//! isolate (U+202A-U+202E, U+2066-U+2069), which could forge what a log line or a supervisor's
//! screen shows; multi-line free text alone may hold tabs and line breaks.

use super::error::{DomainError, DomainResult};
use super::events::Millis;
use super::ids::shorten;

// ----- ids and names ---------------------------------------------------------------------------

/// Longest id or name (agent, MRD, queue, reason code, task, workflow model, service, attribute
/// of a task), in characters. An id is 1 to this many letters, digits, `.`, `_`, `@` and `-`.
pub const MAX_ID_CHARS: usize = 128;
/// Longest free-text name: a reason code's label, an agent's display name, a client's name.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest id or name minted elsewhere that the domain only keeps or looks up: a task's
/// conversation id, a session's resource id, a workflow model's action, a desktop's CTI.
pub const MAX_EXTERNAL_ID_CHARS: usize = 512;

// ----- requests --------------------------------------------------------------------------------

/// Longest `request_id` of a request (the idempotency key), and of a `Connect` frame.
pub const MAX_REQUEST_ID_CHARS: usize = 128;
/// Clients one principal may hold registered at once: a desktop or two per agent, a few per
/// channel server; enough that no one can inflate a server's client count.
pub const MAX_CLIENTS_PER_PRINCIPAL: usize = 16;
/// Items on a page when a listing's `page_size` is 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest `page_size` a listing may ask for.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Longest `page_token`: a token carries the last key of the page before (an id of at most
/// [`MAX_ID_CHARS`] characters, each up to 4 bytes) as hex, behind a short prefix.
pub const MAX_PAGE_TOKEN_CHARS: usize = 8 * MAX_ID_CHARS + 8;
/// Most event kinds a routing watch may filter on: one entry per kind (there are seven).
pub const MAX_WATCH_KINDS: usize = 7;

// ----- sessions and clients --------------------------------------------------------------------

/// Longest password, in bytes; bounds what hashing and checking it costs. A password is
/// otherwise opaque: any character may be in it.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest phone extension an agent connects with.
pub const MAX_EXTENSION_CHARS: usize = 128;
/// Longest destination (a device or an address) an agent connects with.
pub const MAX_DESTINATION_CHARS: usize = 256;

// ----- agents ----------------------------------------------------------------------------------

/// Lowest proficiency an agent attribute may hold; an attribute the agent lacks is left out
/// (expressions read an absent attribute as 0).
pub const MIN_PROFICIENCY: u32 = 1;
/// Highest proficiency an agent attribute may hold; a flag is 1.
pub const MAX_PROFICIENCY: u32 = 10;
/// Most attributes (skills and flags) one agent may have.
pub const MAX_AGENT_ATTRIBUTES: usize = 256;
/// Longest attribute name, in characters; see [`attribute_name_error`] for the grammar.
pub const MAX_ATTRIBUTE_NAME_CHARS: usize = 64;
/// Most per-MRD max-task overrides one agent may have.
pub const MAX_AGENT_MRD_OVERRIDES: usize = 64;
/// Most tasks an agent may hold on one MRD (an MRD's `max_tasks` and an agent's override).
pub const MAX_TASKS_PER_MRD: u32 = 100;

// ----- MRDs and queues -------------------------------------------------------------------------

/// Shortest offer timeout: 1 second.
pub const MIN_OFFER_TIMEOUT_MS: Millis = 1_000;
/// Longest offer timeout: 1 hour. An offer rings for seconds; an hour already covers slow media
/// (email, callbacks) without letting a typo park an agent for days.
pub const MAX_OFFER_TIMEOUT_MS: Millis = 3_600_000;
/// Longest wrap-up: 1 day (0: none). Wrap-up takes minutes; a day is the outer limit of a
/// shift, after which the task closes by itself.
pub const MAX_WRAP_UP_TIMEOUT_MS: Millis = 86_400_000;
/// Most steps a queue may have.
pub const MAX_QUEUE_STEPS: usize = 10;
/// Most classifiers an MRD may have: each new task may be tried against all of them.
pub const MAX_CLASSIFIERS: usize = 64;
/// Most disposition (wrap-up) codes a queue may offer: a desktop lists them all at once.
pub const MAX_DISPOSITION_CODES: usize = 100;
/// Longest a task may wait at one queue step before the search widens: 1 day (0: it stays).
pub const MAX_STEP_TIMEOUT_MS: Millis = 86_400_000;
/// Longest time to live of a waiting task: 7 days (0: no limit). Deferred media such as email
/// may wait days; a week bounds what a queue can hold.
pub const MAX_TASK_TTL_MS: Millis = 604_800_000;
/// Most offers a queue may let a task go through (rejections and RONAs) before it acts
/// (`max_attempts`; 0: no limit).
pub const MAX_QUEUE_ATTEMPTS: u32 = 100;
/// Longest service level threshold: 1 hour. Answering within minutes is what a target says.
pub const MAX_SERVICE_LEVEL_THRESHOLD_MS: Millis = 3_600_000;
/// Shortest service level window: 1 minute.
pub const MIN_SERVICE_LEVEL_WINDOW_MS: Millis = 60_000;
/// Longest service level window: 1 day (a shift).
pub const MAX_SERVICE_LEVEL_WINDOW_MS: Millis = 86_400_000;
/// The service level window of a queue that names none: 30 minutes.
pub const DEFAULT_SERVICE_LEVEL_WINDOW_MS: Millis = 1_800_000;
/// Time buckets a service level window counts in: its memory per queue, whatever the traffic.
pub const SERVICE_LEVEL_BUCKETS: u64 = 60;
/// Most other MRDs one MRD may block (`blocks`): a center has a handful of media.
pub const MAX_MRD_BLOCKS: usize = 16;

// ----- step expressions ------------------------------------------------------------------------

/// Longest step expression, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 1024;
/// Deepest nesting of parentheses in a step expression; bounds the parser's recursion.
pub const MAX_EXPRESSION_DEPTH: usize = 32;
/// Most attribute tests and TRUE/FALSE literals in one step expression.
pub const MAX_EXPRESSION_TERMS: usize = 64;

// ----- tasks -----------------------------------------------------------------------------------

/// Lowest priority a task may be given.
pub const MIN_PRIORITY: u8 = 1;
/// Highest priority a task may be given (a requeued task goes ahead of all, at 11).
pub const MAX_PRIORITY: u8 = 10;
/// The priority of a task that names none.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Most preferred agents a task may name: a short list checked one by one, never a search.
pub const MAX_PREFERRED_AGENTS: usize = 10;
/// Longest a task may wait for its preferred agents alone: 1 hour. Past that the customer
/// waits for a person, not for the right one.
pub const MAX_PREFERRED_TIMEOUT_MS: Millis = 3_600_000;
/// Most labels a task may carry.
pub const MAX_TASK_LABELS: usize = 64;
/// Longest task label, in characters.
pub const MAX_TASK_LABEL_CHARS: usize = 256;
/// Most attributes a task may carry.
pub const MAX_TASK_ATTRIBUTES: usize = 64;
/// Longest value of a task attribute, in characters (its name is at most [`MAX_ID_CHARS`]).
pub const MAX_TASK_ATTRIBUTE_VALUE_CHARS: usize = 1024;

// ----- checks ----------------------------------------------------------------------------------

/// Whether `c` is a bidirectional override or isolate: it reorders how the text around it is
/// shown.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The reason a character may not appear in an id, a name or a text, if it may not.
fn forbidden(c: char, multiline: bool) -> Option<String> {
    if c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')) {
        Some(format!(
            "must not contain control character U+{:04X}",
            u32::from(c)
        ))
    } else if is_bidi_control(c) {
        Some(format!(
            "must not contain bidirectional control U+{:04X}",
            u32::from(c)
        ))
    } else {
        None
    }
}

fn check_length(field: &'static str, value: &str, max_chars: usize) -> DomainResult<()> {
    if value.chars().nth(max_chars).is_some() {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

/// An id: 1 to [`MAX_ID_CHARS`] letters, digits, `.`, `_`, `@` and `-`.
pub fn check_id(field: &'static str, value: &str) -> DomainResult<()> {
    if value.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    check_length(field, value, MAX_ID_CHARS)?;
    for c in value.chars() {
        if let Some(reason) = forbidden(c, false) {
            return Err(DomainError::invalid(field, reason));
        }
        if !(c.is_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')) {
            return Err(DomainError::invalid(
                field,
                format!("character {c:?} is not allowed (letters, digits, '.', '_', '@', '-')"),
            ));
        }
    }
    Ok(())
}

/// One line of text that must be given: 1 to `max_chars`, no control characters, no
/// bidirectional overrides (an id minted elsewhere, a request id).
pub fn check_required_text(field: &'static str, value: &str, max_chars: usize) -> DomainResult<()> {
    if value.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    check_text(field, value, max_chars)
}

/// A password: 1 to [`MAX_PASSWORD_BYTES`] bytes, otherwise opaque.
/// A password a caller may leave out (signed in with a token instead).
pub fn check_optional_password(field: &'static str, value: &str) -> DomainResult<()> {
    if value.is_empty() {
        Ok(())
    } else {
        check_password(field, value)
    }
}

pub fn check_password(field: &'static str, value: &str) -> DomainResult<()> {
    if value.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_PASSWORD_BYTES {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// An id that may be left empty.
pub fn check_optional_id(field: &'static str, value: &str) -> DomainResult<()> {
    if value.is_empty() {
        Ok(())
    } else {
        check_id(field, value)
    }
}

/// A free-text name, shown to people: at most [`MAX_NAME_CHARS`], one line. May be empty.
pub fn check_name(field: &'static str, value: &str) -> DomainResult<()> {
    check_text(field, value, MAX_NAME_CHARS)
}

/// One line of free text of at most `max_chars`: no control characters, no bidirectional
/// overrides. May be empty.
pub fn check_text(field: &'static str, value: &str, max_chars: usize) -> DomainResult<()> {
    check_length(field, value, max_chars)?;
    match value.chars().find_map(|c| forbidden(c, false)) {
        Some(reason) => Err(DomainError::invalid(field, reason)),
        None => Ok(()),
    }
}

/// Free text of at most `max_chars` that may span lines: tabs, CR and LF are allowed, other
/// control characters and bidirectional overrides are not. May be empty.
pub fn check_multiline_text(
    field: &'static str,
    value: &str,
    max_chars: usize,
) -> DomainResult<()> {
    check_length(field, value, max_chars)?;
    match value.chars().find_map(|c| forbidden(c, true)) {
        Some(reason) => Err(DomainError::invalid(field, reason)),
        None => Ok(()),
    }
}

/// At most `max` entries of what `what` names (`"labels"`, `"attributes"`...).
pub fn check_count(field: &'static str, count: usize, max: usize, what: &str) -> DomainResult<()> {
    if count > max {
        return Err(DomainError::invalid(
            field,
            format!("must have at most {max} {what}, not {count}"),
        ));
    }
    Ok(())
}

/// A duration in `min_ms..=max_ms`; the message states it in seconds, as the contract sets it.
pub fn check_duration(
    field: &'static str,
    value_ms: Millis,
    min_ms: Millis,
    max_ms: Millis,
) -> DomainResult<()> {
    if !(min_ms..=max_ms).contains(&value_ms) {
        return Err(DomainError::invalid(
            field,
            format!(
                "must be {} to {} seconds ({}), not {}",
                min_ms.div_ceil(1000),
                max_ms / 1000,
                spoken(max_ms),
                seconds(value_ms)
            ),
        ));
    }
    Ok(())
}

/// A maximum as people say it: "1 hour", "7 days".
fn spoken(ms: Millis) -> String {
    const UNITS: [(Millis, &str); 4] = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
    ];
    for (unit, name) in UNITS {
        if ms >= unit && ms.is_multiple_of(unit) {
            let n = ms / unit;
            return format!("{n} {name}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("{ms} ms")
}

/// A duration as the contract gives it: whole seconds when it is whole.
fn seconds(ms: Millis) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }
}

/// Says which entry of a list or map a refusal is about: `step 2: must be ...`.
pub fn in_entry(entry: impl std::fmt::Display, result: DomainResult<()>) -> DomainResult<()> {
    result.map_err(|e| match e {
        DomainError::InvalidArgument { field, reason } => {
            DomainError::invalid(field, format!("{entry}: {reason}"))
        }
        other => other,
    })
}

// ----- attribute names -------------------------------------------------------------------------
//
// One grammar for the names of agent attributes, used both where an agent's attributes are
// checked and where a step expression is read, so that every attribute an agent may have can be
// named in an expression and no expression names one an agent may not have:
//
//     name := [A-Za-z_] [A-Za-z0-9_.-]*      at most MAX_ATTRIBUTE_NAME_CHARS, not a keyword
//
// ASCII only: a skill written with a look-alike letter (Cyrillic `а` for Latin `a`) or in
// another Unicode normal form would never match what the operator typed.

/// What an attribute name may be made of, for messages.
pub const ATTRIBUTE_NAME_ALPHABET: &str =
    "ASCII letters, digits, '_', '.' and '-', starting with a letter or '_'";
/// The words of step expressions, in any case; no attribute may be named one of them.
pub const EXPRESSION_KEYWORDS: [&str; 4] = ["AND", "OR", "TRUE", "FALSE"];

/// Whether an attribute name may start with `c`.
pub fn is_attribute_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Whether an attribute name may go on with `c`.
pub fn is_attribute_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Whether `word` is a keyword of step expressions.
pub fn is_expression_keyword(word: &str) -> bool {
    EXPRESSION_KEYWORDS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
}

/// Why `name` is not an attribute name, if it is not.
pub fn attribute_name_error(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Some("an attribute name must not be empty".to_owned());
    };
    if name.chars().nth(MAX_ATTRIBUTE_NAME_CHARS).is_some() {
        return Some(format!(
            "attribute name is longer than {MAX_ATTRIBUTE_NAME_CHARS} characters"
        ));
    }
    let bad = if is_attribute_name_start(first) {
        chars.find(|c| !is_attribute_name_char(*c))
    } else {
        Some(first)
    };
    if let Some(c) = bad {
        let shown = forbidden(c, false)
            .map_or_else(|| format!("{c:?}"), |_| format!("U+{:04X}", u32::from(c)));
        return Some(format!(
            "character {shown} is not allowed in an attribute name ({ATTRIBUTE_NAME_ALPHABET})"
        ));
    }
    if is_expression_keyword(name) {
        return Some(format!(
            "'{name}' is a keyword of step expressions, not an attribute name"
        ));
    }
    None
}

/// An agent attribute's name, by the grammar step expressions read (see above).
pub fn check_attribute_name(field: &'static str, name: &str) -> DomainResult<()> {
    match attribute_name_error(name) {
        Some(reason) if name.is_empty() => Err(DomainError::invalid(field, reason)),
        Some(reason) => Err(DomainError::invalid(
            field,
            format!("{:?}: {reason}", shorten(name)),
        )),
        None => Ok(()),
    }
}

/// A proficiency an agent attribute holds: [`MIN_PROFICIENCY`] to [`MAX_PROFICIENCY`].
pub fn check_proficiency(field: &'static str, name: &str, value: u32) -> DomainResult<()> {
    if !(MIN_PROFICIENCY..=MAX_PROFICIENCY).contains(&value) {
        return Err(DomainError::invalid(
            field,
            format!(
                "'{name}' is {value}; a proficiency is {MIN_PROFICIENCY} to {MAX_PROFICIENCY} \
                 (a flag is 1; leave out an attribute the agent lacks)"
            ),
        ));
    }
    Ok(())
}

/// A task priority: [`MIN_PRIORITY`] to [`MAX_PRIORITY`].
pub fn check_priority(field: &'static str, value: u8) -> DomainResult<()> {
    if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&value) {
        return Err(DomainError::invalid(
            field,
            format!("must be {MIN_PRIORITY} to {MAX_PRIORITY}, not {value}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: DomainResult<()>) -> String {
        match result {
            Err(DomainError::InvalidArgument { reason, .. }) => reason,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn required_text_and_passwords() {
        assert_eq!(
            reason(check_required_text("cti", "", 8)),
            "must not be empty"
        );
        assert!(check_required_text("cti", "Genesys SIP", 16).is_ok());
        assert!(check_required_text("cti", "a\u{202E}b", 16).is_err());
        assert!(check_password("password", "any \u{1b} thing").is_ok());
        assert!(check_password("password", "").is_err());
        assert!(check_password("password", &"p".repeat(MAX_PASSWORD_BYTES)).is_ok());
        assert_eq!(
            reason(check_password(
                "password",
                &"p".repeat(MAX_PASSWORD_BYTES + 1)
            )),
            "must be at most 1024 bytes"
        );
    }

    #[test]
    fn ids_refuse_control_and_bidi_characters_by_code_point() {
        assert!(check_id("id", "rajat.gupta@example-1_x").is_ok());
        assert!(check_id("id", "é-ü").is_ok());
        for (raw, code) in [
            ("a\0b", "U+0000"),
            ("a\u{1b}[31m", "U+001B"),
            ("a\rb", "U+000D"),
            ("a\nb", "U+000A"),
            ("a\u{7f}", "U+007F"),
            ("a\u{85}", "U+0085"),
        ] {
            assert_eq!(
                reason(check_id("id", raw)),
                format!("must not contain control character {code}")
            );
        }
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(
                reason(check_id("id", &format!("admin{c}x"))),
                format!(
                    "must not contain bidirectional control U+{:04X}",
                    u32::from(c)
                )
            );
        }
        assert_eq!(
            reason(check_id("id", "a b")),
            "character ' ' is not allowed (letters, digits, '.', '_', '@', '-')"
        );
        assert_eq!(reason(check_id("id", "")), "must not be empty");
        assert!(check_id("id", &"a".repeat(MAX_ID_CHARS)).is_ok());
        assert_eq!(
            reason(check_id("id", &"a".repeat(MAX_ID_CHARS + 1))),
            "must be at most 128 characters"
        );
        assert!(check_optional_id("id", "").is_ok());
        assert!(check_optional_id("id", "a\u{1b}").is_err());
    }

    #[test]
    fn names_and_text_allow_spaces_but_not_controls() {
        assert!(check_name("label", "Lunch break (paid) — équipe").is_ok());
        assert!(check_name("label", "").is_ok());
        assert!(check_name("label", "two\nlines").is_err());
        assert!(check_name("label", "tab\there").is_err());
        assert!(check_name("label", "\u{202E}kcab").is_err());
        assert!(check_name("label", &"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(check_name("label", &"é".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(check_multiline_text("v", "line one\r\nline\ttwo", 64).is_ok());
        assert!(check_multiline_text("v", "nul\0", 64).is_err());
        assert!(check_multiline_text("v", "esc\u{1b}", 64).is_err());
        assert!(check_multiline_text("v", "\u{2067}x", 64).is_err());
        assert_eq!(
            reason(check_text("v", "abcd", 3)),
            "must be at most 3 characters"
        );
    }

    #[test]
    fn durations_speak_in_seconds() {
        let offer = |ms| check_duration("mrd.offer_timeout_seconds", ms, 1_000, 3_600_000);
        assert!(offer(1_000).is_ok());
        assert!(offer(3_600_000).is_ok());
        assert_eq!(
            reason(offer(3_600_001)),
            "must be 1 to 3600 seconds (1 hour), not 3600.001"
        );
        assert_eq!(
            reason(offer(4_294_967_295_000)),
            "must be 1 to 3600 seconds (1 hour), not 4294967295"
        );
        assert_eq!(
            reason(offer(0)),
            "must be 1 to 3600 seconds (1 hour), not 0"
        );
        assert_eq!(
            reason(
                check_duration("ttl", 1, 0, MAX_TASK_TTL_MS).and(check_duration(
                    "ttl",
                    MAX_TASK_TTL_MS + 1000,
                    0,
                    MAX_TASK_TTL_MS
                ))
            ),
            "must be 0 to 604800 seconds (7 days), not 604801"
        );
    }

    #[test]
    fn counts_proficiencies_and_priorities() {
        assert!(check_count("labels", 64, 64, "labels").is_ok());
        assert_eq!(
            reason(check_count("labels", 65, 64, "labels")),
            "must have at most 64 labels, not 65"
        );
        assert!(check_proficiency("a", "sales", 1).is_ok());
        assert!(check_proficiency("a", "sales", 10).is_ok());
        assert!(check_proficiency("a", "sales", 0).is_err());
        assert!(check_proficiency("a", "sales", 11).is_err());
        assert!(check_priority("priority", 1).is_ok());
        assert!(check_priority("priority", 10).is_ok());
        assert_eq!(
            reason(check_priority("priority", 0)),
            "must be 1 to 10, not 0"
        );
        assert!(check_priority("priority", 11).is_err());
    }
}
