//! The step expression language's unit tests: errors and their columns, evaluation, limits,
//! and a deterministic fuzz.

use std::collections::BTreeMap;

use super::parser::{EXPECTED_PRIMARY, KEYWORD_COMPARED, NUMBER_AS_PRIMARY, expected_value};
use super::*;

fn attrs(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn err(source: &str) -> ExprError {
    Expr::parse(source).expect_err(source)
}

fn ok(source: &str) -> Expr {
    Expr::parse(source).unwrap_or_else(|e| panic!("{source:?}: {e}"))
}

fn assert_err(source: &str, column: usize, message: &str) {
    assert_eq!(
        err(source),
        ExprError::new(column, message),
        "source {source:?}"
    );
}

#[test]
fn empty_and_blank_input_point_at_column_one() {
    assert_err("", 1, EXPECTED_PRIMARY);
    assert_err("   \t ", 1, EXPECTED_PRIMARY);
}

#[test]
fn proficiency_out_of_range() {
    assert_err("sales >= 11", 10, "proficiency must be 0 to 10");
    assert_err(
        "sales = 99999999999999999999999999999",
        9,
        "proficiency must be 0 to 10",
    );
    assert_err("sales = 4294967296", 9, "proficiency must be 0 to 10");
}

#[test]
fn missing_value_points_past_the_end() {
    assert_err("sales >=", 9, &expected_value());
    assert_err("sales >=   ", 12, &expected_value());
    assert_err("sales >= chat", 10, &expected_value());
}

#[test]
fn unbalanced_parentheses() {
    assert_err("(sales > 3", 1, "'(' is never closed");
    assert_err("a AND ((b) OR c", 7, "'(' is never closed");
    assert_err("sales > 3)", 10, "unexpected ')'");
    assert_err("()", 2, EXPECTED_PRIMARY);
    assert_err("(sales chat)", 8, "expected AND, OR or ')'");
}

#[test]
fn misplaced_keywords_and_terms() {
    assert_err("sales AND AND chat", 11, EXPECTED_PRIMARY);
    assert_err("sales OR", 9, EXPECTED_PRIMARY);
    assert_err("OR sales", 1, EXPECTED_PRIMARY);
    assert_err("sales chat", 7, "expected AND, OR or the end");
    assert_err("sales > 3 4", 11, "expected AND, OR or the end");
    assert_err("3 > sales", 1, NUMBER_AS_PRIMARY);
    assert_err("3d >= 1", 1, NUMBER_AS_PRIMARY);
    assert_err("x OR true >= 1", 6, KEYWORD_COMPARED);
    assert_err("False = TRUE", 1, KEYWORD_COMPARED);
}

#[test]
fn bad_characters() {
    assert_err("sales # 3", 7, "unexpected character '#'");
    assert_err(
        "sales ! 3",
        7,
        "unexpected character '!' (use '!=' to compare)",
    );
    assert_err("sales >= -1", 10, "unexpected character '-'");
    // Columns count chars, not bytes: the no-break space is whitespace.
    assert_err(
        "\u{a0}é",
        2,
        "unexpected character 'é' (attribute names are ASCII letters, digits, '_', '.' and '-', \
         starting with a letter or '_')",
    );
    assert_err("a\u{3000}\u{3000}#", 4, "unexpected character '#'");
}

#[test]
fn boolean_with_ordering_operator_is_rejected() {
    for op in [">", "<", ">=", "<="] {
        assert_err(
            &format!("chat {op} TRUE"),
            6,
            "a boolean compares only with = or !=",
        );
    }
}

#[test]
fn error_displays_column_and_message() {
    assert_eq!(
        err("sales # 3").to_string(),
        "column 7: unexpected character '#'"
    );
}

#[test]
fn and_binds_tighter_than_or() {
    let e = ok("a OR b AND c");
    assert!(e.matches(&attrs(&[("a", 1)])));
    assert!(!e.matches(&attrs(&[("b", 1)])));
    assert!(e.matches(&attrs(&[("b", 1), ("c", 1)])));
    let e = ok("a AND b OR c");
    assert!(e.matches(&attrs(&[("c", 1)])));
    assert!(!e.matches(&attrs(&[("a", 1)])));
}

#[test]
fn parentheses_group() {
    let e = ok("(a OR b) AND c");
    assert!(!e.matches(&attrs(&[("a", 1)])));
    assert!(e.matches(&attrs(&[("a", 1), ("c", 1)])));
    assert!(e.matches(&attrs(&[("b", 1), ("c", 1)])));
    assert!(ok("((a))").matches(&attrs(&[("a", 1)])));
}

#[test]
fn comparisons() {
    let agent = attrs(&[("sales", 7)]);
    let cases = [
        ("sales", true),
        ("sales = 7", true),
        ("sales != 7", false),
        ("sales >= 7", true),
        ("sales > 7", false),
        ("sales <= 6", false),
        ("sales < 8", true),
        ("sales=7", true),
        ("sales>=8", false),
        ("sales<10", true),
    ];
    for (source, expected) in cases {
        assert_eq!(ok(source).matches(&agent), expected, "{source}");
    }
}

#[test]
fn absent_attribute_counts_as_zero() {
    let nobody = BTreeMap::new();
    assert!(!ok("sales").matches(&nobody));
    assert!(ok("sales = 0").matches(&nobody));
    assert!(ok("sales < 1").matches(&nobody));
    assert!(!ok("sales >= 1").matches(&nobody));
    assert!(ok("sales = FALSE").matches(&nobody));
    // A stored 0 is the same as absent.
    assert!(!ok("sales").matches(&attrs(&[("sales", 0)])));
}

#[test]
fn booleans() {
    let vip = attrs(&[("vip", 1)]);
    let plain = BTreeMap::new();
    for (source, on_vip) in [
        ("vip = TRUE", true),
        ("vip = FALSE", false),
        ("vip != TRUE", false),
        ("vip != FALSE", true),
    ] {
        let e = ok(source);
        assert_eq!(e.matches(&vip), on_vip, "{source}");
        assert_eq!(e.matches(&plain), !on_vip, "{source}");
    }
    assert!(ok("TRUE").matches(&plain));
    assert!(!ok("FALSE").matches(&vip));
    assert!(ok("FALSE OR vip").matches(&vip));
    assert!(!ok("TRUE AND vip").matches(&plain));
}

#[test]
fn keywords_are_case_insensitive_names_are_not() {
    let agent = attrs(&[("a", 1), ("Vip", 1)]);
    assert!(ok("a and Vip = true").matches(&agent));
    assert!(ok("false Or a aNd vip = False").matches(&agent));
    assert!(!ok("vip").matches(&agent));
    assert!(ok("tRuE").matches(&BTreeMap::new()));
}

#[test]
fn identifiers_allow_dots_dashes_digits() {
    let agent = attrs(&[("lang.fr-CA_2", 5)]);
    assert!(ok("lang.fr-CA_2 >= 5").matches(&agent));
    assert!(ok("_x OR lang.fr-CA_2").matches(&agent));
    // A keyword prefix does not make a keyword.
    assert!(ok("android OR orders OR true_x").matches(&attrs(&[("orders", 2)])));
}

#[test]
fn always_matches_everyone_and_equals_parsed_true() {
    let e = Expr::always();
    assert!(e.matches(&BTreeMap::new()));
    assert_eq!(e, ok("TRUE"));
    assert_eq!(e.source(), "TRUE");
}

#[test]
fn source_is_kept_verbatim() {
    let text = "  a   or (b)  ";
    assert_eq!(ok(text).source(), text);
    assert_eq!(ok(text).to_string(), text);
}

#[test]
fn depth_limit() {
    let deepest = format!("{}a{}", "(".repeat(32), ")".repeat(32));
    assert!(ok(&deepest).matches(&attrs(&[("a", 1)])));
    let too_deep = format!("{}a{}", "(".repeat(33), ")".repeat(33));
    assert_err(&too_deep, 33, "parentheses nest deeper than 32");
    let way_too_deep = "(".repeat(1000);
    assert_err(&way_too_deep, 33, "parentheses nest deeper than 32");
}

#[test]
fn length_limit() {
    // 64 terms of 12 characters joined by " OR ", padded to exactly 1024.
    let terms: Vec<String> = (0..64).map(|i| format!("skill_{i:06}")).collect();
    let longest = format!("{:<1024}", terms.join(" OR "));
    assert_eq!(longest.chars().count(), 1024);
    assert!(ok(&longest).matches(&attrs(&[("skill_000063", 1)])));
    assert_err(
        &"a".repeat(1025),
        1025,
        "expression is longer than 1024 characters",
    );
    // Counted in chars: 1024 two-byte chars still fit the limit check.
    assert_eq!(err(&"é".repeat(1024)).column, 1);
    assert_eq!(err(&"é".repeat(1025)).column, 1025);
}

#[test]
fn attribute_names_follow_the_shared_grammar() {
    let longest = "a".repeat(64);
    assert!(ok(&longest).matches(&attrs(&[(&longest, 1)])));
    assert_err(
        &format!("x OR {}", "a".repeat(65)),
        6,
        "attribute name is longer than 64 characters",
    );
    // A keyword is a keyword in any case, never an attribute name.
    for keyword in crate::domain::bounds::EXPRESSION_KEYWORDS {
        for word in [keyword.to_owned(), keyword.to_lowercase()] {
            let refused = crate::domain::bounds::attribute_name_error(&word);
            assert!(refused.is_some_and(|r| r.contains("keyword")), "{word}");
            // As a name, `word >= 1` would parse.
            assert!(Expr::parse(&format!("{word} >= 1")).is_err(), "{word}");
        }
    }
}

#[test]
fn term_limit() {
    let names: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    let most = names[..64].join(" OR ");
    let e = ok(&most);
    assert!(e.matches(&attrs(&[("s63", 1)])));
    let too_many = names.join(" OR ");
    let column = most.chars().count() + " OR ".len() + 1;
    assert_err(&too_many, column, "expression has more than 64 terms");
    // Literals are terms too.
    let literals = vec!["TRUE"; 65].join(" AND ");
    assert_eq!(err(&literals).column, 64 * 9 + 1);
}

#[test]
fn serde_round_trip() {
    let e = ok("(sales >= 5 OR chat) AND vip = TRUE");
    let json = serde_json::to_string(&e).unwrap();
    assert_eq!(json, r#""(sales >= 5 OR chat) AND vip = TRUE""#);
    let back: Expr = serde_json::from_str(&json).unwrap();
    assert_eq!(back, e);
    let bad = serde_json::from_str::<Expr>(r#""sales >= 11""#).unwrap_err();
    assert!(
        bad.to_string()
            .contains("column 10: proficiency must be 0 to 10"),
        "{bad}"
    );
    assert!(serde_json::from_str::<Expr>("3").is_err());
}

/// Deterministic so a failure reproduces.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % bound
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const NAMES: &[&str] = &["sales", "chat", "vip", "a.b-c_1", "_x"];
const OPS: &[&str] = &["=", "!=", ">=", "<=", ">", "<"];
const VALUES: &[&str] = &["0", "3", "10", "TRUE", "false"];
const NOISE: &[&str] = &[
    "AND",
    "or",
    "TRUE",
    "(",
    ")",
    "=",
    "!",
    "11",
    "99999999999",
    "#",
    "-",
    "é",
    "\u{a0}",
    "\t",
    "sales",
    "3",
];

/// Mostly well-formed text from the grammar, so the success path is exercised.
fn grammatical(rng: &mut Lcg, depth: usize, out: &mut String) {
    for i in 0..=rng.below(3) {
        if i > 0 {
            out.push_str(rng.pick(&[" AND ", " OR ", " and ", " Or "]));
        }
        match rng.below(6) {
            0 if depth < 4 => {
                out.push('(');
                grammatical(rng, depth + 1, out);
                out.push(')');
            }
            1 => out.push_str(rng.pick(&["TRUE", "FALSE", "true"])),
            2 | 3 => out.push_str(rng.pick(NAMES)),
            _ => {
                out.push_str(rng.pick(NAMES));
                out.push_str(rng.pick(&["", " "]));
                out.push_str(rng.pick(OPS));
                out.push_str(rng.pick(&["", " "]));
                out.push_str(rng.pick(VALUES));
            }
        }
    }
}

/// Any sequence of the grammar's pieces and a few strangers.
fn scrambled(rng: &mut Lcg, out: &mut String) {
    for _ in 0..rng.below(16) {
        let piece = match rng.below(4) {
            0 => rng.pick(NAMES),
            1 => rng.pick(OPS),
            2 => rng.pick(VALUES),
            _ => rng.pick(NOISE),
        };
        out.push_str(piece);
        if rng.below(2) == 0 {
            out.push(' ');
        }
    }
}

#[test]
fn fuzz_never_panics_and_reparses_equal() {
    let agents = [
        BTreeMap::new(),
        attrs(&[("sales", 3), ("vip", 1)]),
        attrs(&[("chat", 10), ("a.b-c_1", 1), ("_x", 2)]),
    ];
    let mut rng = Lcg(0x5eed_cafe);
    let mut parsed = 0;
    for case in 0..6000 {
        let mut source = String::new();
        match case % 3 {
            0 => scrambled(&mut rng, &mut source),
            1 => grammatical(&mut rng, 0, &mut source),
            _ => {
                // One piece dropped into valid text, to hit errors deep in a parse.
                grammatical(&mut rng, 0, &mut source);
                let mut at = rng.below(source.len() + 1);
                while !source.is_char_boundary(at) {
                    at -= 1;
                }
                source.insert_str(at, rng.pick(NOISE));
            }
        }
        match Expr::parse(&source) {
            Ok(e) => {
                parsed += 1;
                assert_eq!(
                    Expr::parse(e.source()).as_ref(),
                    Ok(&e),
                    "case {case}: {source:?}"
                );
                // Padding and one more pair of parentheses change nothing but the text.
                let wrapped = ok(&format!(" ( {source} ) "));
                assert_eq!(wrapped.root, e.root, "case {case}: {source:?}");
                for agent in &agents {
                    assert_eq!(wrapped.matches(agent), e.matches(agent));
                }
            }
            Err(e) => {
                let end = source.chars().count() + 1;
                assert!(
                    (1..=end).contains(&e.column),
                    "case {case}: {source:?} gave {e}"
                );
                assert!(!e.message.is_empty());
            }
        }
    }
    // Both paths must be reached, or the loop proves little.
    assert!((1000..5000).contains(&parsed), "{parsed} of 6000 parsed");
}
