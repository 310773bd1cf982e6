//! Expressions: which agents a queue step may offer work to ([`Expr`]), and which tasks a
//! classifier takes ([`TaskExpr`]).
//!
//! A step expression is written over an agent's attributes, each a proficiency
//! 1-10 or a flag stored as 1; an absent attribute counts as 0.
//!
//! ```text
//! expr       := and_expr ( OR and_expr )*
//! and_expr   := primary ( AND primary )*
//! primary    := '(' expr ')' | TRUE | FALSE | ident [ op value ]
//! op         := '=' | '!=' | '>=' | '<=' | '>' | '<'
//! value      := integer 0..=10 | TRUE | FALSE | task.ident
//! ident      := [A-Za-z_][A-Za-z0-9_.-]*   (at most 64 characters, not a keyword)
//! ```
//!
//! A task-aware step compares an agent attribute with the task's attribute `ident`
//! (`billing >= task.min_billing`, `lang = task.lang`). The task's value, a string, reads as a
//! number when it is one (`"7"`): the agent's attribute compares with it as with a written
//! number. Otherwise it is a word (`"fr"`): `lang = task.lang` holds when the agent has the
//! flag `lang_fr`, `lang != task.lang` when it lacks it, and an ordering never holds. A task
//! lacking an attribute that a step names matches no agent at that step (see
//! [`Expr::binding`]): the step is skipped for it, as if no agent were in it.
//!
//! A classifier's expression ([`TaskExpr`]) has the same grammar over a task's attributes and
//! labels, with words as values and numbers of any size (`channel = web AND vip`,
//! `amount >= 1000`). A bare name holds when the task has that label or an attribute of that
//! name whose value is not empty, `0` or `false`; `= TRUE`/`= FALSE` test the same. A
//! comparison with a number holds when the attribute's value is a number that compares; with
//! a word, `=` and `!=` compare the text exactly (ordering words is refused). A comparison on
//! an attribute the task lacks never holds, `!=` included.
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

use lexer::Op;

/// What the text may compare with: an agent's proficiencies, or a task's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Agent,
    Task,
}

/// A parsed step expression; parse once, evaluate many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    source: String,
    root: Node,
    /// The task attributes the expression names (`task.lang` -> `lang`), sorted, each once.
    task_refs: Box<[Box<str>]>,
}

/// A task's values for the attributes a task-aware step names, in the order of
/// [`Expr::task_refs`]; the key of the step's pool for such tasks. Empty for a step that looks
/// only at agents.
pub type Binding = Box<[TaskValue]>;

/// A task attribute's value as a task-aware step reads it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskValue {
    Number(u64),
    Word(Box<str>),
}

impl TaskValue {
    fn read(text: &str) -> Self {
        match text.trim().parse::<u64>() {
            Ok(n) => Self::Number(n),
            Err(_) => Self::Word(text.into()),
        }
    }
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
        Self::parse_in(source, Context::Agent)
    }

    fn parse_in(source: &str, context: Context) -> Result<Expr, ExprError> {
        let root = parser::parse(source, context)?;
        let mut task_refs = Vec::new();
        root.collect_task_refs(&mut task_refs);
        task_refs.sort();
        task_refs.dedup();
        Ok(Expr {
            source: source.to_owned(),
            root,
            task_refs: task_refs.into_boxed_slice(),
        })
    }

    /// Whether an agent matches a step that looks only at agents (a task-aware step matches
    /// no agent this way: use [`Expr::matches_with`]).
    pub fn matches(&self, attributes: &BTreeMap<String, u32>) -> bool {
        self.task_refs.is_empty() && self.root.eval(attributes, &[], &[])
    }

    /// Whether an agent matches the step for tasks whose values are `binding`.
    pub fn matches_with(&self, attributes: &BTreeMap<String, u32>, binding: &[TaskValue]) -> bool {
        binding.len() == self.task_refs.len()
            && self.root.eval(attributes, &self.task_refs, binding)
    }

    /// The task attributes this step names; empty when it looks only at agents.
    pub fn task_refs(&self) -> &[Box<str>] {
        &self.task_refs
    }

    /// A task's values for the attributes the step names; `None` when it lacks one, so that
    /// the step offers it to no agent.
    pub fn binding(&self, task_attributes: &BTreeMap<String, String>) -> Option<Binding> {
        self.task_refs
            .iter()
            .map(|name| task_attributes.get(&**name).map(|v| TaskValue::read(v)))
            .collect()
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
            task_refs: Box::default(),
        }
    }
}

