//! The cached copy of one key prefix: its keys at one store revision,
//! changed only a whole watch response (all events of its revisions) at a
//! time, so a reader always sees the prefix exactly as it was at
//! `revision`.

use std::collections::BTreeMap;

use rafter_proto::mvccpb::{event::EventType, Event, KeyValue};

/// Why a watch response could not be applied: the stream broke its
/// guarantees (ordered, unique), so the cache must be rebuilt from a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutOfOrder {
    pub(crate) revision: i64,
    pub(crate) event_revision: i64,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    kvs: BTreeMap<Vec<u8>, KeyValue>,
    /// Every change to the prefix up to this revision is applied, and none
    /// after it.
    revision: i64,
}

impl State {
    pub(crate) fn revision(&self) -> i64 {
        self.revision
    }

    /// Replaces everything with a list taken at `revision`.
    pub(crate) fn replace(&mut self, kvs: Vec<KeyValue>, revision: i64) {
        self.kvs = kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        self.revision = revision;
    }

    /// Applies one watch response's events (whole revisions, ascending).
    /// Returns the new revision.
    pub(crate) fn apply(&mut self, events: &[Event]) -> Result<i64, OutOfOrder> {
        let mut last = self.revision;
        for event in events {
            let kv = event.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            // Events of one revision share it; a later one may not be lower,
            // and none may be at or below what the cache already holds.
            if kv <= self.revision || kv < last {
                return Err(OutOfOrder {
                    revision: last,
                    event_revision: kv,
                });
            }
            last = kv;
        }
        for event in events {
            let Some(kv) = &event.kv else { continue };
            if event.r#type == EventType::Delete as i32 {
                self.kvs.remove(&kv.key);
            } else {
                self.kvs.insert(kv.key.clone(), kv.clone());
            }
        }
        self.revision = last;
        Ok(last)
    }

    /// A progress notification: nothing under the prefix changed up to
    /// `revision`.
    pub(crate) fn progress(&mut self, revision: i64) -> bool {
        if revision > self.revision {
            self.revision = revision;
            true
        } else {
            false
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.kvs.get(key).cloned()
    }

    /// The keys starting with `prefix`, in key order.
    pub(crate) fn list(&self, prefix: &[u8]) -> Vec<KeyValue> {
        self.kvs
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.kvs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            mod_revision: rev,
            ..Default::default()
        }
    }

    fn put(key: &str, value: &str, rev: i64) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(kv(key, value, rev)),
            prev_kv: None,
        }
    }

    fn delete(key: &str, rev: i64) -> Event {
        Event {
            r#type: EventType::Delete as i32,
            kv: Some(kv(key, "", rev)),
            prev_kv: None,
        }
    }

    #[test]
    fn events_change_the_copy_a_response_at_a_time() {
        let mut s = State::default();
        s.replace(vec![kv("p/a", "1", 3)], 5);
        assert_eq!(s.apply(&[put("p/b", "2", 6), delete("p/a", 6)]), Ok(6));
        assert_eq!(s.get(b"p/a"), None);
        assert_eq!(s.get(b"p/b").unwrap().value, b"2");
        assert!(s.progress(9));
        assert!(!s.progress(8));
        assert_eq!(s.revision(), 9);
        assert_eq!(s.list(b"p/").len(), 1);
        assert_eq!(s.list(b"p/c").len(), 0);
    }

    #[test]
    fn a_repeated_or_reordered_event_is_refused_whole() {
        let mut s = State::default();
        s.replace(vec![], 5);
        assert_eq!(
            s.apply(&[put("p/a", "1", 5)]),
            Err(OutOfOrder {
                revision: 5,
                event_revision: 5
            })
        );
        assert!(s.apply(&[put("p/a", "1", 7), put("p/b", "1", 6)]).is_err());
        assert_eq!(s.get(b"p/a"), None, "nothing of a refused response applies");
        assert_eq!(s.revision(), 5);
    }
}
