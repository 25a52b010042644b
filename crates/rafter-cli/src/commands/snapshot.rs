//! `snapshot save|status|restore`, as etcdctl (3.4) and etcdutl have them:
//! save streams a member's point-in-time copy of the store into a file
//! (written as `FILE.part`, fsynced, then renamed); status summarizes a
//! file; restore builds a new member's data directory from one (keys,
//! revisions and leases kept; the new cluster's log starts empty, so it
//! gets a new cluster id from the flags its members start with).
//!
//! The file is Rafter's snapshot format (`rafter_storage::snapshot_file`:
//! every table of the store, a CRC-32, and etcd's trailing SHA-256), not
//! etcd's bolt database: etcdctl's `snapshot save` saves it, but only these
//! commands read it.

use std::io::Write;
use std::path::{Path, PathBuf};

use rafter_proto::etcdserverpb::SnapshotRequest;
use rafter_storage::MvccStore;
use tokio_stream::StreamExt;

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::Format;
use crate::Ctx;

/// `rafter snapshot <subcommand>`.
#[derive(Debug, clap::Args)]
pub struct SnapshotCommand {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub action: SnapshotAction,
}

/// Snapshot subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SnapshotAction {
    /// Stores a member's snapshot of the store to a given file
    Save {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Gets the status of a snapshot file (hash, revision, keys, size)
    Status {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Restores a snapshot into a new member's data directory
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The member's name (its data directory defaults to NAME.rafter)
        #[arg(long, default_value = "default")]
        name: String,
        /// Where the member's data goes (must not hold a member yet)
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Accepted as etcdutl takes it; the member's flags at start set the
        /// membership (static bootstrap)
        #[arg(long, default_value = "default=http://localhost:2380")]
        initial_cluster: String,
        /// Accepted as etcdutl takes it (see --initial-cluster)
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// Accepted as etcdutl takes it (see --initial-cluster)
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
    },
}

/// What `status` reports of a snapshot file.
#[derive(Debug, serde::Serialize)]
struct Summary {
    hash: u32,
    revision: i64,
    #[serde(rename = "totalKey")]
    total_keys: u64,
    #[serde(rename = "totalSize")]
    total_size: u64,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> CliError {
    CliError::failed(format!("{what} {}: {e}", path.display()))
}

/// The snapshot blob inside a snapshot file.
fn read_blob(path: &Path) -> Result<(Vec<u8>, usize), CliError> {
    let file = std::fs::read(path).map_err(|e| io_error("cannot read", path, e))?;
    let blob = rafter_storage::snapshot_file::decode(&file)
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?
        .to_vec();
    Ok((blob, file.len()))
}

fn read_snapshot(path: &Path) -> Result<(Vec<u8>, usize, MvccStore), CliError> {
    let (blob, file_len) = read_blob(path)?;
    let store = MvccStore::open_in_memory().map_err(|e| CliError::failed(e.to_string()))?;
    store
        .restore(&blob)
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
    Ok((blob, file_len, store))
}

fn summary(path: &Path) -> Result<Summary, CliError> {
    let (blob, file_len, store) = read_snapshot(path)?;
    let state = store.state().map_err(|e| CliError::failed(e.to_string()))?;
    Ok(Summary {
        hash: crc32_of(&blob),
        revision: state.current_revision,
        total_keys: store
            .key_count()
            .map_err(|e| CliError::failed(e.to_string()))?,
        total_size: file_len as u64,
    })
}

/// The hash `status` prints: the CRC-32 the snapshot blob ends with (of
/// every row).
fn crc32_of(data: &[u8]) -> u32 {
    data.len().checked_sub(4).map_or(0, |n| {
        u32::from_le_bytes(data[n..].try_into().expect("4 bytes"))
    })
}

impl SnapshotCommand {
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
        match &self.action {
            SnapshotAction::Save { file } => self.save(ctx, file).await,
            SnapshotAction::Status { file } => {
                let s = summary(file)?;
                let written = match self.global.format()? {
                    Format::Json => writeln!(ctx.out, "{}", serde_json::to_string(&s).expect("JSON")),
                    Format::Table => writeln!(
                        ctx.out,
                        "+----------+----------+------------+------------+\n|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n+----------+----------+------------+------------+\n| {:08x} | {:>8} | {:>10} | {:>10} |\n+----------+----------+------------+------------+",
                        s.hash, s.revision, s.total_keys, crate::output::humanize_bytes(s.total_size)
                    ),
                    _ => writeln!(
                        ctx.out,
                        "{:x}, {}, {}, {}",
                        s.hash,
                        s.revision,
                        s.total_keys,
                        crate::output::humanize_bytes(s.total_size)
                    ),
                };
                written.map_err(|e| CliError::failed(e.to_string()))
            }
            SnapshotAction::Restore {
                file,
                name,
                data_dir,
                ..
            } => {
                let dir = data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(format!("{name}.rafter")));
                let member = dir.join("member");
                if member.exists() {
                    return Err(CliError::failed(format!(
                        "data-dir {:?} exists: restore builds a new member's data",
                        dir.display().to_string()
                    )));
                }
                let (data, _) = read_blob(file)?;
                std::fs::create_dir_all(&member)
                    .map_err(|e| io_error("cannot create", &member, e))?;
                let store = MvccStore::open(&member.join("kv.redb"))
                    .map_err(|e| CliError::failed(e.to_string()))?;
                let state = store.restore_for_new_cluster(&data).map_err(|e| {
                    let _ = std::fs::remove_dir_all(&member);
                    CliError::failed(format!("{}: {e}", file.display()))
                })?;
                writeln!(
                    ctx.out,
                    "restored snapshot {} into {} at revision {}",
                    file.display(),
                    dir.display(),
                    state.current_revision
                )
                .map_err(|e| CliError::failed(e.to_string()))
            }
        }
    }

    async fn save(&self, ctx: &mut Ctx<'_>, file: &Path) -> Result<(), CliError> {
        let mut stream = ctx
            .conn(&self.global)
            .call(|ch| async move {
                crate::conn::maintenance(ch)
                    .snapshot(SnapshotRequest {})
                    .await
            })
            .await?;
        let part = file.with_extension("part");
        let mut out =
            std::fs::File::create(&part).map_err(|e| io_error("cannot create", &part, e))?;
        let mut bytes = 0u64;
        while let Some(msg) = stream.next().await {
            let msg = msg.map_err(CliError::from)?;
            out.write_all(&msg.blob)
                .map_err(|e| io_error("cannot write", &part, e))?;
            bytes += msg.blob.len() as u64;
        }
        out.sync_all()
            .map_err(|e| io_error("cannot fsync", &part, e))?;
        std::fs::rename(&part, file).map_err(|e| io_error("cannot rename", &part, e))?;
        writeln!(
            ctx.out,
            "Snapshot saved at {} ({bytes} bytes)",
            file.display()
        )
        .map_err(|e| CliError::failed(e.to_string()))
    }
}
