//! The control plane: the AWS SDK and Telescope's control code against `telescope mock-kvs`, and
//! the same control code against moto's server (and LocalStack where Docker answers) as
//! independent implementations.

use super::*;

#[test]
fn the_sdk_drives_every_control_plane_operation() {
    let (_guard, url) = start_mock(true);
    rt().block_on(async {
        let control = KvsControl::new(&config(&url, KEY, SECRET)).await.unwrap();
        let sdk = control.client().clone();

        // Typed errors from Telescope's control code.
        let missing = control.describe("lobby").await.unwrap_err();
        assert!(matches!(&missing, KvsError::StreamNotFound { stream, region } if stream == "lobby" && region == "us-west-2"));
        assert!(missing.to_string().contains("lobby") && missing.to_string().contains("us-west-2"));
        assert!(matches!(control.ensure_stream("lobby", None).await, Err(KvsError::StreamNotFound { .. })));

        // Create when asked, then everything the SDK can do with it.
        let described = control.ensure_stream("lobby", Some(&CreateStreamOptions::default())).await.unwrap();
        assert_eq!((described.status.as_str(), described.media_type.as_deref(), described.retention_hours), ("ACTIVE", Some("video/h264"), 24));
        assert!(matches!(control.create("lobby", &CreateStreamOptions::default()).await, Err(KvsError::AlreadyExists { .. })));
        let err = sdk.create_stream().stream_name("lobby").send().await.unwrap_err();
        assert_eq!(err.code(), Some("ResourceInUseException"));
        assert_eq!(control.data_endpoint("lobby", DataApi::PutMedia).await.unwrap(), url);
        assert_eq!(control.data_endpoint("lobby", DataApi::GetMedia).await.unwrap(), url);

        control.create("dock", &CreateStreamOptions { retention_hours: 0, media_type: "video/h264".into() }).await.unwrap();
        let listed = sdk.list_streams().send().await.unwrap();
        let names: Vec<_> = listed.stream_info_list().iter().filter_map(|s| s.stream_name()).collect();
        assert_eq!(names, vec!["dock", "lobby"]);
        let page = sdk.list_streams().max_results(1).send().await.unwrap();
        assert_eq!(page.stream_info_list().len(), 1);
        let next = sdk.list_streams().max_results(1).next_token(page.next_token().unwrap()).send().await.unwrap();
        assert_eq!(next.stream_info_list()[0].stream_name(), Some("lobby"));

        let version = sdk.describe_stream().stream_name("lobby").send().await.unwrap().stream_info().unwrap().version().unwrap().to_owned();
        sdk.update_data_retention()
            .stream_name("lobby")
            .current_version(&version)
            .operation(UpdateDataRetentionOperation::IncreaseDataRetention)
            .data_retention_change_in_hours(24)
            .send()
            .await
            .unwrap();
        assert_eq!(control.describe("lobby").await.unwrap().retention_hours, 48);
        let stale = sdk
            .update_data_retention()
            .stream_name("lobby")
            .current_version(&version)
            .operation(UpdateDataRetentionOperation::IncreaseDataRetention)
            .data_retention_change_in_hours(1)
            .send()
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Some("VersionMismatchException"));

        sdk.tag_stream().stream_name("lobby").tags("site", "north").send().await.unwrap();
        let tags = sdk.list_tags_for_stream().stream_name("lobby").send().await.unwrap();
        assert_eq!(tags.tags().and_then(|t| t.get("site")).map(String::as_str), Some("north"));

        let bad = sdk.create_stream().stream_name("no spaces allowed").send().await.unwrap_err();
        assert_eq!(bad.code(), Some("InvalidArgumentException"));
        let bad_api = sdk.get_data_endpoint().stream_name("lobby").api_name(ApiName::from("NOPE")).send().await.unwrap_err();
        assert_eq!(bad_api.code(), Some("InvalidArgumentException"));

        control.delete("dock").await.unwrap();
        assert!(matches!(control.describe("dock").await, Err(KvsError::StreamNotFound { .. })));
    });
}

