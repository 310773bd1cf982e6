//! The lexer of step expressions: text to tokens, each with the column it starts at.

use super::ExprError;
use crate::domain::bounds::{
    ATTRIBUTE_NAME_ALPHABET, attribute_name_error, is_attribute_name_char, is_attribute_name_start,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok<'a> {
    LParen,
    RParen,
    And,
    Or,
    True,
    False,
    Ident(&'a str),
    Number(&'a str),
    Op(Op),
    End,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Token<'a> {
    pub(super) tok: Tok<'a>,
    pub(super) column: usize,
}

pub(super) struct Lexer<'a> {
    rest: &'a str,
    column: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(source: &'a str) -> Self {
        Self {
            rest: source,
            column: 1,
        }
    }

    /// Consumes `len` bytes of ASCII, one column each.
    fn take_ascii(&mut self, len: usize) -> &'a str {
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        self.column += len;
        taken
    }

    pub(super) fn next_token(&mut self) -> Result<Token<'a>, ExprError> {
        while let Some(c) = self.rest.chars().next().filter(|c| c.is_whitespace()) {
            self.rest = &self.rest[c.len_utf8()..];
            self.column += 1;
        }
        let column = self.column;
        let Some(c) = self.rest.chars().next() else {
            return Ok(Token {
                tok: Tok::End,
                column,
            });
        };
        let two = |lexer: &mut Self, second: u8| lexer.rest.as_bytes().get(1) == Some(&second);
        let tok = match c {
            '(' => {
                self.take_ascii(1);
                Tok::LParen
            }
            ')' => {
                self.take_ascii(1);
                Tok::RParen
            }
            '=' => {
                self.take_ascii(1);
                Tok::Op(Op::Eq)
            }
            '!' if two(self, b'=') => {
                self.take_ascii(2);
                Tok::Op(Op::Ne)
            }
            '!' => {
                return Err(ExprError::new(
                    column,
                    "unexpected character '!' (use '!=' to compare)",
                ));
            }
            '>' | '<' => {
                let or_equal = two(self, b'=');
                self.take_ascii(if or_equal { 2 } else { 1 });
                Tok::Op(match (c, or_equal) {
                    ('>', true) => Op::Ge,
                    ('>', false) => Op::Gt,
                    (_, true) => Op::Le,
                    (_, false) => Op::Lt,
                })
            }
            '0'..='9' => {
                let len = self.rest.bytes().take_while(u8::is_ascii_digit).count();
                Tok::Number(self.take_ascii(len))
            }
            c if is_attribute_name_start(c) => {
                // Attribute names are ASCII, so chars and bytes count alike.
                let len = self
                    .rest
                    .chars()
                    .take_while(|c| is_attribute_name_char(*c))
                    .count();
                let word = self.take_ascii(len);
                if word.eq_ignore_ascii_case("and") {
                    Tok::And
                } else if word.eq_ignore_ascii_case("or") {
                    Tok::Or
                } else if word.eq_ignore_ascii_case("true") {
                    Tok::True
                } else if word.eq_ignore_ascii_case("false") {
                    Tok::False
                } else if let Some(reason) = attribute_name_error(word) {
                    return Err(ExprError::new(column, reason));
                } else {
                    Tok::Ident(word)
                }
            }
            other if other.is_alphanumeric() => {
                return Err(ExprError::new(
                    column,
                    format!(
                        "unexpected character {other:?} (attribute names are {ATTRIBUTE_NAME_ALPHABET})"
                    ),
                ));
            }
            other => {
                return Err(ExprError::new(
                    column,
                    format!("unexpected character {other:?}"),
                ));
            }
        };
        Ok(Token { tok, column })
    }
}
