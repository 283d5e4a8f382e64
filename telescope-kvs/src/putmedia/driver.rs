//! The tokio loop that drives an [`Upload`]: it feeds it the producer's commands, the acks and
//! failures of the connection and the passing time, and carries out its actions. It decides
//! nothing itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::request::{sign_request, ChannelBody, Target};
use super::session::{Action, Upload};
use super::{Command, PutMediaConfig, PutMediaStats};
use crate::ack::AckParser;
use crate::clock::{Clock, WallClock};

/// How long opening a connection (TCP, TLS, HTTP) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type ResponseFuture =
    Pin<Box<dyn Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>> + Send>>;

/// One open PutMedia request.
struct Connection {
    /// The request body; dropping it ends the body.
    body_tx: Option<mpsc::Sender<Bytes>>,
    response: ResponseFuture,
    /// The response body (the acks), once the status is 200.
    acks: Option<hyper::body::Incoming>,
    parser: AckParser,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What happened on the connection.
enum Event {
    /// The body can take one more chunk.
    Writable(mpsc::OwnedPermit<Bytes>),
    /// Bytes of the ack stream.
    Acks(Bytes),
    /// KVS answered 200: acks follow.
    Accepted,
    /// The connection is over.
    Failed(String),
}

impl Connection {
    async fn next(&mut self, want_write: bool) -> Event {
        let writable = self.body_tx.clone().filter(|_| want_write);
        tokio::select! {
            permit = async {
                match writable {
                    Some(tx) => tx.reserve_owned().await,
                    None => std::future::pending().await,
                }
            } => match permit {
                Ok(permit) => Event::Writable(permit),
                Err(_) => Event::Failed("the connection stopped taking data".into()),
            },
            response = &mut self.response, if self.acks.is_none() => match response {
                Ok(r) if r.status() == http::StatusCode::OK => {
                    self.acks = Some(r.into_body());
                    Event::Accepted
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let text: String = String::from_utf8_lossy(&text).chars().take(200).collect();
                    Event::Failed(format!("PutMedia answered {status}: {text}"))
                }
                Err(e) => Event::Failed(format!("PutMedia request failed: {e}")),
            },
            frame = async {
                match self.acks.as_mut() {
                    Some(body) => body.frame().await,
                    None => std::future::pending().await,
                }
            } => match frame {
                Some(Ok(frame)) => Event::Acks(frame.into_data().unwrap_or_default()),
                Some(Err(e)) => Event::Failed(format!("PutMedia connection failed: {e}")),
                None => Event::Failed("KVS closed the PutMedia connection".into()),
            },
        }
    }
}

/// The loop's state: the upload and what it needs to carry out its actions.
pub(super) struct Driver {
    pub(super) upload: Upload,
    pub(super) config: PutMediaConfig,
    pub(super) credentials: SharedCredentialsProvider,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) wall: Arc<dyn WallClock>,
    /// Where the counters are published for `PutMediaClient::stats`.
    pub(super) stats: Arc<Mutex<PutMediaStats>>,
}

impl Driver {
    /// Run until the upload stops (finished, or the producer gone).
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut link: Option<Connection> = None;
        let mut finish: Option<std::sync::mpsc::SyncSender<bool>> = None;
        let mut closed = false;
        loop {
            let stopped = self.act(&mut link).await;
            self.publish();
            if let Some(drained) = stopped {
                if let Some(reply) = finish.take() {
                    let _ = reply.try_send(drained);
                }
                return;
            }
            let wake = self
                .upload
                .poll_timeout()
                .map(|t| t.saturating_sub(self.clock.now()));
            let want_write = self.upload.has_transmit();
            tokio::select! {
                command = rx.recv(), if !closed => match command {
                    Some(Command::Header(h)) => self.upload.header(h),
                    Some(Command::Fragment { timecode_ms, bytes }) => self.upload.fragment(timecode_ms, bytes),
                    Some(Command::Finish(reply)) => {
                        finish = Some(reply);
                        self.upload.finish();
                    }
                    None => {
                        closed = true;
                        self.upload.close();
                    }
                },
                event = async {
                    match link.as_mut() {
                        Some(c) => c.next(want_write).await,
                        None => std::future::pending().await,
                    }
                } => self.event(event, &mut link),
                _ = async {
                    match wake {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }

    /// Carry out the upload's actions; `Some(drained)` when it stopped.
    async fn act(&mut self, link: &mut Option<Connection>) -> Option<bool> {
        while let Some(action) = self.upload.poll(self.clock.now()) {
            match action {
                Action::Connect { first_timecode_ms } => {
                    match self.connect(first_timecode_ms).await {
                        Ok((connection, expires_in)) => {
                            *link = Some(connection);
                            self.upload.connected(self.clock.now(), expires_in);
                        }
                        Err(e) => self.upload.failed(self.clock.now(), e),
                    }
                }
                Action::CheckCredentials => {
                    let fresher = self.credentials.provide_credentials().await.ok();
                    let expires_in = fresher.and_then(|c| c.expiry()).map(|t| self.wall.until(t));
                    self.upload
                        .credentials_checked(self.clock.now(), expires_in);
                }
                Action::Disconnect => *link = None,
                Action::EndBody => {
                    if let Some(c) = link.as_mut() {
                        c.body_tx = None;
                    }
                }
                Action::Stop { drained } => return Some(drained),
            }
        }
        None
    }

    fn event(&mut self, event: Event, link: &mut Option<Connection>) {
        let now = self.clock.now();
        match event {
            Event::Writable(permit) => {
                if let Some(chunk) = self.upload.poll_transmit(now) {
                    permit.send(chunk);
                }
            }
            Event::Accepted => {}
            Event::Acks(data) => {
                let Some(c) = link.as_mut() else { return };
                for ack in c.parser.push(&data) {
                    match ack {
                        Ok(ack) => self.upload.ack(now, &ack),
                        Err(e) => tracing::warn!(error = %e, "unreadable PutMedia ack"),
                    }
                }
            }
            Event::Failed(reason) => {
                *link = None;
                self.upload.failed(now, reason);
            }
        }
    }

    /// Open a connection and send the signed request; the credentials' remaining lifetime.
    async fn connect(
        &self,
        first_timecode_ms: u64,
    ) -> Result<(Connection, Option<Duration>), String> {
        let creds = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("no credentials: {}", crate::credentials::redact_chain(&e)))?;
        let target = Target::parse(&self.config.endpoint)?;
        let io = match tokio::time::timeout(CONNECT_TIMEOUT, target.connect()).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(format!("cannot connect to {}: {e}", target.authority)),
            Err(_) => return Err(format!("connecting to {} timed out", target.authority)),
        };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let (body_tx, body_rx) = mpsc::channel::<Bytes>(8);
        let request = sign_request(
            &self.config,
            &target,
            &creds,
            first_timecode_ms,
            self.wall.now(),
            ChannelBody(body_rx),
        )?;
        let connection = Connection {
            body_tx: Some(body_tx),
            response: Box::pin(sender.send_request(request)),
            acks: None,
            parser: AckParser::new(),
            task,
        };
        let expires_in = creds.expiry().map(|t| self.wall.until(t));
        Ok((connection, expires_in))
    }

    fn publish(&self) {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = self.upload.stats().clone();
    }
}
