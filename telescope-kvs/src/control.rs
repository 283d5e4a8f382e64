//! The KVS control plane with the AWS SDK: check that a stream exists and is ACTIVE, create it
//! when asked, and find the data endpoints for PutMedia and GetMedia.
//!
//! The same code talks to AWS, to LocalStack, to moto and to Telescope's own mock-kvs: only the
//! endpoint and the credentials change.

use std::time::Duration;

use aws_sdk_kinesisvideo::config::http::HttpResponse;
use aws_sdk_kinesisvideo::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesisvideo::types::{ApiName, Status as StreamStatus};
use aws_sdk_kinesisvideo::Client;

use crate::credentials::CredentialSource;

/// How to reach KVS.
#[derive(Debug, Clone)]
pub struct KvsConfig {
    /// AWS region, e.g. `us-west-2`.
    pub region: String,
    /// Endpoint override (mock-kvs, LocalStack, moto). When `None`, `AWS_ENDPOINT_URL` (or
    /// `AWS_ENDPOINT_URL_KINESIS_VIDEO`) applies if set, else the real AWS endpoint.
    pub endpoint: Option<String>,
    /// Where credentials come from.
    pub credentials: CredentialSource,
}

/// Options for CreateStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateStreamOptions {
    /// Hours KVS keeps the media (0: not kept, only live; default 24).
    pub retention_hours: i32,
    /// Media type (default `video/h264`).
    pub media_type: String,
}

impl Default for CreateStreamOptions {
    fn default() -> Self {
        CreateStreamOptions {
            retention_hours: 24,
            media_type: "video/h264".into(),
        }
    }
}

/// Which data-plane API an endpoint is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataApi {
    /// Producer side.
    PutMedia,
    /// Consumer side.
    GetMedia,
}

/// What DescribeStream says about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Status (`ACTIVE`, `CREATING`, ...).
    pub status: String,
    /// Media type, if set.
    pub media_type: Option<String>,
    /// Retention in hours.
    pub retention_hours: i32,
}

/// Control-plane failures, each naming the stream and region concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvsError {
    /// The stream does not exist.
    #[error(
        "KVS stream `{stream}` does not exist in {region} (create it, or let the sink create it)"
    )]
    StreamNotFound { stream: String, region: String },
    /// The stream exists but cannot take media yet (or any more).
    #[error("KVS stream `{stream}` in {region} is {status}, not ACTIVE")]
    NotActive {
        stream: String,
        region: String,
        status: String,
    },
    /// The stream exists already (CreateStream).
    #[error("KVS stream `{stream}` already exists in {region}")]
    AlreadyExists { stream: String, region: String },
    /// The credentials were refused.
    #[error("KVS refused the credentials for `{stream}` in {region}: {message} (needs kinesisvideo:DescribeStream, CreateStream, GetDataEndpoint, PutMedia)")]
    NotAuthorized {
        stream: String,
        region: String,
        message: String,
    },
    /// Throttled even after the SDK's retries.
    #[error("KVS throttled requests for `{stream}` in {region}: {message}")]
    Throttled {
        stream: String,
        region: String,
        message: String,
    },
    /// Any other service error.
    #[error("KVS {operation} for `{stream}` in {region} failed: {code}: {message}")]
    Service {
        operation: &'static str,
        stream: String,
        region: String,
        code: String,
        message: String,
    },
    /// The endpoint could not be reached.
    #[error("cannot reach KVS in {region} for {operation}: {message}")]
    Transport {
        operation: &'static str,
        region: String,
        message: String,
    },
    /// The stream did not become ACTIVE in time after CreateStream.
    #[error("KVS stream `{stream}` in {region} did not become ACTIVE within {waited:?}")]
    CreateTimeout {
        stream: String,
        region: String,
        waited: Duration,
    },
}

/// A control-plane client for one region.
#[derive(Debug, Clone)]
pub struct KvsControl {
    client: Client,
    region: String,
    throttle: ThrottleRetry,
}

