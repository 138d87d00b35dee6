//! A long link in userspace: a TCP proxy whose every byte takes half the round trip to arrive,
//! and which lets at most a window of bytes per connection and direction be on the way at once,
//! as a TCP sender does (its window frees as acknowledgements come back, a round trip after
//! the bytes left). A connection through it carries at most `window / round trip`; with no
//! delay it is only the proxy's own cost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// Linux's default ceiling for a socket's send buffer (`net.ipv4.tcp_wmem`): what one
/// connection may have on the way once autotuning grew it.
pub const LINUX_WINDOW: usize = 4 << 20;

pub struct LinkProxy {
    round_trip_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl LinkProxy {
    /// Forwards every connection accepted on `listener` to `upstream`. Call within a runtime.
    pub fn spawn(listener: TcpListener, upstream: String, window: usize) -> LinkProxy {
        let round_trip_ms = Arc::new(AtomicU64::new(0));
        let rtt = round_trip_ms.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, rtt.clone(), window));
                tokio::spawn(pump(sr, cw, rtt.clone(), window));
            }
        });
        LinkProxy { round_trip_ms, task }
    }

    /// The round trip for bytes read from now on.
    pub fn set_round_trip(&self, rtt: Duration) {
        self.round_trip_ms.store(rtt.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One direction of a connection.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, round_trip_ms: Arc<AtomicU64>, window: usize) {
    let window = Arc::new(Semaphore::new(window));
    let (on_the_way, mut arriving) = mpsc::unbounded_channel::<(Instant, Vec<u8>, tokio::sync::OwnedSemaphorePermit)>();
    let deliver = tokio::spawn(async move {
        while let Some((sent, bytes, room)) = arriving.recv().await {
            let rtt = Duration::from_millis(round_trip_ms.load(Ordering::SeqCst));
            tokio::time::sleep_until(sent + rtt / 2).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
            // The window frees when the acknowledgement is back, half a round trip later.
            tokio::spawn(async move {
                tokio::time::sleep_until(sent + rtt).await;
                drop(room);
            });
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Ok(room) = window.clone().acquire_many_owned(n as u32).await else { break };
        if on_the_way.send((Instant::now(), buf[..n].to_vec(), room)).is_err() {
            break;
        }
    }
    drop(on_the_way);
    let _ = deliver.await;
}
