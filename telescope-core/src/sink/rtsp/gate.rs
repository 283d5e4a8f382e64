//! The RTSP server's front door: every client connection passes through a small proxy that
//! bounds what a request may cost before gst-rtsp-server sees it.
//!
//! Why a proxy: gst-rtsp-server parses a request's headers into memory until the blank line
//! that ends them, with no bound on their number (only a line is cut at 4 KiB), so 64 MiB of
//! header lines cost hundreds of MB that malloc then keeps. Its one knob, the content length
//! limit, bounds bodies only (and is set too, as a second line). Nothing in the library sees the
//! bytes first, so we accept the TCP connections ourselves: one thread per direction per
//! connection reads the client's requests, checks their framing against [`MAX_HEADER_BYTES`],
//! [`MAX_LINE_BYTES`], [`MAX_HEADER_LINES`] and [`MAX_BODY_BYTES`], and forwards each request
//! *re-written canonically* (CRLF line ends, no folded lines, at most one all-digit
//! `Content-Length`) over a loopback socket pair whose other end is handed to the server with
//! the client's real address (`transfer_connection`): the server then frames exactly what we
//! checked, sends UDP to the real client and authenticates by its address. A request over a
//! limit closes the connection. Memory per connection is bounded by a few buffers of those
//! sizes, and connections by [`MAX_CONNECTIONS`] (and [`MAX_CONNECTIONS_PER_ADDRESS`]).
//! RTSP-over-HTTP tunnelling (base64 inside an HTTP POST body, which we could not check) is
//! refused.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::refusals::{Refusal, Refusals};

/// Bytes of one request's start line and headers together.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Bytes of one line (gst-rtsp-server cuts lines at 4 KiB: a longer one would be read
/// differently by it than by us).
pub const MAX_LINE_BYTES: usize = 4000;
/// Header lines of one request.
pub const MAX_HEADER_LINES: usize = 64;
/// Bytes of one request's body (RTSP requests from players carry none or a few hundred).
pub const MAX_BODY_BYTES: u32 = 64 * 1024;
/// Client connections open at once.
pub const MAX_CONNECTIONS: usize = 128;
/// Client connections open at once from one address.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 32;
/// Time a request may take to arrive once its first byte has (a slow sender holds a
/// connection, not the server).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client may leave the server's replies and media unread before it is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Proxy threads need little stack: buffers are on the heap.
const THREAD_STACK: usize = 128 * 1024;

/// Hands a connection to the RTSP server: our end of a loopback pair, and the client's address.
pub type HandOver = dyn Fn(OwnedFd, IpAddr, u16) + Send + Sync;

/// Why a request was not forwarded.
#[derive(Debug)]
pub enum FrameError {
    /// The client closed the connection (between or inside requests).
    Closed,
    /// Reading failed (or timed out).
    Io(io::Error),
    /// Over a limit or malformed: the connection is closed.
    Refused(&'static str),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        }
    }
}

/// A reader whose reads fail once a deadline (when set) has passed.
pub struct Deadline<R> {
    inner: R,
    until: Option<Instant>,
}

/// What can bound the time of its reads.
pub trait TimedRead: Read {
    /// Wait at most `timeout` (or for ever) for the next read.
    fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl TimedRead for TcpStream {
    fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)
    }
}

impl TimedRead for &[u8] {
    fn set_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

impl<R: TimedRead> Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = match self.until {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Some(left)
            }
            None => None,
        };
        self.inner.set_timeout(timeout)?;
        self.inner.read(buf)
    }
}

impl<R> Deadline<R> {
    /// A reader with no deadline yet.
    pub fn new(inner: R) -> Self {
        Deadline { inner, until: None }
    }
}

