//! Step expressions, as an operator's `UpsertQueue` sends them: parsing never panics, and an
//! accepted expression keeps its text, parses again to the same tree, survives its journal form
//! (serde) and evaluates against any attributes.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use switchboard::domain::routing::expr::Expr;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = Expr::parse(source) else {
        return;
    };
    assert_eq!(expr.source(), source);
    assert_eq!(Expr::parse(expr.source()).as_ref(), Ok(&expr));
    let journaled = serde_json::to_string(&expr).expect("an expression serialises");
    let replayed: Expr = serde_json::from_str(&journaled).expect("its journal form reads back");
    assert_eq!(replayed, expr);
    // Every byte of the input as an attribute value, under names taken from the text.
    let attributes: BTreeMap<String, u32> = source
        .split(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
        .filter(|word| !word.is_empty())
        .zip(data.iter().map(|b| u32::from(*b % 12)))
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    let _ = expr.matches(&attributes);
    let _ = expr.matches(&BTreeMap::new());
});
