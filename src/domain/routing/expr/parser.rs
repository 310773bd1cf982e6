//! The parser of step expressions: recursive descent over the lexer's tokens.

use super::lexer::{Lexer, Op, Tok, Token};
use super::{Context, ExprError, Node, Test};
use crate::domain::bounds::{
    MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_TERMS, MAX_PROFICIENCY,
};

pub(super) const EXPECTED_PRIMARY: &str = "expected an attribute, TRUE, FALSE or '('";
/// A number where an attribute belongs: most likely a name that starts with a digit.
pub(super) const NUMBER_AS_PRIMARY: &str =
    "expected an attribute, TRUE, FALSE or '(' (an attribute name starts with a letter or '_')";
/// `TRUE >= 3`: most likely an attribute named like a keyword.
pub(super) const KEYWORD_COMPARED: &str =
    "TRUE and FALSE are keywords, not attribute names; only an attribute compares";

/// What may follow an operator; an expression compares with 0 (the attribute is absent) too.
pub(super) fn expected_value() -> String {
    format!("expected a number 0-{MAX_PROFICIENCY}, TRUE, FALSE or task.<attribute>")
}

/// What may follow an operator in a classifier's expression.
pub(super) const EXPECTED_TASK_VALUE: &str = "expected a number, a word, TRUE or FALSE";

/// How a step names the task's attribute.
const TASK_PREFIX: &str = "task.";

/// Parses a whole expression; every failure points at a column.
pub(super) fn parse(source: &str, context: Context) -> Result<Node, ExprError> {
    if source.chars().nth(MAX_EXPRESSION_CHARS).is_some() {
        return Err(ExprError::new(
            MAX_EXPRESSION_CHARS + 1,
            format!("expression is longer than {MAX_EXPRESSION_CHARS} characters"),
        ));
    }
    // Pointing past trailing blanks would say nothing useful.
    if source.trim().is_empty() {
        return Err(ExprError::new(1, EXPECTED_PRIMARY));
    }
    let mut parser = Parser::new(source, context);
    let root = parser.parse_or()?;
    let next = parser.peek()?;
    match next.tok {
        Tok::End => Ok(root),
        Tok::RParen => Err(ExprError::new(next.column, "unexpected ')'")),
        _ => Err(ExprError::new(next.column, "expected AND, OR or the end")),
    }
}

/// Recursive descent; recursion happens only at '(' and is capped by `MAX_EXPRESSION_DEPTH`.
struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    depth: usize,
    terms: usize,
    context: Context,
}

impl<'a> Parser<'a> {
    fn new(source: &'a str, context: Context) -> Self {
        Self {
            lexer: Lexer::new(source),
            peeked: None,
            depth: 0,
            terms: 0,
            context,
        }
    }

