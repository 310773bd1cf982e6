//! A TCP proxy the test controls, between a node and its database: `cut` drops every
//! connection through it and refuses new ones (what a node sees when the network between it
//! and the database fails), `restore` lets connections through again.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct TcpProxy {
    addr: SocketAddr,
    /// `true` while cut.
    cut: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy binds a free port");
        let addr = listener.local_addr().expect("a bound address");
        let cut = Arc::new(watch::Sender::new(false));
        let flag = Arc::clone(&cut);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if *flag.borrow() {
                    // Refused: closed at once.
                    drop(inbound);
                    continue;
                }
                tokio::spawn(pipe(inbound, target, flag.subscribe()));
            }
        });
        Self { addr, cut, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until either side closes or the proxy is cut.
async fn pipe(mut inbound: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
    // Both sockets close here: each side sees its connection end.
}
