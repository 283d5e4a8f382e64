//! Helpers shared by the harness's integration tests.
#![allow(dead_code)]

use std::path::Path;

use aws_sdk_kinesisvideomedia::types::{StartSelector, StartSelectorType};
use telescope::credentials::CredentialSource;
use telescope::kvs::{CreateStreamOptions, DataApi, KvsConfig, KvsControl};

pub const REGION: &str = "us-east-1";

/// A tokio runtime for a test's SDK calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The AWS SDK's media client on `stream`'s GetMedia endpoint, as GetDataEndpoint names it;
/// the stream is created first when `create`.
pub async fn media_client(
    url: &str,
    stream: &str,
    key: &str,
    secret: &str,
    create: bool,
) -> aws_sdk_kinesisvideomedia::Client {
    let kvs = KvsConfig {
        region: REGION.into(),
        endpoint: Some(url.to_owned()),
        credentials: CredentialSource::Static {
            access_key_id: key.into(),
            secret_access_key: secret.into(),
            session_token: None,
        },
    };
    let control = KvsControl::new(&kvs).await.unwrap();
    if create {
        control
            .create(stream, &CreateStreamOptions::default())
            .await
            .unwrap();
    }
    let endpoint = control
        .data_endpoint(stream, DataApi::GetMedia)
        .await
        .unwrap();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(kvs.credentials.provider(REGION).await)
        .endpoint_url(endpoint)
        .load()
        .await;
    aws_sdk_kinesisvideomedia::Client::new(&shared)
}

/// GetMedia from the earliest fragment with the AWS SDK, written to `out`.
pub fn get_media(url: &str, stream: &str, out: &Path, key: &str, secret: &str) {
    runtime().block_on(async {
        let media = media_client(url, stream, key, secret, false).await;
        let got = media
            .get_media()
            .stream_name(stream)
            .start_selector(
                StartSelector::builder()
                    .start_selector_type(StartSelectorType::Earliest)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let bytes = got.payload.collect().await.unwrap().into_bytes();
        std::fs::write(out, &bytes).unwrap();
    });
}
