//! Tokens of `spreadlogd.conf`, as the original lexer cut them: `#` comments to the end of the line,
//! `{`, `}` and `=` tokens, quoted values (`"…"` or `'…'`, no escapes, may span lines) and bare words
//! (any run of characters other than whitespace, `#`, `{`, `}`). Line numbers start at 1.

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare word; may contain `=` (e.g. `Port=4803`), the parser splits known keywords.
    Word(String),
    /// A quoted value, quotes stripped. Never a keyword.
    Quoted(String),
    Equals,
    Open,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub line: u32,
}

impl Token {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Word(w) => format!("'{w}'"),
            TokenKind::Quoted(q) => format!("\"{q}\""),
            TokenKind::Equals => "'='".into(),
            TokenKind::Open => "'{'".into(),
            TokenKind::Close => "'}'".into(),
        }
    }
}

pub fn tokenize(file: &str, text: &str) -> Result<Vec<Token>, ConfigError> {
    let mut tokens = Vec::new();
    let mut line = 1u32;
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while let Some(&(_, c)) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            '{' | '}' | '=' => {
                chars.next();
                let kind = match c {
                    '{' => TokenKind::Open,
                    '}' => TokenKind::Close,
                    _ => TokenKind::Equals,
                };
                tokens.push(Token { kind, line });
            }
            '"' | '\'' => {
                let quote = c;
                let first_line = line;
                chars.next();
                let mut value = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == quote {
                        closed = true;
                        break;
                    }
                    if c == '\n' {
                        line += 1;
                    }
                    value.push(c);
                }
                if !closed {
                    return Err(ConfigError::Syntax {
                        file: file.into(),
                        line: first_line,
                        token: format!("{quote}{}", value.chars().take(20).collect::<String>()),
                        reason: "unterminated quoted value".into(),
                    });
                }
                tokens.push(Token {
                    kind: TokenKind::Quoted(value),
                    line: first_line,
                });
            }
            _ => {
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '#' | '{' | '}') {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                tokens.push(Token {
                    kind: TokenKind::Word(text[start..end].to_owned()),
                    line,
                });
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<TokenKind> {
        tokenize("t", s)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn words_braces_equals_comments() {
        use TokenKind::*;
        assert_eq!(
            kinds("Spread{ Port = 4803 # c { }\n}"),
            vec![
                Word("Spread".into()),
                Open,
                Word("Port".into()),
                Equals,
                Word("4803".into()),
                Close
            ]
        );
        assert_eq!(kinds("Port=4803"), vec![Word("Port=4803".into())]);
    }

    #[test]
    fn quotes_keep_everything_and_count_lines() {
        let t = tokenize("t", "Match = \"a # {b}\nc\"\nFile = 'x'").unwrap();
        assert_eq!(t[2].kind, TokenKind::Quoted("a # {b}\nc".into()));
        assert_eq!(t[2].line, 1);
        assert_eq!(t[3].line, 3);
        assert_eq!(t[5].kind, TokenKind::Quoted("x".into()));
    }

    #[test]
    fn unterminated_quote_names_line() {
        let e = tokenize("f.conf", "\n\nFile = \"abc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.conf:3"), "{e}");
    }
}