/// Retries of throttled calls. KVS throttles with `ClientLimitExceededException`, which the
/// SDK's standard retry policy does not treat as throttling, so Telescope retries it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRetry {
    /// Retries after the first throttled attempt (default 4).
    pub retries: u32,
    /// Wait before the first retry (default 200 ms), doubled each time.
    pub backoff: Duration,
}

impl Default for ThrottleRetry {
    fn default() -> Self {
        ThrottleRetry {
            retries: 4,
            backoff: Duration::from_millis(200),
        }
    }
}

impl KvsControl {
    /// Build a client from the configuration (endpoint override, credentials, region). An
    /// endpoint override that is not an http(s) URL is an error, not a silent fallback to AWS.
    pub async fn new(config: &KvsConfig) -> Result<Self, KvsError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()))
            .credentials_provider(config.credentials.provider(&config.region).await);
        if let Some(endpoint) = &config.endpoint {
            let valid = endpoint.parse::<http::Uri>().ok().is_some_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !valid {
                return Err(KvsError::Transport {
                    operation: "configuration",
                    region: config.region.clone(),
                    message: format!("endpoint `{endpoint}` is not an http:// or https:// URL"),
                });
            }
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        Ok(KvsControl {
            client: Client::new(&shared),
            region: config.region.clone(),
            throttle: ThrottleRetry::default(),
        })
    }

    /// Wrap an existing SDK client (for tests with `aws-smithy-mocks`).
    pub fn from_client(client: Client, region: impl Into<String>) -> Self {
        KvsControl {
            client,
            region: region.into(),
            throttle: ThrottleRetry::default(),
        }
    }

    /// Change how throttled calls are retried.
    #[must_use]
    pub fn with_throttle_retry(mut self, throttle: ThrottleRetry) -> Self {
        self.throttle = throttle;
        self
    }

    /// Run `op`, retrying it with backoff while KVS throttles.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, KvsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, KvsError>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(KvsError::Throttled { .. }) if attempt < self.throttle.retries => {
                    let wait = crate::clock::Backoff::new(self.throttle.backoff, Duration::MAX)
                        .delay(attempt);
                    tracing::info!(attempt = attempt + 1, ?wait, "KVS throttled; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    fn map<E>(
        &self,
        operation: &'static str,
        stream: &str,
        err: SdkError<E, HttpResponse>,
    ) -> KvsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (stream, region) = (stream.to_owned(), self.region.clone());
        match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                // Modeled errors display as `Code: message`; use that when no metadata came along.
                // Some implementations (moto) send the error type in the header with a non-JSON
                // body, which leaves the parsed metadata empty.
                let header = service
                    .raw()
                    .headers()
                    .get("x-amzn-errortype")
                    .map(|v| v.split(':').next().unwrap_or(v).trim().to_owned());
                let code = e.code().map(str::to_owned).or(header).unwrap_or_else(|| {
                    let shown = e.to_string();
                    shown
                        .split(':')
                        .next()
                        .map(str::trim)
                        .filter(|c| !c.is_empty() && !c.contains(' '))
                        .unwrap_or("Unknown")
                        .to_owned()
                });
                let message = e.message().unwrap_or_default().to_owned();
                match code.as_str() {
                    "ResourceNotFoundException" => KvsError::StreamNotFound { stream, region },
                    "ResourceInUseException" if operation == "CreateStream" => {
                        KvsError::AlreadyExists { stream, region }
                    }
                    "NotAuthorizedException"
                    | "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException" => KvsError::NotAuthorized {
                        stream,
                        region,
                        message: format!("{code}: {message}"),
                    },
                    "ClientLimitExceededException"
                    | "ThrottlingException"
                    | "LimitExceededException" => KvsError::Throttled {
                        stream,
                        region,
                        message: format!("{code}: {message}"),
                    },
                    _ => KvsError::Service {
                        operation,
                        stream,
                        region,
                        code,
                        message,
                    },
                }
            }
            other => KvsError::Transport {
                operation,
                region,
                message: crate::credentials::redact_chain(other),
            },
        }
    }

    /// DescribeStream; a missing stream is [`KvsError::StreamNotFound`].
    pub async fn describe(&self, stream: &str) -> Result<StreamDescription, KvsError> {
        let out = self
            .retrying(|| async {
                self.client
                    .describe_stream()
                    .stream_name(stream)
                    .send()
                    .await
                    .map_err(|e| self.map("DescribeStream", stream, e))
            })
            .await?;
        let info = out.stream_info.ok_or_else(|| KvsError::Service {
            operation: "DescribeStream",
            stream: stream.to_owned(),
            region: self.region.clone(),
            code: "EmptyResponse".into(),
            message: "no StreamInfo in the response".into(),
        })?;
        Ok(StreamDescription {
            name: info.stream_name.unwrap_or_else(|| stream.to_owned()),
            arn: info.stream_arn.unwrap_or_default(),
            status: info
                .status
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| "UNKNOWN".into()),
            media_type: info.media_type,
            retention_hours: info.data_retention_in_hours.unwrap_or(0),
        })
    }

    /// CreateStream; returns the new stream's ARN.
    pub async fn create(
        &self,
        stream: &str,
        options: &CreateStreamOptions,
    ) -> Result<String, KvsError> {
        let out = self
            .retrying(|| async {
                self.client
                    .create_stream()
                    .stream_name(stream)
                    .media_type(&options.media_type)
                    .data_retention_in_hours(options.retention_hours)
                    .send()
                    .await
                    .map_err(|e| self.map("CreateStream", stream, e))
            })
            .await?;
        tracing::info!(stream, region = %self.region, "KVS stream created");
        Ok(out.stream_arn.unwrap_or_default())
    }

    /// DeleteStream by name (looked up to its ARN first).
    pub async fn delete(&self, stream: &str) -> Result<(), KvsError> {
        let arn = self.describe(stream).await?.arn;
        self.client
            .delete_stream()
            .stream_arn(arn)
            .send()
            .await
            .map_err(|e| self.map("DeleteStream", stream, e))?;
        Ok(())
    }

    /// Make sure the stream exists and is ACTIVE: describe it, and create it first when it is
    /// missing and `create` is given (then wait, up to 60 s, for it to become ACTIVE).
    pub async fn ensure_stream(
        &self,
        stream: &str,
        create: Option<&CreateStreamOptions>,
    ) -> Result<StreamDescription, KvsError> {
        let described = match self.describe(stream).await {
            Err(KvsError::StreamNotFound { .. }) if create.is_some() => {
                let options = create.cloned().unwrap_or_default();
                match self.create(stream, &options).await {
                    Ok(_) | Err(KvsError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                let mut waited = Duration::ZERO;
                let step = Duration::from_millis(250);
                loop {
                    let d = self.describe(stream).await?;
                    if d.status == StreamStatus::Active.as_str()
                        || waited >= Duration::from_secs(60)
                    {
                        break d;
                    }
                    tokio::time::sleep(step).await;
                    waited += step;
                }
            }
            other => other?,
        };
        if described.status != StreamStatus::Active.as_str() {
            return Err(KvsError::NotActive {
                stream: stream.to_owned(),
                region: self.region.clone(),
                status: described.status,
            });
        }
        Ok(described)
    }

    /// GetDataEndpoint for PutMedia or GetMedia.
    pub async fn data_endpoint(&self, stream: &str, api: DataApi) -> Result<String, KvsError> {
        let api_name = match api {
            DataApi::PutMedia => ApiName::PutMedia,
            DataApi::GetMedia => ApiName::GetMedia,
        };
        let out = self
            .retrying(|| async {
                self.client
                    .get_data_endpoint()
                    .stream_name(stream)
                    .api_name(api_name.clone())
                    .send()
                    .await
                    .map_err(|e| self.map("GetDataEndpoint", stream, e))
            })
            .await?;
        out.data_endpoint.ok_or_else(|| KvsError::Service {
            operation: "GetDataEndpoint",
            stream: stream.to_owned(),
            region: self.region.clone(),
            code: "EmptyResponse".into(),
            message: "no DataEndpoint in the response".into(),
        })
    }
}
