//! The expression language of causal models (`[causal_models.NAME]`): how a variable is
//! computed from the inputs and the other variables.
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | compare
//! compare := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum)?
//! sum     := product (("+" | "-") product)*
//! product := unary (("*" | "/" | "%") unary)*
//! unary   := "-" unary | primary
//! primary := INT | 'text' | "text" | true | false | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"
//! ```
//!
//! Functions: `if(c, a, b)`, `int(x)` (text to integer), `str(x)` (any value as text). This
//! module parses; the data crate evaluates (`circuitry_data::causal`).

use std::fmt;

/// A parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Int(i64),
    Text(String),
    Bool(bool),
    /// An input or another variable.
    Name(String),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Call(Function, Vec<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

/// The functions an expression may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    If,
    Int,
    Str,
}

impl Function {
    pub const NAMES: &'static [&'static str] = &["if", "int", "str"];

    fn from_name(name: &str) -> Option<Function> {
        Some(match name {
            "if" => Function::If,
            "int" => Function::Int,
            "str" => Function::Str,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Function::If => "if",
            Function::Int => "int",
            Function::Str => "str",
        }
    }

    fn arity(self) -> usize {
        match self {
            Function::If => 3,
            Function::Int | Function::Str => 1,
        }
    }
}

/// A syntax error: what is wrong, at which byte of the expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

impl std::error::Error for ExprError {}

impl Expr {
    /// Parses `text` (the whole of it).
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            at: 0,
            end: text.len(),
        };
        let e = p.or()?;
        match p.peek() {
            None => Ok(e),
            Some((t, o)) => Err(ExprError {
                offset: o,
                message: format!("unexpected {} after a complete expression", t.describe()),
            }),
        }
    }

    /// The names it reads, in order of first appearance.
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_names(&mut out);
        out
    }

    fn collect_names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Name(n) => {
                if !out.contains(&n.as_str()) {
                    out.push(n);
                }
            }
            Expr::Unary(_, e) => e.collect_names(out),
            Expr::Binary(_, a, b) => {
                a.collect_names(out);
                b.collect_names(out);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.collect_names(out)),
            Expr::Int(_) | Expr::Text(_) | Expr::Bool(_) => {}
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Int(i64),
    Text(String),
    Word(String),
    Op(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Int(i) => format!("number {i}"),
            Token::Text(t) => format!("text {t:?}"),
            Token::Word(w) => format!("`{w}`"),
            Token::Op(o) => format!("`{o}`"),
        }
    }
}

const OPS: &[&str] = &[
    "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",",
];