    fn peek(&mut self) -> Result<Token<'a>, ExprError> {
        if let Some(token) = self.peeked {
            return Ok(token);
        }
        let token = self.lexer.next_token()?;
        self.peeked = Some(token);
        Ok(token)
    }

    /// Drops the token last returned by `peek`.
    fn bump(&mut self) {
        self.peeked = None;
    }

    fn parse_or(&mut self) -> Result<Node, ExprError> {
        let mut nodes = vec![self.parse_and()?];
        while self.peek()?.tok == Tok::Or {
            self.bump();
            nodes.push(self.parse_and()?);
        }
        Ok(join(nodes, Node::Any))
    }

    fn parse_and(&mut self) -> Result<Node, ExprError> {
        let mut nodes = vec![self.parse_primary()?];
        while self.peek()?.tok == Tok::And {
            self.bump();
            nodes.push(self.parse_primary()?);
        }
        Ok(join(nodes, Node::All))
    }

    fn parse_primary(&mut self) -> Result<Node, ExprError> {
        let token = self.peek()?;
        match token.tok {
            Tok::LParen => {
                if self.depth == MAX_EXPRESSION_DEPTH {
                    return Err(ExprError::new(
                        token.column,
                        format!("parentheses nest deeper than {MAX_EXPRESSION_DEPTH}"),
                    ));
                }
                self.bump();
                self.depth += 1;
                let inner = self.parse_or()?;
                let close = self.peek()?;
                match close.tok {
                    Tok::RParen => {
                        self.bump();
                        self.depth -= 1;
                        Ok(inner)
                    }
                    Tok::End => Err(ExprError::new(token.column, "'(' is never closed")),
                    _ => Err(ExprError::new(close.column, "expected AND, OR or ')'")),
                }
            }
            Tok::True | Tok::False => {
                self.count_term(token.column)?;
                self.bump();
                if let Tok::Op(_) = self.peek()?.tok {
                    return Err(ExprError::new(token.column, KEYWORD_COMPARED));
                }
                Ok(Node::Const(token.tok == Tok::True))
            }
            Tok::Ident(name) => {
                self.count_term(token.column)?;
                self.bump();
                let test = self.parse_comparison()?;
                Ok(Node::Test {
                    attribute: name.into(),
                    test,
                })
            }
            Tok::Number(_) => Err(ExprError::new(token.column, NUMBER_AS_PRIMARY)),
            _ => Err(ExprError::new(token.column, EXPECTED_PRIMARY)),
        }
    }

    /// The optional `op value` after an attribute name.
    fn parse_comparison(&mut self) -> Result<Test, ExprError> {
        let op_token = self.peek()?;
        let Tok::Op(op) = op_token.tok else {
            return Ok(Test::Has);
        };
        self.bump();
        let value = self.peek()?;
        let test = match (value.tok, self.context) {
            (Tok::Number(digits), Context::Agent) => {
                let n = proficiency(digits).ok_or_else(|| {
                    ExprError::new(
                        value.column,
                        format!("proficiency must be 0 to {MAX_PROFICIENCY}"),
                    )
                })?;
                Test::Cmp(op, u64::from(n))
            }
            (Tok::Number(digits), Context::Task) => {
                let n = digits.parse::<u64>().map_err(|_| {
                    ExprError::new(value.column, format!("number must be at most {}", u64::MAX))
                })?;
                Test::Cmp(op, n)
            }
            (Tok::Ident(name), Context::Agent)
                if name.len() > TASK_PREFIX.len() && name.starts_with(TASK_PREFIX) =>
            {
                Test::Task {
                    op,
                    name: name[TASK_PREFIX.len()..].into(),
                }
            }
            (Tok::Ident(word), Context::Task) => match op {
                Op::Eq | Op::Ne => Test::Word {
                    equal: op == Op::Eq,
                    word: word.into(),
                },
                _ => {
                    return Err(ExprError::new(
                        op_token.column,
                        "a word compares only with = or !=",
                    ));
                }
            },
            (Tok::True | Tok::False, _) => {
                let wanted = value.tok == Tok::True;
                match op {
                    Op::Eq if wanted => Test::Has,
                    Op::Eq => Test::Lacks,
                    Op::Ne if wanted => Test::Lacks,
                    Op::Ne => Test::Has,
                    _ => {
                        return Err(ExprError::new(
                            op_token.column,
                            "a boolean compares only with = or !=",
                        ));
                    }
                }
            }
            (_, Context::Agent) => return Err(ExprError::new(value.column, expected_value())),
            (_, Context::Task) => return Err(ExprError::new(value.column, EXPECTED_TASK_VALUE)),
        };
        self.bump();
        Ok(test)
    }

    fn count_term(&mut self, column: usize) -> Result<(), ExprError> {
        if self.terms == MAX_EXPRESSION_TERMS {
            return Err(ExprError::new(
                column,
                format!("expression has more than {MAX_EXPRESSION_TERMS} terms"),
            ));
        }
        self.terms += 1;
        Ok(())
    }
}

/// Parses ASCII digits without overflow; `None` when above `MAX_PROFICIENCY`.
fn proficiency(digits: &str) -> Option<u32> {
    digits
        .bytes()
        .try_fold(0u32, |acc, b| {
            acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
        })
        .filter(|n| *n <= MAX_PROFICIENCY)
}

/// A one-element AND/OR is just its element.
fn join(mut nodes: Vec<Node>, make: fn(Box<[Node]>) -> Node) -> Node {
    if nodes.len() == 1
        && let Some(only) = nodes.pop()
    {
        return only;
    }
    make(nodes.into_boxed_slice())
}
