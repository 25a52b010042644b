//! Splits a txn request line into arguments the way etcdctl does: words
//! separated by whitespace, where a word may be a Go double-quoted string
//! (with Go escapes such as `\n`, `\x00`, `\u00e9`) or a single-quoted one.

/// The arguments of `line`; decoded quoted strings may hold any bytes.
pub fn argify(line: &str) -> Vec<Vec<u8>> {
    let chars: Vec<char> = line.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '\'' {
            match quoted(&chars[i..]) {
                Some((arg, used)) => {
                    args.push(arg);
                    i += used;
                }
                // A stray quote starts no argument; the word after it does.
                None => i += 1,
            }
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        args.push(chars[start..i].iter().collect::<String>().into_bytes());
    }
    args
}

/// Decodes the quoted string at the start of `chars` and returns it with the
/// number of characters it spans, or `None` if it is unterminated or has a
/// bad escape.
fn quoted(chars: &[char]) -> Option<(Vec<u8>, usize)> {
    let quote = chars[0];
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        let c = *chars.get(i)?;
        if c == quote {
            return Some((out, i + 1));
        }
        if c == '\\' && quote == '"' {
            i += 1;
            let used = unescape(&chars[i..], &mut out)?;
            i += used;
            continue;
        }
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        i += 1;
    }
}

/// Decodes one Go escape (the part after the backslash) into `out`; returns
/// how many characters it used.
pub fn unescape(chars: &[char], out: &mut Vec<u8>) -> Option<usize> {
    let simple = |b: u8, out: &mut Vec<u8>| {
        out.push(b);
        Some(1)
    };
    match *chars.first()? {
        'a' => simple(0x07, out),
        'b' => simple(0x08, out),
        'f' => simple(0x0c, out),
        'n' => simple(b'\n', out),
        'r' => simple(b'\r', out),
        't' => simple(b'\t', out),
        'v' => simple(0x0b, out),
        '\\' => simple(b'\\', out),
        '"' => simple(b'"', out),
        '\'' => simple(b'\'', out),
        'x' => {
            let v = digits(chars.get(1..3)?, 16)?;
            out.push(v as u8);
            Some(3)
        }
        'u' | 'U' => {
            let n = if chars[0] == 'u' { 4 } else { 8 };
            let c = char::from_u32(digits(chars.get(1..=n)?, 16)?)?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            Some(n + 1)
        }
        '0'..='7' => {
            let v = digits(chars.get(0..3)?, 8)?;
            out.push(u8::try_from(v).ok()?);
            Some(3)
        }
        _ => None,
    }
}

fn digits(chars: &[char], radix: u32) -> Option<u32> {
    chars
        .iter()
        .try_fold(0u32, |acc, c| Some(acc * radix + c.to_digit(radix)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(line: &str) -> Vec<String> {
        argify(line)
            .into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect()
    }

    #[test]
    fn splits_words_and_quotes() {
        assert_eq!(strs("put  a   b  "), ["put", "a", "b"]);
        assert_eq!(strs(r#"put k1 "new v""#), ["put", "k1", "new v"]);
        assert_eq!(
            strs(r#"put q "it's \"quoted\"""#),
            ["put", "q", r#"it's "quoted""#]
        );
        assert_eq!(strs(r#"put "a b"c"#), ["put", "a b", "c"]);
        assert_eq!(strs(r#"a"b c""#), ["a\"b", "c\""]);
        assert_eq!(strs(r#""unterminated"#), ["unterminated"]);
        assert_eq!(strs("put x 'single q'"), ["put", "x", "single q"]);
        assert_eq!(strs(""), Vec::<String>::new());
    }

    #[test]
    fn decodes_go_escapes() {
        assert_eq!(
            argify(r#""a\nb" "\x41\u00e9\101""#),
            [b"a\nb".to_vec(), "Aé\x41".as_bytes().to_vec()]
        );
        assert_eq!(argify(r#""\xff""#), [vec![0xff]]);
    }
}