/// Read the next message (an interleaved data frame or a request) from `r` into `out`, checked
/// against the limits and written canonically.
pub fn next_message<R: TimedRead>(
    r: &mut BufReader<Deadline<R>>,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    out.clear();
    r.get_mut().until = None;
    // Blank lines between messages are skipped, as the server does.
    loop {
        let first = r.fill_buf()?.first().copied();
        match first {
            None => return Err(FrameError::Closed),
            Some(b'\r' | b'\n') => r.consume(1),
            _ => break,
        }
    }
    r.get_mut().until = Some(Instant::now() + REQUEST_TIMEOUT);
    if r.fill_buf()?.first() == Some(&b'$') {
        // `$`, channel, 16-bit length: bounded by its format.
        let mut head = [0u8; 4];
        r.read_exact(&mut head)?;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        out.extend_from_slice(&head);
        read_into(r, out, len)?;
        return Ok(());
    }
    let mut header_bytes = 0;
    let mut lines = 0usize;
    let mut content_length: Option<u32> = None;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let budget = (MAX_HEADER_BYTES - header_bytes).min(MAX_LINE_BYTES);
        let read = r
            .by_ref()
            .take(budget as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Err(FrameError::Closed);
        }
        if line.last() != Some(&b'\n') {
            return Err(if line.len() > budget {
                FrameError::Refused("request headers over the size limit")
            } else {
                FrameError::Closed
            });
        }
        header_bytes += line.len();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            break;
        }
        if line.iter().any(|&b| b == b'\r' || b == 0) {
            return Err(FrameError::Refused("malformed request line"));
        }
        if lines == 0 {
            let tunnel = line
                .split(|&b| b == b' ')
                .any(|w| w.len() >= 5 && w[..5].eq_ignore_ascii_case(b"HTTP/"));
            if tunnel {
                return Err(FrameError::Refused("RTSP over HTTP is not served"));
            }
        } else {
            if matches!(line[0], b' ' | b'\t') {
                return Err(FrameError::Refused("folded request header"));
            }
            if let Some(n) = content_length_of(&line)? {
                if content_length.replace(n).is_some() {
                    return Err(FrameError::Refused("repeated Content-Length"));
                }
            }
        }
        lines += 1;
        if lines > MAX_HEADER_LINES + 1 {
            return Err(FrameError::Refused("too many request headers"));
        }
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if let Some(n) = content_length {
        read_into(r, out, n as usize)?;
    }
    Ok(())
}

/// The value of a `Content-Length` header line, refused unless plain digits within the limit.
fn content_length_of(line: &[u8]) -> Result<Option<u32>, FrameError> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Ok(None);
    };
    if !line[..colon]
        .trim_ascii()
        .eq_ignore_ascii_case(b"content-length")
    {
        return Ok(None);
    }
    let value = line[colon + 1..].trim_ascii();
    if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
        return Err(FrameError::Refused("malformed Content-Length"));
    }
    let n: u64 = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(FrameError::Refused("malformed Content-Length"))?;
    if n > u64::from(MAX_BODY_BYTES) {
        return Err(FrameError::Refused("request body over the size limit"));
    }
    Ok(Some(n as u32))
}

fn read_into(r: &mut impl Read, out: &mut Vec<u8>, len: usize) -> Result<(), FrameError> {
    let start = out.len();
    out.resize(start + len, 0);
    r.read_exact(&mut out[start..])?;
    Ok(())
}

/// Open connections, to bound them and to close them when the server stops.
#[derive(Default)]
struct Live {
    next_id: u64,
    per_address: HashMap<IpAddr, usize>,
    clients: HashMap<u64, TcpStream>,
}

struct Shared {
    stop: AtomicBool,
    live: Mutex<Live>,
    refusals: Arc<Refusals>,
    hand_over: Box<HandOver>,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The listening socket and its accept thread; stops (and closes every connection) on drop.
pub struct Gate {
    shared: Arc<Shared>,
    local: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl Gate {
    /// Listen on `listener`; each accepted connection is checked and handed over.
    pub fn start(
        listener: TcpListener,
        refusals: Arc<Refusals>,
        hand_over: Box<HandOver>,
    ) -> io::Result<Gate> {
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            live: Mutex::default(),
            refusals,
            hand_over,
        });
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("telescope-rtsp-gate".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Gate {
            shared,
            local,
            accept: Some(accept),
        })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept thread with a connection of our own.
        let wake = match self.local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::from(([127, 0, 0, 1], self.local.port()))
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::from((Ipv6Addr::LOCALHOST, self.local.port()))
            }
            _ => self.local,
        };
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, client) in self.shared.live().clients.drain() {
            let _ = client.shutdown(Shutdown::Both);
        }
    }
}

