//! Step expressions: which agents a queue step may offer work to.
//!
//! An expression is written over an agent's attributes, each a proficiency
//! 1-10 or a flag stored as 1; an absent attribute counts as 0.
//!
//! ```text
//! expr       := and_expr ( OR and_expr )*
//! and_expr   := primary ( AND primary )*
//! primary    := '(' expr ')' | TRUE | FALSE | ident [ op value ]
//! op         := '=' | '!=' | '>=' | '<=' | '>' | '<'
//! value      := integer 0..=10 | TRUE | FALSE
//! ident      := [A-Za-z_][A-Za-z0-9_.-]*   (at most 64 characters, not a keyword)
//! ```
//!
//! `ident` is the grammar of attribute names, the same one agents' attributes are checked
//! against (`bounds::attribute_name_error`), so any attribute an agent may have can be named.
//! Keywords are case-insensitive; attribute names are not. The text comes
//! from the network, so its length, nesting and number of terms are bounded
//! and every failure is an [`ExprError`] pointing at a column.
//!
//! The lexer (`lexer`) cuts the text into tokens, the parser (`parser`) builds a tree of
//! `Node`s from them, and the tree is evaluated here against an agent's attributes.

mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

/// A parsed step expression; parse once, evaluate many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    source: String,
    root: Node,
}

/// Where and why a step expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ExprError {
    /// 1-based, counted in chars.
    pub column: usize,
    pub message: String,
}

impl ExprError {
    fn new(column: usize, message: impl Into<String>) -> Self {
        Self {
            column,
            message: message.into(),
        }
    }
}

impl Expr {
    /// Parses `source`, keeping it verbatim for [`Expr::source`].
    pub fn parse(source: &str) -> Result<Expr, ExprError> {
        let root = parser::parse(source)?;
        Ok(Expr {
            source: source.to_owned(),
            root,
        })
    }

    pub fn matches(&self, attributes: &BTreeMap<String, u32>) -> bool {
        self.root.eval(attributes)
    }

    /// The text as given to [`Expr::parse`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The expression `TRUE`, which matches every agent.
    pub fn always() -> Expr {
        Expr {
            source: "TRUE".to_owned(),
            root: Node::Const(true),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

// Stored as the source text, so a journal shows what the operator wrote and a
// replay re-validates it.
impl serde::Serialize for Expr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> serde::Deserialize<'de> for Expr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = <String as serde::Deserialize>::deserialize(deserializer)?;
        Expr::parse(&source).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Const(bool),
    Test { attribute: Box<str>, test: Test },
    All(Box<[Node]>),
    Any(Box<[Node]>),
}

impl Node {
    fn eval(&self, attributes: &BTreeMap<String, u32>) -> bool {
        match self {
            Node::Const(value) => *value,
            Node::Test { attribute, test } => {
                test.holds(attributes.get(&**attribute).copied().unwrap_or(0))
            }
            Node::All(nodes) => nodes.iter().all(|node| node.eval(attributes)),
            Node::Any(nodes) => nodes.iter().any(|node| node.eval(attributes)),
        }
    }
}

/// A test on one attribute's value; boolean forms are resolved at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    Has,
    Lacks,
    Eq(u32),
    Ne(u32),
    Gt(u32),
    Ge(u32),
    Lt(u32),
    Le(u32),
}

impl Test {
    fn holds(self, value: u32) -> bool {
        match self {
            Test::Has => value > 0,
            Test::Lacks => value == 0,
            Test::Eq(n) => value == n,
            Test::Ne(n) => value != n,
            Test::Gt(n) => value > n,
            Test::Ge(n) => value >= n,
            Test::Lt(n) => value < n,
            Test::Le(n) => value <= n,
        }
    }
}
