//! The connections being served: counted, each with its requests in flight, so that when the
//! server is full the longest-idle one makes room for a newcomer instead of the newcomer (a
//! DescribeStream) being shut out by connections that send nothing.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// One served connection.
#[derive(Debug)]
pub struct Connection {
    /// Requests whose response is not yet fully sent.
    in_flight: AtomicUsize,
    /// When it last had nothing in flight.
    idle_since: Mutex<Instant>,
    /// Told to close.
    pub close: Notify,
}

impl Connection {
    fn idle_since(&self) -> Option<Instant> {
        (self.in_flight.load(Ordering::SeqCst) == 0)
            .then(|| *self.idle_since.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Every connection served.
#[derive(Debug, Default)]
pub struct Connections {
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
    next: std::sync::atomic::AtomicU64,
}

impl Connections {
    /// Register a new connection; when `max` are open already, the one idle the longest is told
    /// to close (none is when all are busy: the newcomer is served anyway).
    pub fn admit(self: &Arc<Self>, max: usize) -> Admitted {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Connection {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            close: Notify::new(),
        });
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= max {
            let victim = open
                .iter()
                .filter_map(|(id, c)| c.idle_since().map(|t| (t, *id)))
                .min();
            if let Some((_, id)) = victim {
                if let Some(c) = open.remove(&id) {
                    c.close.notify_one();
                }
            }
        }
        open.insert(id, conn.clone());
        Admitted {
            registry: self.clone(),
            id,
            conn,
        }
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A connection's place in the registry, given up when dropped.
#[derive(Debug)]
pub struct Admitted {
    registry: Arc<Connections>,
    id: u64,
    /// The connection.
    pub conn: Arc<Connection>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// A request in flight on a connection, until its response body is dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Connection>);

impl InFlight {
    /// Count a request on `conn`.
    pub fn start(conn: &Arc<Connection>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(conn.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted in flight until it is done.
pub struct Tracked<B> {
    pub body: B,
    pub _in_flight: InFlight,
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Connections this process can serve given its descriptor limit (`RLIMIT_NOFILE`, read from
/// `/proc/self/limits`), keeping 32 for the listener, files and the runtime; `None` when the
/// limit cannot be read.
pub fn descriptor_room() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft: usize = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(soft.saturating_sub(32).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_registry_closes_the_longest_idle_connection_not_a_busy_one() {
        let registry = Arc::new(Connections::default());
        let first = registry.admit(2);
        let busy = InFlight::start(&first.conn);
        let second = registry.admit(2);
        let third = registry.admit(2);
        assert_eq!(registry.len(), 2, "one made room");
        // The second (idle) was chosen; the first is busy and stays.
        let closed = |c: &Arc<Connection>| {
            let n = c.close.notified();
            tokio::pin!(n);
            n.as_mut().enable()
        };
        assert!(closed(&second.conn));
        assert!(!closed(&first.conn));
        drop((busy, third));
    }
}
