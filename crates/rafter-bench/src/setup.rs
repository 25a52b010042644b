//! Everything before measuring starts: connections, clients and the preload,
//! plus the settings every report repeats. Shared by single and stepped runs.

use crate::args::{CasCompare, ClusterArgs, Consistency, DataArgs};
use crate::conn::dial;
use crate::keys::{random_value, KeySpace};
use crate::preload::preload;
use crate::report::Settings;
use crate::rng::Rng;
use crate::workload::{Worker, Workload};

/// Seed of the value all puts write, so etcd and Rafter store the same bytes.
const VALUE_SEED: u64 = 0xBE4C_0001;

/// Ready-to-run clients for `workload`, and the settings of the run.
pub async fn prepare(
    cluster: &ClusterArgs,
    data: &DataArgs,
    workload: Workload,
) -> Result<(Vec<Worker>, Settings), String> {
    if cluster.clients == 0 {
        return Err("--clients must be at least 1".to_string());
    }
    if let Workload::Mixed { read_ratio, .. } = workload {
        if !(0.0..=1.0).contains(&read_ratio) {
            return Err(format!("--read-ratio {read_ratio} is not between 0 and 1"));
        }
    }
    let keys = KeySpace::new(data.key_size_bytes, data.key_space_keys)?;
    let channels = dial(&cluster.endpoints, cluster.conns).await?;
    let value = random_value(data.val_size_bytes, &mut Rng::new(VALUE_SEED));
    let mut workers: Vec<Worker> = (0..cluster.clients)
        .map(|client_index| {
            Worker::new(
                channels[client_index % channels.len()].clone(),
                workload,
                keys.clone(),
                value.clone(),
                (client_index, cluster.clients),
                cluster.request_timeout,
            )
        })
        .collect();
    if cluster.session {
        for (client_index, worker) in workers.iter_mut().enumerate() {
            worker
                .open_session(channels[client_index % channels.len()].clone())
                .await?;
        }
    }
    let workers = if workload.needs_preload() {
        preload(workers, keys.count()).await?
    } else {
        workers
    };
    Ok((workers, settings(cluster, data, workload)))
}

/// The settings of a run, as reported.
fn settings(cluster: &ClusterArgs, data: &DataArgs, workload: Workload) -> Settings {
    let consistency_name = |consistency: Consistency| match consistency {
        Consistency::Linearizable => "l".to_string(),
        Consistency::Serializable => "s".to_string(),
    };
    let (consistency, cas_on, read_ratio) = match workload {
        Workload::Put => (None, None, None),
        Workload::Get(consistency) => (Some(consistency_name(consistency)), None, None),
        Workload::TxnCas(compare) => {
            let cas_on = match compare {
                CasCompare::ModRevision => "mod",
                CasCompare::Value => "value",
            };
            (None, Some(cas_on.to_string()), None)
        }
        Workload::Mixed {
            read_ratio,
            consistency,
        } => (Some(consistency_name(consistency)), None, Some(read_ratio)),
    };
    Settings {
        workload: if cluster.session {
            format!("{}+session", workload.name())
        } else {
            workload.name().to_string()
        },
        endpoints: cluster.endpoints.clone(),
        conns: cluster.conns,
        clients: cluster.clients,
        key_size_bytes: data.key_size_bytes,
        val_size_bytes: data.val_size_bytes,
        key_space_keys: data.key_space_keys,
        consistency,
        cas_on,
        read_ratio,
        watchers: None,
        watch_streams: None,
    }
}
