//! SDK-level behaviour of the control code, with `aws-smithy-mocks` standing in for KVS.

use std::time::Duration;

use aws_sdk_kinesisvideo::operation::describe_stream::{DescribeStreamError, DescribeStreamOutput};
use aws_sdk_kinesisvideo::operation::get_data_endpoint::GetDataEndpointOutput;
use aws_sdk_kinesisvideo::types::error::{
    ClientLimitExceededException, NotAuthorizedException, ResourceNotFoundException,
};
use aws_sdk_kinesisvideo::types::{Status as StreamStatus, StreamInfo};
use aws_sdk_kinesisvideo::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use telescope::kvs::{DataApi, KvsControl, KvsError, ThrottleRetry};

fn control(client: Client) -> KvsControl {
    KvsControl::from_client(client, "eu-west-1").with_throttle_retry(ThrottleRetry {
        retries: 3,
        backoff: Duration::from_millis(1),
    })
}

fn active(name: &str, status: StreamStatus) -> DescribeStreamOutput {
    DescribeStreamOutput::builder()
        .stream_info(
            StreamInfo::builder()
                .stream_name(name)
                .stream_arn(format!("arn:{name}"))
                .status(status)
                .data_retention_in_hours(2)
                .build(),
        )
        .build()
}

#[tokio::test]
async fn throttling_is_retried_until_it_passes() {
    let rule = mock!(Client::describe_stream)
        .sequence()
        .error(|| {
            DescribeStreamError::ClientLimitExceededException(
                ClientLimitExceededException::builder()
                    .message("slow down")
                    .build(),
            )
        })
        .times(2)
        .output(|| active("cam", StreamStatus::Active))
        .build();
    let client = mock_client!(aws_sdk_kinesisvideo, RuleMode::Sequential, [&rule]);
    let d = control(client).ensure_stream("cam", None).await.unwrap();
    assert_eq!(
        (d.name.as_str(), d.status.as_str(), d.retention_hours),
        ("cam", "ACTIVE", 2)
    );
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn throttling_that_persists_is_a_typed_error() {
    let rule = mock!(Client::describe_stream).then_error(|| {
        DescribeStreamError::ClientLimitExceededException(
            ClientLimitExceededException::builder()
                .message("slow down")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_kinesisvideo, RuleMode::MatchAny, [&rule]);
    let err = control(client).describe("cam").await.unwrap_err();
    assert!(
        matches!(&err, KvsError::Throttled { stream, region, .. } if stream == "cam" && region == "eu-west-1"),
        "{err}"
    );
    assert_eq!(rule.num_calls(), 4, "one attempt and three retries");
}

#[tokio::test]
async fn missing_inactive_and_unauthorized_streams_map_to_typed_errors() {
    let not_found = mock!(Client::describe_stream)
        .match_requests(|r| r.stream_name() == Some("gone"))
        .then_error(|| {
            DescribeStreamError::ResourceNotFoundException(
                ResourceNotFoundException::builder().message("nope").build(),
            )
        });
    let creating = mock!(Client::describe_stream)
        .match_requests(|r| r.stream_name() == Some("new"))
        .then_output(|| active("new", StreamStatus::Creating));
    let denied = mock!(Client::describe_stream)
        .match_requests(|r| r.stream_name() == Some("secret"))
        .then_error(|| {
            DescribeStreamError::NotAuthorizedException(
                NotAuthorizedException::builder().message("no").build(),
            )
        });
    let endpoint = mock!(Client::get_data_endpoint).then_output(|| {
        GetDataEndpointOutput::builder()
            .data_endpoint("https://b-1234.kinesisvideo.eu-west-1.amazonaws.com")
            .build()
    });
    let client = mock_client!(
        aws_sdk_kinesisvideo,
        RuleMode::MatchAny,
        [&not_found, &creating, &denied, &endpoint]
    );
    let c = control(client);
    let err = c.describe("gone").await.unwrap_err();
    assert!(
        matches!(&err, KvsError::StreamNotFound { stream, region } if stream == "gone" && region == "eu-west-1")
    );
    assert!(err.to_string().contains("gone") && err.to_string().contains("eu-west-1"));
    assert!(
        matches!(c.ensure_stream("new", None).await, Err(KvsError::NotActive { status, .. }) if status == "CREATING")
    );
    let denied_err = c.describe("secret").await.unwrap_err();
    assert!(matches!(denied_err, KvsError::NotAuthorized { .. }));
    assert!(
        denied_err
            .to_string()
            .contains("kinesisvideo:DescribeStream"),
        "names the IAM actions: {denied_err}"
    );
    assert_eq!(
        c.data_endpoint("cam", DataApi::PutMedia).await.unwrap(),
        "https://b-1234.kinesisvideo.eu-west-1.amazonaws.com"
    );
}