/// Private loopback listeners to make socket pairs of the client's address family (the server
/// picks the family of its UDP sockets from the connection it is given).
#[derive(Default)]
struct Loopback {
    v4: Option<TcpListener>,
    v6: Option<TcpListener>,
}

impl Loopback {
    fn pair(&mut self, v6: bool) -> io::Result<(TcpStream, TcpStream)> {
        let slot = if v6 { &mut self.v6 } else { &mut self.v4 };
        if slot.is_none() {
            let at: SocketAddr = if v6 {
                (Ipv6Addr::LOCALHOST, 0).into()
            } else {
                ([127, 0, 0, 1], 0).into()
            };
            *slot = Some(TcpListener::bind(at)?);
        }
        let listener = slot
            .as_ref()
            .ok_or_else(|| io::Error::other("no loopback"))?;
        let ours = TcpStream::connect(listener.local_addr()?)?;
        let want = ours.local_addr()?;
        // Another local process may connect to the private port too: take only our own.
        for _ in 0..8 {
            let (theirs, from) = listener.accept()?;
            if from == want {
                return Ok((ours, theirs));
            }
        }
        Err(io::Error::other("loopback pair not established"))
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut loopback = Loopback::default();
    let backoff = crate::clock::Backoff::new(Duration::from_millis(1), Duration::from_millis(200));
    let mut failures = 0;
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let (client, from) = match accepted {
            Ok(c) => {
                failures = 0;
                c
            }
            Err(e) => {
                // Out of descriptors or memory: wait instead of spinning on the error.
                tracing::debug!(error = %e, "RTSP accept failed");
                std::thread::sleep(backoff.delay(failures));
                failures = u32::saturating_add(failures, 1);
                continue;
            }
        };
        let ip = from.ip().to_canonical();
        let id = {
            let mut live = shared.live();
            let here = live.per_address.get(&ip).copied().unwrap_or(0);
            if live.clients.len() >= MAX_CONNECTIONS || here >= MAX_CONNECTIONS_PER_ADDRESS {
                drop(live);
                shared.refusals.note(Refusal::Crowded, ip);
                continue;
            }
            let Ok(clone) = client.try_clone() else {
                continue;
            };
            live.next_id += 1;
            let id = live.next_id;
            live.clients.insert(id, clone);
            *live.per_address.entry(ip).or_default() += 1;
            id
        };
        let connection = Connection {
            shared: shared.clone(),
            id,
            ip,
        };
        if let Err(e) = serve(&mut loopback, client, from.port(), connection) {
            tracing::debug!(error = %e, "RTSP connection not served");
        }
    }
}

/// One client connection's place in [`Live`], given back when the last of its threads ends.
struct Connection {
    shared: Arc<Shared>,
    id: u64,
    ip: IpAddr,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut live = self.shared.live();
        if let Some(c) = live.clients.remove(&self.id) {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(n) = live.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                live.per_address.remove(&self.ip);
            }
        }
    }
}

fn serve(
    loopback: &mut Loopback,
    client: TcpStream,
    port: u16,
    connection: Connection,
) -> io::Result<()> {
    let (ours, theirs) = loopback.pair(connection.ip.is_ipv6())?;
    for s in [&client, &ours] {
        s.set_nodelay(true)?;
    }
    client.set_write_timeout(Some(WRITE_TIMEOUT))?;
    (connection.shared.hand_over)(OwnedFd::from(theirs), connection.ip, port);
    let connection = Arc::new(connection);
    let (client_in, ours_out) = (client.try_clone()?, ours.try_clone()?);
    let up = connection.clone();
    std::thread::Builder::new()
        .name("telescope-rtsp-in".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            requests(client_in, ours_out, &up);
        })?;
    std::thread::Builder::new()
        .name("telescope-rtsp-out".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let (mut from, mut to) = (ours, client);
            let _ = io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            drop(connection);
        })?;
    Ok(())
}

