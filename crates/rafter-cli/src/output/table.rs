//! ASCII tables in the layout etcdctl's table printer produces: `+---+`
//! borders, centered headers, right-aligned cells, and cells longer than 30
//! columns wrapped at spaces into balanced lines.

/// Cells wider than this are wrapped at spaces.
const WRAP_WIDTH: usize = 30;

/// Renders `rows` under `headers`.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let wrapped: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| wrap(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in &wrapped {
        for (i, lines) in row.iter().enumerate() {
            for line in lines {
                if i < widths.len() {
                    widths[i] = widths[i].max(width(line));
                }
            }
        }
    }
    let border = {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let mut out = border.clone();
    out.push('|');
    for (h, w) in headers.iter().zip(&widths) {
        let gap = w - width(h);
        let left = gap / 2;
        out.push_str(&format!(
            " {}{}{} |",
            " ".repeat(left),
            h,
            " ".repeat(gap - left)
        ));
    }
    out.push('\n');
    out.push_str(&border);
    for row in &wrapped {
        let height = row.iter().map(Vec::len).max().unwrap_or(1).max(1);
        for line_no in 0..height {
            out.push('|');
            for (i, w) in widths.iter().enumerate() {
                let text = row
                    .get(i)
                    .and_then(|lines| lines.get(line_no))
                    .map(String::as_str)
                    .unwrap_or("");
                out.push_str(&format!(" {}{} |", " ".repeat(w - width(text)), text));
            }
            out.push('\n');
        }
    }
    out.push_str(&border);
    out
}

/// Display width of a cell (one column per character).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// Splits a cell into lines of at most [`WRAP_WIDTH`] columns (or the
/// longest word, if longer), choosing breaks that minimise the sum of
/// squared trailing gaps so lines come out evenly filled.
fn wrap(cell: &str) -> Vec<String> {
    let flat = cell.replace('\n', " ");
    let words: Vec<&str> = flat.split(' ').collect();
    let limit = words
        .iter()
        .map(|w| width(w))
        .max()
        .unwrap_or(0)
        .max(WRAP_WIDTH);
    let n = words.len();
    // line_len(i, j): width of words[i..=j] joined by single spaces.
    let line_len = |i: usize, j: usize| -> usize {
        words[i..=j].iter().map(|w| width(w)).sum::<usize>() + (j - i)
    };
    const OVERFLOW_PENALTY: i64 = 100_000;
    let mut cost = vec![i64::MAX; n + 1];
    let mut next_break = vec![n; n + 1];
    cost[n] = 0;
    for i in (0..n).rev() {
        if line_len(i, n - 1) <= limit {
            cost[i] = 0;
            next_break[i] = n;
            continue;
        }
        for j in i + 1..n {
            let len = line_len(i, j - 1);
            let gap = limit as i64 - len as i64;
            let mut c = gap * gap + cost[j];
            if len > limit {
                c += OVERFLOW_PENALTY;
            }
            if c < cost[i] {
                cost[i] = c;
                next_break[i] = j;
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        let j = next_break[i];
        lines.push(words[i..j].join(" "));
        i = j;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_etcdctl_layout() {
        let table = render(
            &["ENDPOINT", "HEALTH", "TOOK", "ERROR"],
            &[vec![
                "127.0.0.1:23790".into(),
                "true".into(),
                "908.422µs".into(),
                String::new(),
            ]],
        );
        let expected = "\
+-----------------+--------+-----------+-------+
|    ENDPOINT     | HEALTH |   TOOK    | ERROR |
+-----------------+--------+-----------+-------+
| 127.0.0.1:23790 |   true | 908.422µs |       |
+-----------------+--------+-----------+-------+
";
        assert_eq!(table, expected);
    }

    #[test]
    fn empty_table_has_header_only() {
        let table = render(&["A", "BB"], &[]);
        assert_eq!(table, "+---+----+\n| A | BB |\n+---+----+\n+---+----+\n");
    }

    #[test]
    fn long_cells_wrap_at_spaces() {
        let lines = wrap("etcdserver: mvcc: database space exceeded, alarm NOSPACE active");
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.chars().count() <= 30));
        assert_eq!(wrap(""), vec![String::new()]);
        assert_eq!(wrap("short"), vec!["short".to_string()]);
    }
}
