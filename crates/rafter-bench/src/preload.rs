//! Writing every key of the key space once before a read or compare-and-swap
//! workload is measured, so reads find values of the configured size and
//! compare-on-value has a known starting value.

use crate::workload::Worker;

/// Puts keys `0..key_count`, the clients taking every `workers.len()`-th key
/// each, concurrently (the same share compare-and-swap clients work on, so
/// they start knowing their keys' revisions). Fails on the first error: a cluster that cannot take
/// the preload would not give meaningful figures.
pub async fn preload(workers: Vec<Worker>, key_count: u64) -> Result<Vec<Worker>, String> {
    let stride = workers.len() as u64;
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(offset, mut worker)| {
            tokio::spawn(async move {
                let mut key_index = offset as u64;
                while key_index < key_count {
                    if let Err(status) = worker.put(key_index).await {
                        return Err(format!(
                            "preloading key {key_index} failed: {:?}: {}",
                            status.code(),
                            status.message()
                        ));
                    }
                    key_index += stride;
                }
                Ok(worker)
            })
        })
        .collect();
    let mut workers = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    for task in tasks {
        match task.await.expect("a preloading client panicked") {
            Ok(worker) => workers.push(worker),
            Err(error) => first_error = first_error.or(Some(error)),
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(workers),
    }
}
