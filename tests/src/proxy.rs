//! A TCP proxy between a client and a test cluster that can misbehave on command: forward,
//! *freeze* (hold every byte without closing anything — a half-open connection as a client sees
//! it), or *refuse* (close every connection and turn new ones away — the server unreachable).

use std::net::SocketAddr;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Pass everything through.
    Forward,
    /// Keep connections open but pass nothing in either direction.
    Freeze,
    /// Close all connections and refuse new ones.
    Refuse,
}

/// A running proxy on 127.0.0.1; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding from a fresh local port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, watcher) = watch::channel(Mode::Forward);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watcher.borrow() == Mode::Refuse {
                    drop(client);
                    continue;
                }
                tokio::spawn(pipe(client, upstream, watcher.clone()));
            }
        });
        Ok(Proxy { addr, mode, task })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches the proxy's behaviour for existing and new connections.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Refuse);
        self.task.abort();
    }
}

async fn pipe(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Either direction ending (or a Refuse) drops all four halves: both sockets close.
    tokio::select! {
        () = copy(client_read, server_write, mode.clone()) => {}
        () = copy(server_read, client_write, mode) => {}
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
            _ = mode.wait_for(|m| *m == Mode::Refuse) => return,
        };
        // Hold the bytes while frozen; give up the connection if told to refuse.
        match mode.wait_for(|m| *m != Mode::Freeze).await {
            Ok(m) if *m == Mode::Forward => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
