//! Faults PutMedia can be told to inject (`--fault`, `POST /_mock/faults`).

use std::str::FromStr;

/// A fault PutMedia can be told to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Drop every PutMedia connection when its N-th fragment arrives, without acknowledging
    /// that fragment (the producer must resend it).
    ResetAfterFragments(u32),
    /// Cut every PutMedia connection once it has received more than N body bytes (mid-fragment).
    ResetAfterBytes(u64),
    /// Answer the first N PutMedia requests with 503 (throttled service).
    Refuse(u32),
    /// Hold every PERSISTED ack back this many milliseconds.
    DelayAcks(u64),
    /// Send RECEIVED but never PERSISTED.
    WithholdPersisted,
    /// Answer the N-th fragment of every connection with an ERROR ack of this id (and do not
    /// store it): `error-ack:ID:N`.
    ErrorAck { error_id: u64, nth: u32 },
    /// Cut every PutMedia connection this many milliseconds after it started, as KVS does when
    /// the credentials that signed it expire.
    ExpireConnections(u64),
}

impl Fault {
    /// The fragment count of a `reset-after` fault.
    pub fn reset_after(&self) -> Option<u32> {
        match self {
            Fault::ResetAfterFragments(n) => Some(*n),
            _ => None,
        }
    }

    /// The request count of a `refuse` fault.
    pub fn refuse(&self) -> Option<u32> {
        match self {
            Fault::Refuse(n) => Some(*n),
            _ => None,
        }
    }

    /// The delay of a `delay-acks` fault.
    pub fn ack_delay(&self) -> Option<std::time::Duration> {
        match self {
            Fault::DelayAcks(ms) => Some(std::time::Duration::from_millis(*ms)),
            _ => None,
        }
    }

    /// The (error id, fragment) of an `error-ack` fault.
    pub fn error_ack(&self) -> Option<(u64, u32)> {
        match self {
            Fault::ErrorAck { error_id, nth } => Some((*error_id, *nth)),
            _ => None,
        }
    }

    /// The byte count of a `reset-after-bytes` fault.
    pub fn reset_after_bytes(&self) -> Option<u64> {
        match self {
            Fault::ResetAfterBytes(n) => Some(*n),
            _ => None,
        }
    }

    /// The lifetime of connections under an `expire-connections` fault.
    pub fn connection_lifetime(&self) -> Option<std::time::Duration> {
        match self {
            Fault::ExpireConnections(ms) => Some(std::time::Duration::from_millis(*ms)),
            _ => None,
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    /// `reset-after:N`, `reset-after-bytes:N`, `refuse:N`, `delay-acks:MS`, `withhold-persisted`, `error-ack:ID:N`,
    /// `expire-connections:MS`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, arg) = s.split_once(':').unwrap_or((s, ""));
        let count = || arg.parse::<u32>().ok().filter(|n| *n > 0);
        let fault = match name {
            "reset-after" => count().map(Fault::ResetAfterFragments),
            "reset-after-bytes" => arg.parse::<u64>().ok().filter(|n| *n > 0).map(Fault::ResetAfterBytes),
            "refuse" => count().map(Fault::Refuse),
            "delay-acks" => arg.parse::<u64>().ok().map(Fault::DelayAcks),
            "withhold-persisted" if arg.is_empty() => Some(Fault::WithholdPersisted),
            "error-ack" => arg.split_once(':').and_then(|(id, n)| {
                let nth = n.parse().ok().filter(|n| *n > 0)?;
                Some(Fault::ErrorAck {
                    error_id: id.parse().ok()?,
                    nth,
                })
            }),
            "expire-connections" => arg
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Fault::ExpireConnections),
            _ => {
                return Err(format!(
                    "unknown fault `{s}` (known: reset-after:N, reset-after-bytes:N, refuse:N, delay-acks:MS, \
                     withhold-persisted, error-ack:ID:N, expire-connections:MS)"
                ))
            }
        };
        fault.ok_or_else(|| format!("`{s}`: bad arguments for {name}"))
    }
}