#[test]
fn bad_signatures_and_unknown_keys_are_refused() {
    let (_guard, url) = start_mock(true);
    rt().block_on(async {
        for (key, secret) in [(KEY, "not-the-secret"), ("AKIDSOMEONEELSE", SECRET)] {
            let control = KvsControl::new(&config(&url, key, secret)).await.unwrap();
            let err = control.describe("lobby").await.unwrap_err();
            assert!(matches!(err, KvsError::NotAuthorized { .. }), "{err}");
            let raw = control.client().list_streams().send().await.unwrap_err();
            assert_eq!(raw.code(), Some("NotAuthorizedException"));
            assert!(!err.to_string().contains(secret));
        }
        let good = KvsControl::new(&config(&url, KEY, SECRET)).await.unwrap();
        assert!(good.client().list_streams().send().await.is_ok());
    });
}

#[test]
fn streams_persist_in_the_store_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let start = || testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &["--store", &store]);
    let (first, url) = start();
    rt().block_on(async {
        let control = KvsControl::new(&config(&url, KEY, SECRET)).await.unwrap();
        control
            .create("kept", &CreateStreamOptions::default())
            .await
            .unwrap();
    });
    drop(first);
    let (_second, url) = start();
    rt().block_on(async {
        let control = KvsControl::new(&config(&url, KEY, SECRET)).await.unwrap();
        assert_eq!(control.describe("kept").await.unwrap().status, "ACTIVE");
    });
}

#[test]
fn the_same_control_code_works_against_moto() {
    let Some(moto) = testkit::venv_tool("moto_server") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have moto_server (ci/setup installs it)"
        );
        eprintln!("skipped: moto_server not installed (run ci/setup)");
        return;
    };
    let port = testkit::free_port();
    let _guard = ChildGuard(
        Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100)); // polling a port, bounded by the deadline
    }
    let url = format!("http://127.0.0.1:{port}");
    rt().block_on(async {
        let control = KvsControl::new(&config(&url, "testing", "testing"))
            .await
            .unwrap();
        let missing = control.describe("moto-cam").await;
        assert!(
            matches!(missing, Err(KvsError::StreamNotFound { .. })),
            "{missing:?}"
        );
        let arn = control
            .create("moto-cam", &CreateStreamOptions::default())
            .await
            .unwrap();
        assert!(arn.contains("moto-cam"), "{arn}");
        let endpoint = control
            .data_endpoint("moto-cam", DataApi::PutMedia)
            .await
            .unwrap();
        assert!(endpoint.starts_with("http"), "{endpoint}");
        // moto answers DescribeStream and ListStreams with CreationTime as a zone-less ISO
        // string where KVS sends epoch seconds; the AWS SDK for Rust follows the KVS model and
        // rejects it, so the stream is deleted by the ARN CreateStream returned.
        control
            .client()
            .delete_stream()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap();
        let gone = control.describe("moto-cam").await;
        assert!(
            matches!(gone, Err(KvsError::StreamNotFound { .. })),
            "{gone:?}"
        );
    });
}

#[test]
fn localstack_runs_where_docker_answers() {
    let docker = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match docker {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!(
                "skipped: no Docker engine answers here, so the LocalStack container cannot run"
            );
            return;
        }
    }
    let name = format!("telescope-localstack-{}", std::process::id());
    let started = Command::new("docker")
        .args([
            "run",
            "-d",
            "--rm",
            "--name",
            &name,
            "-p",
            "127.0.0.1::4566",
            "localstack/localstack",
        ])
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _stop = Stop(name.clone());
    let port = Command::new("docker")
        .args(["port", &name, "4566/tcp"])
        .output()
        .unwrap();
    let mapped = String::from_utf8_lossy(&port.stdout)
        .trim()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let url = format!("http://127.0.0.1:{mapped}");
    rt().block_on(async {
        let control = KvsControl::new(&config(&url, "test", "test"))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match control
                .ensure_stream("ls-cam", Some(&CreateStreamOptions::default()))
                .await
            {
                Ok(d) => {
                    assert_eq!(d.status, "ACTIVE");
                    break;
                }
                Err(KvsError::Transport { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("LocalStack: {e}"),
            }
        }
    });
}