fn lex(text: &str) -> Result<Vec<(Token, usize)>, ExprError> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let n = text[start..i].parse().map_err(|_| ExprError {
                offset: start,
                message: format!("number {} is too large", &text[start..i]),
            })?;
            out.push((Token::Int(n), start));
        } else if c == b'\'' || c == b'"' {
            let start = i;
            let close = text[i + 1..].find(c as char).ok_or(ExprError {
                offset: start,
                message: "text without its closing quote".into(),
            })?;
            out.push((Token::Text(text[i + 1..i + 1 + close].to_string()), start));
            i += close + 2;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((Token::Word(text[start..i].to_string()), start));
        } else if let Some(op) = OPS.iter().find(|op| text[i..].starts_with(**op)) {
            out.push((Token::Op(op), i));
            i += op.len();
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            let hint = if ch == '=' {
                " (compare with `==`)"
            } else if ch == '&' || ch == '|' || ch == '!' {
                " (write `and`, `or`, `not`)"
            } else {
                ""
            };
            return Err(ExprError {
                offset: i,
                message: format!("unexpected character {ch:?}{hint}"),
            });
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<(Token, usize)> {
        self.tokens.get(self.at).cloned()
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.tokens.get(self.at), Some((Token::Op(o), _)) if *o == op)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.at), Some((Token::Word(x), _)) if x == w)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |t| t.1)
    }

    fn expect_op(&mut self, op: &str, what: &str) -> Result<(), ExprError> {
        if self.is_op(op) {
            self.at += 1;
            Ok(())
        } else {
            Err(ExprError {
                offset: self.offset(),
                message: match self.peek() {
                    Some((t, _)) => format!("expected `{op}` {what}, found {}", t.describe()),
                    None => format!("expected `{op}` {what}, found the end"),
                },
            })
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.and()?;
        while self.is_word("or") {
            self.at += 1;
            e = Expr::Binary(BinaryOp::Or, Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.not()?;
        while self.is_word("and") {
            self.at += 1;
            e = Expr::Binary(BinaryOp::And, Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.is_word("not") {
            self.at += 1;
            return Ok(Expr::Unary(UnaryOp::Not, Box::new(self.not()?)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ExprError> {
        let a = self.sum()?;
        let op = [
            ("==", BinaryOp::Eq),
            ("!=", BinaryOp::Ne),
            ("<=", BinaryOp::Le),
            (">=", BinaryOp::Ge),
            ("<", BinaryOp::Lt),
            (">", BinaryOp::Gt),
        ]
        .into_iter()
        .find(|(s, _)| self.is_op(s));
        match op {
            Some((_, op)) => {
                self.at += 1;
                Ok(Expr::Binary(op, Box::new(a), Box::new(self.sum()?)))
            }
            None => Ok(a),
        }
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.product()?;
        loop {
            let op = if self.is_op("+") {
                BinaryOp::Add
            } else if self.is_op("-") {
                BinaryOp::Sub
            } else {
                return Ok(e);
            };
            self.at += 1;
            e = Expr::Binary(op, Box::new(e), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.unary()?;
        loop {
            let op = if self.is_op("*") {
                BinaryOp::Mul
            } else if self.is_op("/") {
                BinaryOp::Div
            } else if self.is_op("%") {
                BinaryOp::Rem
            } else {
                return Ok(e);
            };
            self.at += 1;
            e = Expr::Binary(op, Box::new(e), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.is_op("-") {
            self.at += 1;
            return Ok(Expr::Unary(UnaryOp::Neg, Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let Some((token, offset)) = self.peek() else {
            return Err(ExprError {
                offset: self.end,
                message: "expected a value, found the end".into(),
            });
        };
        self.at += 1;
        match token {
            Token::Int(i) => Ok(Expr::Int(i)),
            Token::Text(t) => Ok(Expr::Text(t)),
            Token::Word(w) if w == "true" => Ok(Expr::Bool(true)),
            Token::Word(w) if w == "false" => Ok(Expr::Bool(false)),
            Token::Word(w) if ["and", "or", "not"].contains(&w.as_str()) => Err(ExprError {
                offset,
                message: format!("expected a value, found `{w}`"),
            }),
            Token::Word(w) if self.is_op("(") => {
                let Some(f) = Function::from_name(&w) else {
                    return Err(ExprError {
                        offset,
                        message: format!(
                            "unknown function `{w}`; the functions are {}",
                            Function::NAMES.join(", ")
                        ),
                    });
                };
                self.at += 1;
                let mut args = vec![self.or()?];
                while self.is_op(",") {
                    self.at += 1;
                    args.push(self.or()?);
                }
                self.expect_op(")", &format!("to close `{w}(`"))?;
                if args.len() != f.arity() {
                    return Err(ExprError {
                        offset,
                        message: format!(
                            "`{w}` takes {} argument{}, found {}",
                            f.arity(),
                            if f.arity() == 1 { "" } else { "s" },
                            args.len()
                        ),
                    });
                }
                Ok(Expr::Call(f, args))
            }
            Token::Word(w) => Ok(Expr::Name(w)),
            Token::Op("(") => {
                let e = self.or()?;
                self.expect_op(")", "to close `(`")?;
                Ok(e)
            }
            other => Err(ExprError {
                offset,
                message: format!("expected a value, found {}", other.describe()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Box<Expr> {
        Box::new(Expr::Name(n.into()))
    }

    #[test]
    fn precedence_and_calls() {
        assert_eq!(
            Expr::parse("(a == b) == (c == d)").unwrap(),
            Expr::Binary(
                BinaryOp::Eq,
                Box::new(Expr::Binary(BinaryOp::Eq, name("a"), name("b"))),
                Box::new(Expr::Binary(BinaryOp::Eq, name("c"), name("d"))),
            )
        );
        assert_eq!(
            Expr::parse("not x or y and z").unwrap(),
            Expr::Binary(
                BinaryOp::Or,
                Box::new(Expr::Unary(UnaryOp::Not, name("x"))),
                Box::new(Expr::Binary(BinaryOp::And, name("y"), name("z"))),
            )
        );
        assert_eq!(
            Expr::parse("1 + 2 * -3").unwrap(),
            Expr::Binary(
                BinaryOp::Add,
                Box::new(Expr::Int(1)),
                Box::new(Expr::Binary(
                    BinaryOp::Mul,
                    Box::new(Expr::Int(2)),
                    Box::new(Expr::Unary(UnaryOp::Neg, Box::new(Expr::Int(3))))
                ))
            )
        );
        let e = Expr::parse("if(left == right, 't1', \"t2\")").unwrap();
        assert_eq!(e.names(), ["left", "right"]);
        assert!(matches!(e, Expr::Call(Function::If, ref a) if a[1] == Expr::Text("t1".into())));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases = [
            ("a = b", 2, "compare with `==`"),
            ("a ==", 4, "found the end"),
            ("f(a)", 0, "unknown function `f`"),
            ("if(a, b)", 0, "takes 3 arguments"),
            ("(a == b", 7, "to close `(`"),
            ("a b", 2, "after a complete expression"),
            ("'open", 0, "closing quote"),
            ("a && b", 2, "`and`"),
        ];
        for (text, offset, needle) in cases {
            let e = Expr::parse(text).unwrap_err();
            assert_eq!(e.offset, offset, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
    }
}
