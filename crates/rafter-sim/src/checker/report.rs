//! What the checker answers, and how a violation reads to a person: the few
//! operations around the one that cannot be linearized, as a table and a
//! time line, with the states the object could have been in.

use std::fmt;

/// The checker's verdict. `Unknown` is never a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    Ok,
    Illegal(Violation),
    /// The budget ran out while checking `partition`.
    Unknown {
        partition: String,
    },
}

impl CheckResult {
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckResult::Ok)
    }

    pub fn violation(&self) -> Option<&Violation> {
        match self {
            CheckResult::Illegal(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Ok => write!(f, "linearizable"),
            CheckResult::Illegal(v) => write!(f, "{v}"),
            CheckResult::Unknown { partition } => write!(
                f,
                "unknown: the checker's budget ran out on {partition} (not a pass)"
            ),
        }
    }
}

/// Why an operation is in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The operation whose return makes the history non-linearizable.
    Culprit,
    /// Overlaps the culprit in time, so could be ordered either side of it.
    Concurrent,
    /// Where the search got furthest, when that is not the culprit.
    Stuck,
    /// The last operation before the window that changed the state, in the
    /// furthest partial linearization.
    Context,
}

/// One row of the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowOp {
    /// Index in the checked history.
    pub index: usize,
    pub client_id: usize,
    pub call_ns: u64,
    /// `None` for an indeterminate operation.
    pub return_ns: Option<u64>,
    /// The operation and its answer, as the model describes them.
    pub text: String,
    pub role: Role,
}

/// A history that is not linearizable, narrowed down to where it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which partition (for example which key) failed.
    pub partition: String,
    /// Index in the history of the culprit: the history up to its return
    /// has no linearization.
    pub op: usize,
    /// True when the history just before the culprit's return (the culprit
    /// pending) is proven linearizable, so this is the first anomaly; false
    /// if the budget ran out while narrowing down.
    pub minimal: bool,
    /// Where the search for a linearization of the history up to the
    /// culprit's return got furthest; `None` if the budget ran out first.
    pub furthest: Option<Furthest>,
    /// The culprit, the operations overlapping it, where the search got
    /// stuck and the context, in call order.
    pub window: Vec<WindowOp>,
}

/// The furthest point of a failed search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Furthest {
    /// Index in the history of the operation that could not be linearized
    /// there (often the culprit itself).
    pub op: usize,
    /// How many other operations were linearized.
    pub linearized: usize,
    /// Every state the object could be in there (described by the model);
    /// `op` can take effect in none of them.
    pub states: Vec<String>,
    /// More states were possible than are listed.
    pub more_states: bool,
}

impl Violation {
    /// History indices of the operations in the window.
    pub fn window_ops(&self) -> Vec<usize> {
        self.window.iter().map(|w| w.index).collect()
    }
}

/// Width of the time line, in characters.
const TIMELINE: usize = 48;

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "not linearizable ({}):", self.partition)?;
        let culprit = self
            .window
            .iter()
            .find(|w| w.role == Role::Culprit)
            .expect("a window holds its culprit");
        writeln!(
            f,
            "  operation #{} (client {}: {}) cannot be linearized:",
            self.op, culprit.client_id, culprit.text
        )?;
        if self.minimal {
            writeln!(
                f,
                "  the history up to its return has no linearization; just before it (#{} pending) it has.",
                self.op
            )?;
        } else {
            writeln!(
                f,
                "  the history up to its return has no linearization (the budget ran out while narrowing down: an earlier anomaly may exist)."
            )?;
        }
        match &self.furthest {
            Some(furthest) => {
                let states = furthest.states.join(", ");
                let more = if furthest.more_states { ", ..." } else { "" };
                writeln!(
                    f,
                    "  The search got furthest with {} operations linearized, the state then one of: {states}{more};",
                    furthest.linearized
                )?;
                writeln!(f, "  #{} cannot take effect in any of them.", furthest.op)?;
            }
            None => writeln!(
                f,
                "  (The budget ran out before the search could say where it gets stuck.)"
            )?,
        }
        write_window(f, &self.window)
    }
}

fn write_window(f: &mut fmt::Formatter<'_>, window: &[WindowOp]) -> fmt::Result {
    // Scaled to the completed operations: an open-ended one called long
    // before would squash them all into a few columns.
    let start = window
        .iter()
        .filter(|w| w.return_ns.is_some())
        .map(|w| w.call_ns)
        .min()
        .or_else(|| window.iter().map(|w| w.call_ns).min())
        .unwrap_or(0);
    let end = window
        .iter()
        .flat_map(|w| [Some(w.call_ns), w.return_ns])
        .flatten()
        .max()
        .unwrap_or(start);
    let text_width = window.iter().map(|w| w.text.len()).max().unwrap_or(0);
    writeln!(f, "  window (times in ns):")?;
    writeln!(
        f,
        "  {:>7} {:>6} {:>14} {:>14}  {:<text_width$}  time line",
        "op", "client", "call", "return", "operation"
    )?;
    for w in window {
        let ret = w.return_ns.map_or("?".to_string(), |r| r.to_string());
        let note = match w.role {
            Role::Culprit => "  <- cannot be linearized",
            Role::Concurrent => "",
            Role::Stuck => "  <- where the search got stuck",
            Role::Context => "  (sets the state before the window)",
        };
        writeln!(
            f,
            "  {:>7} {:>6} {:>14} {:>14}  {:<text_width$}  {}{note}",
            format!("#{}", w.index),
            w.client_id,
            w.call_ns,
            ret,
            w.text,
            bar(start, end, w.call_ns, w.return_ns)
        )?;
    }
    Ok(())
}

/// `[====]` from call to return on a line scaled to `start..=end`; an
/// indeterminate operation runs off the end (`[===>?`), one called before
/// `start` starts with `<`.
fn bar(start: u64, end: u64, call: u64, ret: Option<u64>) -> String {
    let open = if call < start { '<' } else { '[' };
    let span = u128::from(end.saturating_sub(start)).max(1);
    let column = |t: u64| {
        let offset = u128::from(t.clamp(start, end) - start);
        (offset * (TIMELINE as u128 - 1) / span) as usize
    };
    let from = column(call);
    let mut line = " ".repeat(from);
    match ret {
        Some(ret) => {
            let to = column(ret).max(from + 1);
            line.push(open);
            line.push_str(&"=".repeat(to - from - 1));
            line.push(']');
        }
        None => {
            line.push(open);
            line.push_str(&"=".repeat(TIMELINE.saturating_sub(from + 1)));
            line.push_str(">?");
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_window_and_open_ended_ops_run_off_it() {
        assert_eq!(bar(0, 100, 0, Some(100)).len(), TIMELINE);
        assert!(bar(0, 100, 50, Some(60)).starts_with(&" ".repeat(23)));
        assert!(bar(0, 100, 50, None).ends_with("=>?"));
        assert!(bar(10, 100, 5, None).starts_with("<="));
        assert_eq!(bar(5, 5, 5, Some(5)), "[]");
    }
}