/// A classifier's expression: over a task's attributes and labels (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskExpr(Expr);

impl TaskExpr {
    pub fn parse(source: &str) -> Result<TaskExpr, ExprError> {
        Expr::parse_in(source, Context::Task).map(TaskExpr)
    }

    pub fn matches(&self, attributes: &BTreeMap<String, String>, labels: &[String]) -> bool {
        self.0.root.eval_task(attributes, labels)
    }

    pub fn source(&self) -> &str {
        self.0.source()
    }
}

impl fmt::Display for TaskExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source())
    }
}

impl serde::Serialize for TaskExpr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.source())
    }
}

impl<'de> serde::Deserialize<'de> for TaskExpr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = <String as serde::Deserialize>::deserialize(deserializer)?;
        TaskExpr::parse(&source).map_err(serde::de::Error::custom)
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
    /// Over an agent's attributes; `task_refs` and `binding` give the task's values.
    fn eval(
        &self,
        attributes: &BTreeMap<String, u32>,
        task_refs: &[Box<str>],
        binding: &[TaskValue],
    ) -> bool {
        match self {
            Node::Const(value) => *value,
            Node::Test { attribute, test } => {
                let value = |name: &str| attributes.get(name).copied().unwrap_or(0);
                match test {
                    Test::Task { op, name } => {
                        let task_value = task_refs
                            .binary_search(name)
                            .ok()
                            .and_then(|i| binding.get(i));
                        match task_value {
                            Some(TaskValue::Number(n)) => op.holds(u64::from(value(attribute)), *n),
                            Some(TaskValue::Word(word)) => {
                                let flag = value(&format!("{attribute}_{word}")) > 0;
                                match op {
                                    Op::Eq => flag,
                                    Op::Ne => !flag,
                                    _ => false,
                                }
                            }
                            None => false,
                        }
                    }
                    test => test.holds(value(attribute)),
                }
            }
            Node::All(nodes) => nodes.iter().all(|n| n.eval(attributes, task_refs, binding)),
            Node::Any(nodes) => nodes.iter().any(|n| n.eval(attributes, task_refs, binding)),
        }
    }

    /// Over a task's attributes and labels.
    fn eval_task(&self, attributes: &BTreeMap<String, String>, labels: &[String]) -> bool {
        match self {
            Node::Const(value) => *value,
            Node::Test { attribute, test } => {
                let text = attributes.get(&**attribute);
                let flag = || {
                    labels.iter().any(|l| **l == **attribute)
                        || text.is_some_and(|t| {
                            let t = t.trim();
                            !(t.is_empty() || t == "0" || t.eq_ignore_ascii_case("false"))
                        })
                };
                match test {
                    Test::Has => flag(),
                    Test::Lacks => !flag(),
                    Test::Word { equal, word } => text.is_some_and(|t| (**t == **word) == *equal),
                    Test::Task { .. } => false,
                    Test::Cmp(op, n) => text
                        .and_then(|t| t.trim().parse::<u64>().ok())
                        .is_some_and(|v| op.holds(v, *n)),
                }
            }
            Node::All(nodes) => nodes.iter().all(|n| n.eval_task(attributes, labels)),
            Node::Any(nodes) => nodes.iter().any(|n| n.eval_task(attributes, labels)),
        }
    }

    fn collect_task_refs(&self, out: &mut Vec<Box<str>>) {
        match self {
            Node::Test {
                test: Test::Task { name, .. },
                ..
            } => out.push(name.clone()),
            Node::All(nodes) | Node::Any(nodes) => {
                nodes.iter().for_each(|n| n.collect_task_refs(out));
            }
            _ => {}
        }
    }
}

/// A test on one attribute's value; boolean forms are resolved at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    Has,
    Lacks,
    Cmp(Op, u64),
    /// A task attribute's text is (or is not) this word: classifiers only.
    Word {
        equal: bool,
        word: Box<str>,
    },
    /// Compares with the task's attribute `name`: steps only.
    Task {
        op: Op,
        name: Box<str>,
    },
}

impl Test {
    fn holds(&self, value: u32) -> bool {
        match self {
            Test::Has => value > 0,
            Test::Lacks => value == 0,
            Test::Cmp(op, n) => op.holds(u64::from(value), *n),
            Test::Word { .. } | Test::Task { .. } => false,
        }
    }
}

impl Op {
    fn holds(self, left: u64, right: u64) -> bool {
        match self {
            Op::Eq => left == right,
            Op::Ne => left != right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Lt => left < right,
            Op::Le => left <= right,
        }
    }
}