/// Forward the client's requests, checked, until it closes or breaks a limit.
fn requests(client: TcpStream, mut server: TcpStream, connection: &Connection) {
    let mut reader = BufReader::with_capacity(8 * 1024, Deadline::new(client));
    let mut message = Vec::with_capacity(1024);
    let end = loop {
        match next_message(&mut reader, &mut message) {
            Ok(()) => {
                if server.write_all(&message).is_err() {
                    break None;
                }
            }
            Err(FrameError::Refused(why)) => break Some(why),
            Err(FrameError::Io(e)) => {
                tracing::trace!(client = %connection.ip, error = %e, "RTSP connection ended");
                break None;
            }
            Err(FrameError::Closed) => break None,
        }
    };
    if let Some(why) = end {
        tracing::debug!(client = %connection.ip, why, "RTSP request refused");
        connection
            .shared
            .refusals
            .note(Refusal::Oversized, connection.ip);
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = reader.get_ref().inner.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(input: &[u8]) -> (Vec<Vec<u8>>, Option<FrameError>) {
        let mut r = BufReader::new(Deadline::new(input));
        let mut out = Vec::new();
        let mut messages = Vec::new();
        loop {
            match next_message(&mut r, &mut out) {
                Ok(()) => messages.push(out.clone()),
                Err(FrameError::Closed) => return (messages, None),
                Err(e) => return (messages, Some(e)),
            }
        }
    }

    #[test]
    fn requests_pass_rewritten_with_crlf_and_their_bodies() {
        let (m, err) = frame(
            b"\r\nOPTIONS * RTSP/1.0\nCSeq: 1\n\nSET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\nContent-Length:  4 \r\n\r\nabcd$\x00\x00\x02xy",
        );
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            m,
            vec![
                b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n".to_vec(),
                b"SET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\nContent-Length:  4 \r\n\r\nabcd"
                    .to_vec(),
                b"$\x00\x00\x02xy".to_vec(),
            ]
        );
    }

    fn refused(input: &[u8]) -> &'static str {
        match frame(input).1 {
            Some(FrameError::Refused(why)) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn requests_over_a_limit_or_framed_ambiguously_are_refused() {
        let mut many = b"OPTIONS * RTSP/1.0\r\n".to_vec();
        for i in 0..MAX_HEADER_LINES + 1 {
            many.extend_from_slice(format!("X-{i}: a\r\n").as_bytes());
        }
        assert_eq!(refused(&many), "too many request headers");
        let mut big = b"OPTIONS * RTSP/1.0\r\n".to_vec();
        for _ in 0..4 {
            big.extend_from_slice(format!("X: {}\r\n", "a".repeat(3000)).as_bytes());
        }
        assert_eq!(refused(&big), "request headers over the size limit");
        let long = format!(
            "OPTIONS * RTSP/1.0\r\nX: {}\r\n",
            "a".repeat(MAX_LINE_BYTES)
        );
        assert_eq!(
            refused(long.as_bytes()),
            "request headers over the size limit"
        );
        assert_eq!(
            refused(b"DESCRIBE / RTSP/1.0\r\ncontent-length: 99999999\r\n\r\n"),
            "request body over the size limit"
        );
        for bad in [
            &b"DESCRIBE / RTSP/1.0\r\nContent-Length: +4\r\n\r\n"[..],
            b"DESCRIBE / RTSP/1.0\r\nContent-Length: 4x\r\n\r\n",
            b"DESCRIBE / RTSP/1.0\r\nContent-Length:\r\n\r\n",
        ] {
            assert_eq!(refused(bad), "malformed Content-Length");
        }
        assert_eq!(
            refused(b"DESCRIBE / RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            "repeated Content-Length"
        );
        assert_eq!(
            refused(b"DESCRIBE / RTSP/1.0\r\nX: a\r\n Content-Length: 5\r\n\r\n"),
            "folded request header"
        );
        assert_eq!(
            refused(b"DESCRIBE / RTSP/1.0\r\nX: a\rContent-Length: 5\r\n\r\n"),
            "malformed request line"
        );
        assert_eq!(
            refused(b"GET / HTTP/1.0\r\nx-sessioncookie: a\r\n\r\n"),
            "RTSP over HTTP is not served"
        );
    }
}
