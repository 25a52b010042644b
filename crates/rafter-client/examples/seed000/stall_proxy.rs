//! A TCP proxy that can stall: while stalled it keeps every connection
//! open but forwards nothing, in either direction, like a network path
//! that silently drops packets. It cuts one client (seed 000's second API
//! server) off from the cluster without touching the cluster.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct StallProxy {
    address: SocketAddr,
    stalled: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl StallProxy {
    /// Listens on a free loopback port and forwards to `target`
    /// (`host:port`).
    pub async fn start(target: String) -> std::io::Result<StallProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stalled, stalled_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, target, stalled_rx));
        Ok(StallProxy {
            address,
            stalled,
            task,
        })
    }

    /// The endpoint clients dial instead of the target.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops (or resumes) forwarding.
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.send_replace(stalled);
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: String, stalled: watch::Receiver<bool>) {
    while let Ok((inbound, _)) = listener.accept().await {
        let target = target.clone();
        let stalled = stalled.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(&target).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            tokio::select! {
                _ = forward(in_read, out_write, stalled.clone()) => {}
                _ = forward(out_read, in_write, stalled) => {}
            }
        });
    }
}

/// Copies one direction, holding each chunk while the proxy is stalled.
async fn forward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
