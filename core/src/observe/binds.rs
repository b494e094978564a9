//! The bind values of a statement, read back from diesel's debug rendering so that a slow
//! statement with placeholders can be planned with the values it ran with. They are held in
//! memory for the plan capture only: no `Debug` or `Display` here shows a value.

/// One bind value of a logged statement, as far as a plan capture can rebind it.
#[derive(Clone, PartialEq)]
pub enum BindValue {
    /// `NULL` (diesel shows `None`).
    Null,
    /// Any integer.
    Int(i64),
    /// Any floating-point number.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// Text.
    Text(String),
}

impl std::fmt::Debug for BindValue {
    /// The kind only: bind values are never formatted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BindValue::Null => "Null",
            BindValue::Int(_) => "Int(..)",
            BindValue::Float(_) => "Float(..)",
            BindValue::Bool(_) => "Bool(..)",
            BindValue::Text(_) => "Text(..)",
        })
    }
}

/// The bind list diesel renders after a query's SQL (`[1, "a", None]`), or `None` when one
/// value is of a kind this reader does not rebind (bytes, dates, decimals, ...).
pub fn parse(list: &str) -> Option<Vec<BindValue>> {
    let mut r = Reader {
        s: list.trim().as_bytes(),
        at: 0,
    };
    r.expect(b'[')?;
    let mut out = Vec::new();
    r.blanks();
    if r.peek() == Some(b']') {
        r.at += 1;
        return r.end().then_some(out);
    }
    loop {
        out.push(r.value()?);
        r.blanks();
        match r.next()? {
            b',' => r.blanks(),
            b']' => return r.end().then_some(out),
            _ => return None,
        }
    }
}

struct Reader<'s> {
    s: &'s [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn blanks(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn end(&self) -> bool {
        self.at == self.s.len()
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.s[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<BindValue> {
        if self.eat("None") {
            return Some(BindValue::Null);
        }
        if self.eat("Some(") {
            let v = self.value()?;
            self.expect(b')')?;
            return Some(v);
        }
        if self.eat("true") {
            return Some(BindValue::Bool(true));
        }
        if self.eat("false") {
            return Some(BindValue::Bool(false));
        }
        match self.peek()? {
            b'"' => self.text().map(BindValue::Text),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<BindValue> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.at]).ok()?;
        if let Ok(i) = text.parse::<i64>() {
            return Some(BindValue::Int(i));
        }
        text.parse::<f64>().ok().map(BindValue::Float)
    }

    /// A string in Rust's `Debug` form: quoted, with `\\`, `\"`, `\'`, `\n`, `\r`, `\t`,
    /// `\0` and `\u{..}` escapes.
    fn text(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut bytes = Vec::new();
        loop {
            match self.next()? {
                b'"' => return String::from_utf8(bytes).ok(),
                b'\\' => {
                    let c = match self.next()? {
                        b'\\' => '\\',
                        b'"' => '"',
                        b'\'' => '\'',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'0' => '\0',
                        b'u' => {
                            self.expect(b'{')?;
                            let start = self.at;
                            while self.peek()? != b'}' {
                                self.at += 1;
                            }
                            let hex = std::str::from_utf8(&self.s[start..self.at]).ok()?;
                            self.at += 1;
                            char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b => bytes.push(b),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_debug_renders() {
        let text = "x\"y\\z\n\t\u{7}é'";
        let list = format!(
            "{:?}",
            vec![
                Box::new(5_i64) as Box<dyn std::fmt::Debug>,
                Box::new(-2.5_f64),
                Box::new(text),
                Box::new(None::<i32>),
                Box::new(Some(true)),
                Box::new(Some("a, b")),
            ]
        );
        assert_eq!(
            parse(&list).unwrap(),
            vec![
                BindValue::Int(5),
                BindValue::Float(-2.5),
                BindValue::Text(text.into()),
                BindValue::Null,
                BindValue::Bool(true),
                BindValue::Text("a, b".into()),
            ]
        );
        assert_eq!(parse("[]").unwrap(), vec![]);
    }

    #[test]
    fn refuses_kinds_it_cannot_rebind() {
        assert_eq!(parse("[1, [1, 2]]"), None);
        assert_eq!(parse("[2026-11-28T05:00:00]"), None);
        assert_eq!(parse("[\"open"), None);
        assert_eq!(parse("1"), None);
    }

    #[test]
    fn debug_shows_no_value() {
        let shown = format!("{:?}", BindValue::Text("secret".into()));
        assert!(!shown.contains("secret"), "{shown}");
    }
}
