//! A small JSON writer that reproduces Go's `encoding/json` output for
//! etcdctl's structs: fields in declaration order, `omitempty`, byte slices
//! as base64, 64-bit integers as plain numbers and Go's string escaping.
//! (serde_json would sort or reorder fields and escape differently.)

use std::fmt::{Display, Write};

/// A JSON object being written field by field.
#[derive(Debug, Default)]
pub struct Obj {
    buf: String,
}

impl Obj {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, name: &str) {
        self.buf.push(if self.buf.is_empty() { '{' } else { ',' });
        push_str(&mut self.buf, name);
        self.buf.push(':');
    }

    /// A field holding already-encoded JSON.
    pub fn raw(&mut self, name: &str, json: &str) -> &mut Self {
        self.key(name);
        self.buf.push_str(json);
        self
    }

    /// A numeric field.
    pub fn num(&mut self, name: &str, value: impl Display) -> &mut Self {
        self.key(name);
        let _ = write!(self.buf, "{value}");
        self
    }

    /// A numeric field left out when zero (`omitempty`).
    pub fn num_nz<T: Display + Default + PartialEq>(&mut self, name: &str, value: T) -> &mut Self {
        if value != T::default() {
            self.num(name, value);
        }
        self
    }

    /// A boolean field.
    pub fn boolean(&mut self, name: &str, value: bool) -> &mut Self {
        self.key(name);
        self.buf.push_str(if value { "true" } else { "false" });
        self
    }

    /// A boolean field left out when false (`omitempty`).
    pub fn bool_nz(&mut self, name: &str, value: bool) -> &mut Self {
        if value {
            self.boolean(name, true);
        }
        self
    }

    /// A string field.
    pub fn string(&mut self, name: &str, value: &str) -> &mut Self {
        self.key(name);
        push_str(&mut self.buf, value);
        self
    }

    /// A string field left out when empty (`omitempty`).
    pub fn string_nz(&mut self, name: &str, value: &str) -> &mut Self {
        if !value.is_empty() {
            self.string(name, value);
        }
        self
    }

    /// A byte-slice field (base64) left out when empty (`omitempty`).
    pub fn bytes_nz(&mut self, name: &str, value: &[u8]) -> &mut Self {
        if !value.is_empty() {
            self.key(name);
            self.buf.push('"');
            self.buf.push_str(&base64(value));
            self.buf.push('"');
        }
        self
    }

    /// An array field left out when empty (`omitempty`).
    pub fn array_nz(&mut self, name: &str, items: &[String]) -> &mut Self {
        if !items.is_empty() {
            self.raw(name, &array(items));
        }
        self
    }

    /// The finished object text.
    pub fn finish(&self) -> String {
        if self.buf.is_empty() {
            "{}".to_string()
        } else {
            format!("{}}}", self.buf)
        }
    }
}

/// A JSON array of already-encoded items.
pub fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

/// A JSON array of strings.
pub fn string_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(&mut out, s);
    }
    out.push(']');
    out
}

/// Appends `s` as a JSON string escaped as Go does (HTML characters and the
/// line/paragraph separators included).
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Standard base64 with padding, as Go encodes `[]byte`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"bar2"), "YmFyMg==");
        assert_eq!(base64(b"k1"), "azE=");
        assert_eq!(base64(b"new v"), "bmV3IHY=");
    }

    #[test]
    fn objects_keep_order_and_omit_empty() {
        let mut o = Obj::new();
        o.num_nz("a", 0i64)
            .num_nz("b", 2u64)
            .bool_nz("c", false)
            .string("d", "<x>\"\n")
            .bytes_nz("e", b"k1");
        assert_eq!(o.finish(), r#"{"b":2,"d":"\u003cx\u003e\"\n","e":"azE="}"#);
        assert_eq!(Obj::new().finish(), "{}");
    }
}
