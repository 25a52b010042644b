//! A TCP proxy in front of a member's peer port, so a test or a demo can cut the
//! member off from its peers: members advertise the proxy's port to each
//! other, and while the proxy is cut it drops every connection through it
//! and refuses new ones. Every peer's traffic to the member (Raft messages,
//! and the answers to the member's own messages, which travel on the
//! peers' streams to it) is lost; the member's own messages still reach its
//! peers, as in an asymmetric partition. Client traffic is not proxied.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct PeerProxy {
    port: u16,
    target_port: Arc<AtomicU16>,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl PeerProxy {
    /// Listens on a free loopback port and forwards to `target_port`.
    pub async fn start(target_port: u16) -> PeerProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the peer proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let target = Arc::new(AtomicU16::new(target_port));
        let (cut, cut_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&target), cut_rx));
        PeerProxy {
            port,
            target_port: target,
            cut,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The member's peer port moved (a start retried with new ports).
    pub fn retarget(&self, target_port: u16) {
        self.target_port.store(target_port, Ordering::SeqCst);
    }

    /// Cuts (drops every connection, refuses new ones) or heals.
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: Arc<AtomicU16>, cut: watch::Receiver<bool>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        if *cut.borrow() {
            drop(inbound);
            continue;
        }
        let port = target.load(Ordering::SeqCst);
        let mut cut = cut.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", port)).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (mut a, mut b) = (inbound, outbound);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                _ = cut.wait_for(|cut| *cut) => {}
            }
        });
    }
}
