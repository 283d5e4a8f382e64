//! The PutMedia acknowledgement stream: JSON objects, one per event, as the response body
//! arrives in arbitrary pieces. The parser finds whole objects (string- and escape-aware),
//! so an ack split across reads, or two acks in one read, come out the same.

/// What KVS says about a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckEvent {
    /// KVS started receiving the fragment.
    Buffering,
    /// The whole fragment arrived.
    Received,
    /// The fragment is stored durably.
    Persisted,
    /// The fragment (or the stream) failed.
    Error {
        /// KVS's numeric error id (e.g. 4000s for producer errors, 5000s for service errors).
        error_id: u64,
        /// A symbolic code, when given.
        code: Option<String>,
    },
    /// Nothing to report; the connection is alive.
    Idle,
}

/// One acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentAck {
    /// The event.
    pub event: AckEvent,
    /// The fragment's timecode (absolute milliseconds with ABSOLUTE timecodes).
    pub fragment_timecode: Option<u64>,
    /// KVS's fragment number.
    pub fragment_number: Option<String>,
}

impl FragmentAck {
    /// The JSON line KVS sends for this ack.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::Map::new();
        let (kind, error) = match &self.event {
            AckEvent::Buffering => ("BUFFERING", None),
            AckEvent::Received => ("RECEIVED", None),
            AckEvent::Persisted => ("PERSISTED", None),
            AckEvent::Idle => ("IDLE", None),
            AckEvent::Error { error_id, code } => ("ERROR", Some((error_id, code))),
        };
        v.insert("EventType".into(), kind.into());
        if let Some(t) = self.fragment_timecode {
            v.insert("FragmentTimecode".into(), t.into());
        }
        if let Some(n) = &self.fragment_number {
            v.insert("FragmentNumber".into(), n.clone().into());
        }
        if let Some((id, code)) = error {
            v.insert("ErrorId".into(), (*id).into());
            if let Some(c) = code {
                v.insert("ErrorCode".into(), c.clone().into());
            }
        }
        serde_json::Value::Object(v).to_string()
    }
}

/// An ack that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// Bytes outside any JSON object.
    #[error("unexpected bytes in the ack stream: {0:?}")]
    Garbage(String),
    /// A JSON object that is not an ack.
    #[error("malformed ack: {0}")]
    Malformed(String),
    /// An object longer than any ack can be.
    #[error("ack longer than {0} bytes")]
    TooLong(usize),
}

/// Longest ack accepted; real ones are under 300 bytes.
const MAX_ACK: usize = 64 * 1024;

/// Incremental parser: feed it what arrives, take out whole acks.
#[derive(Debug, Default)]
pub struct AckParser {
    buf: Vec<u8>,
}

impl AckParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held waiting for the rest of an ack.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feed bytes; returns every ack (or error) completed by them, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<FragmentAck, AckError>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            // Skip separators; anything else before an object is garbage up to the next `{`.
            while pos < self.buf.len() && self.buf[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if pos >= self.buf.len() {
                break;
            }
            if self.buf[pos] != b'{' {
                let end = self.buf[pos..]
                    .iter()
                    .position(|b| *b == b'{')
                    .map_or(self.buf.len(), |i| pos + i);
                out.push(Err(AckError::Garbage(
                    String::from_utf8_lossy(&self.buf[pos..end])
                        .chars()
                        .take(80)
                        .collect(),
                )));
                pos = end;
                continue;
            }
            match object_end(&self.buf[pos..]) {
                Some(len) => {
                    out.push(parse_ack(&self.buf[pos..pos + len]));
                    pos += len;
                }
                None => {
                    if self.buf.len() - pos > MAX_ACK {
                        out.push(Err(AckError::TooLong(MAX_ACK)));
                        pos = self.buf.len();
                    }
                    break;
                }
            }
        }
        self.buf.drain(..pos);
        out
    }
}

/// Length of the JSON object at the start of `bytes`, if it is complete.
fn object_end(bytes: &[u8]) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_ack(bytes: &[u8]) -> Result<FragmentAck, AckError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| AckError::Malformed(e.to_string()))?;
    let kind = v
        .get("EventType")
        .and_then(|t| t.as_str())
        .ok_or_else(|| AckError::Malformed("no EventType".into()))?;
    let event = match kind {
        "BUFFERING" => AckEvent::Buffering,
        "RECEIVED" => AckEvent::Received,
        "PERSISTED" => AckEvent::Persisted,
        "IDLE" => AckEvent::Idle,
        "ERROR" => AckEvent::Error {
            error_id: v.get("ErrorId").and_then(|e| e.as_u64()).unwrap_or(0),
            code: v
                .get("ErrorCode")
                .and_then(|c| c.as_str())
                .map(str::to_owned),
        },
        other => return Err(AckError::Malformed(format!("unknown EventType `{other}`"))),
    };
    Ok(FragmentAck {
        event,
        fragment_timecode: v.get("FragmentTimecode").and_then(|t| t.as_u64()),
        fragment_number: v
            .get("FragmentNumber")
            .and_then(|n| n.as_str())
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn acks() -> Vec<FragmentAck> {
        vec![
            FragmentAck {
                event: AckEvent::Buffering,
                fragment_timecode: Some(1_700_000_000_000),
                fragment_number: Some("9134".into()),
            },
            FragmentAck {
                event: AckEvent::Received,
                fragment_timecode: Some(1_700_000_000_000),
                fragment_number: Some("9134".into()),
            },
            FragmentAck {
                event: AckEvent::Persisted,
                fragment_timecode: Some(1_700_000_000_000),
                fragment_number: Some("9134".into()),
            },
            FragmentAck {
                event: AckEvent::Idle,
                fragment_timecode: None,
                fragment_number: None,
            },
            FragmentAck {
                event: AckEvent::Error {
                    error_id: 4004,
                    code: Some("INVALID_\"MKV\"_{DATA}".into()),
                },
                fragment_timecode: Some(1_700_000_002_000),
                fragment_number: None,
            },
        ]
    }

    fn stream() -> Vec<u8> {
        acks()
            .iter()
            .map(|a| a.to_json() + "\n")
            .collect::<String>()
            .into_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0xac5),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_split_of_the_stream_gives_the_same_acks(cuts in proptest::collection::vec(0usize..400, 0..12)) {
            let bytes = stream();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut parser = AckParser::new();
            let mut got = Vec::new();
            let mut last = 0;
            for c in cuts.into_iter().chain(std::iter::once(bytes.len())) {
                got.extend(parser.push(&bytes[last..c]));
                last = c;
            }
            let got: Vec<FragmentAck> = got.into_iter().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(got, acks());
            prop_assert_eq!(parser.pending(), 0);
        }

        #[test]
        fn garbage_never_panics_and_gives_typed_errors(junk in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut parser = AckParser::new();
            for chunk in junk.chunks(37) {
                for r in parser.push(chunk) {
                    if let Err(e) = r {
                        prop_assert!(!e.to_string().is_empty());
                    }
                }
            }
            prop_assert!(parser.pending() <= junk.len());
        }
    }

    #[test]
    fn garbage_between_acks_is_reported_and_skipped() {
        let mut p = AckParser::new();
        let out = p.push(
            b"oops {\"EventType\":\"PERSISTED\",\"FragmentTimecode\":5}\n{\"EventType\":\"NOPE\"}",
        );
        assert!(matches!(out[0], Err(AckError::Garbage(_))));
        assert_eq!(out[1].as_ref().unwrap().event, AckEvent::Persisted);
        assert!(matches!(out[2], Err(AckError::Malformed(_))));
    }
}
