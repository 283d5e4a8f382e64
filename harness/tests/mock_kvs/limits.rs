//! Hostile input and refusals: requests that change nothing, the admin endpoint's credentials,
//! and floods over raw sockets that neither exhaust the server nor shut out DescribeStream.

use super::*;

#[test]
fn refused_requests_change_nothing_and_wrong_types_are_serialization_errors() {
    let (_mock, url) = testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &[]);
    create(&url, "tags");
    let fifty: serde_json::Map<String, serde_json::Value> =
        (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
    let tag = |tags: serde_json::Value| {
        post_json(
            &url,
            "tagStream",
            &serde_json::json!({"StreamName": "tags", "Tags": tags}).to_string(),
        )
    };
    assert_eq!(tag(fifty.into()).0, 200);
    let (status, body) = tag(serde_json::json!({"one-too-many": "v", "k0": "changed"}));
    assert_eq!(status, 400, "{body}");
    let (_, listed) = post_json(&url, "listTagsForStream", r#"{"StreamName":"tags"}"#);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let listed = listed["Tags"].as_object().unwrap();
    assert_eq!(
        (listed.len(), listed["k0"].as_str()),
        (50, Some("v")),
        "a refused TagStream applies nothing"
    );

    for (retention, kind) in [
        (r#""24""#, "SerializationException"),
        ("1e18", "SerializationException"),
        ("2.5", "SerializationException"),
        ("87601", "InvalidArgumentException"),
        ("-1", "InvalidArgumentException"),
    ] {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-i",
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
            ])
            .arg(format!(
                r#"{{"StreamName":"r{}","DataRetentionInHours":{retention}}}"#,
                retention.len()
            ))
            .arg(format!("{url}/createStream"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(text.starts_with("http/1.1 400"), "{retention}: {text}");
        assert!(
            text.contains(&format!("x-amzn-errortype: {}", kind.to_lowercase())),
            "{retention}: {text}"
        );
        assert!(text.contains("x-amzn-requestid: "), "{text}");
    }
    assert_eq!(
        post_json(
            &url,
            "createStream",
            r#"{"StreamName":"ten-years","DataRetentionInHours":87600}"#
        )
        .0,
        200
    );

    // A producer start time that is no time is refused, not wrapped into one.
    let mut body = track();
    body.extend(fragment(0, &[0], true));
    for start in ["1e300", "-5", "inf", "nan"] {
        let (status, acks) = put_media(&url, "tags", &body, Some(start));
        assert_eq!(status, 400, "{start}: {acks:?}");
        assert!(events(&acks).is_empty(), "{start}: {acks:?}");
    }
}

#[test]
fn the_admin_endpoint_takes_the_same_credentials_as_the_apis() {
    let (_mock, url) = start_mock(true);
    let faults = format!("{url}/_mock/faults");
    let body = r#"{"faults":["reset-after:2"]}"#;
    let unsigned = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        &faults,
    ]);
    assert_eq!(unsigned.0, 401, "{unsigned:?}");
    let sigv4 = "aws:amz:us-east-1:kinesisvideo";
    let wrong = curl(&[
        "--aws-sigv4",
        sigv4,
        "--user",
        &format!("{KEY}:nope"),
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        &faults,
    ]);
    assert_eq!(wrong.0, 401, "{wrong:?}");
    let signed = curl(&[
        "--aws-sigv4",
        sigv4,
        "--user",
        &format!("{KEY}:{SECRET}"),
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        &faults,
    ]);
    assert_eq!(signed.0, 200, "{signed:?}");
    assert!(signed.1.contains("ResetAfterFragments"), "{signed:?}");
}

#[test]
fn floods_neither_exhaust_the_server_nor_shut_out_describe_stream() {
    use std::io::Write;
    // 256 descriptors, as in the report that found the accept loop spinning on EMFILE.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 256 && exec \"$0\" mock-kvs --listen 127.0.0.1:0 --request-timeout 1s --put-media-idle 1s"])
        .arg(env!("CARGO_BIN_EXE_telescope"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let guard = ChildGuard(child);
    let pid = guard.0.id();
    let url = line
        .trim()
        .strip_prefix("mock-kvs listening on ")
        .unwrap()
        .to_owned();
    let addr = url.strip_prefix("http://").unwrap().to_owned();
    create(&url, "flood");
    let base = rss_mib(pid);
    let mut figures = vec![format!("idle: {base} MiB")];

    // 1. 300 connections that send nothing, more than the descriptors allow.
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let took = describe_within(&addr, Duration::from_secs(1));
    figures.push(format!(
        "300 idle connections: DescribeStream {took:?}, {} MiB",
        rss_mib(pid)
    ));
    drop(idle);

    // 2. 200 connections sending their headers and stopping: each is closed.
    let mut partial: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"POST /describeStream HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let took = describe_within(&addr, Duration::from_secs(1));
    figures.push(format!(
        "200 header-only connections: DescribeStream {took:?}, {} MiB",
        rss_mib(pid)
    ));
    assert!(
        partial
            .iter_mut()
            .all(|s| closed_within(s, Duration::from_secs(10))),
        "header-only connections are closed"
    );

    // 3. A PutMedia that sends its body a byte at a time, never completing a fragment.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(put_media_head(&addr, "flood", 1 << 20).as_bytes())
        .unwrap();
    let mut body = track();
    body.extend(fragment(0, &[0], true));
    let trickle = &body[..body.len() - 4];
    let cut = {
        let mut s = slow.try_clone().unwrap();
        let trickle = trickle.to_vec();
        std::thread::spawn(move || {
            for b in trickle {
                if s.write_all(&[b]).is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20)); // the flood's pace, not synchronisation
            }
            false
        })
    };
    let took = describe_within(&addr, Duration::from_secs(1));
    assert!(
        closed_within(&mut slow, Duration::from_secs(15)),
        "a trickling PutMedia is closed"
    );
    let _ = cut.join();
    figures.push(format!(
        "byte-a-time PutMedia: DescribeStream {took:?}, {} MiB",
        rss_mib(pid)
    ));

    // 4. Two PutMedia connections, each a cluster of unknown size growing past 50 MB.
    let mut peak = 0;
    let mut answers = Vec::new();
    for _ in 0..2 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(put_media_head(&addr, "flood", 200 << 20).as_bytes())
            .unwrap();
        s.write_all(&track()).unwrap();
        let mut open = vec![
            0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xE7, 0x81,
            0x00,
        ];
        let mut block = vec![0xA3, 0x10, 0x10, 0x00, 0x00, 0x81, 0, 0, 0x80];
        block.resize(5 + 0x10_0000, 7);
        s.write_all(&open).unwrap();
        open.clear();
        for _ in 0..60 {
            if s.write_all(&block).is_err() {
                break;
            }
            peak = peak.max(rss_mib(pid));
        }
        let took = describe_within(&addr, Duration::from_secs(1));
        let mut acks = String::new();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = std::io::Read::read_to_string(&mut s, &mut acks);
        answers.push((took, acks));
    }
    for (_, acks) in &answers {
        assert!(
            acks.contains(r#""ErrorId":4001"#) && acks.contains("MAX_FRAGMENT_SIZE_REACHED"),
            "{acks}"
        );
    }
    figures.push(format!(
        "two 60 MiB unknown-size clusters: DescribeStream {:?}, peak {peak} MiB, after {} MiB",
        answers[0].0,
        rss_mib(pid)
    ));
    eprintln!(
        "mock-kvs under floods (ulimit -n 256):\n  {}",
        figures.join("\n  ")
    );
    assert!(peak < 400, "peak {peak} MiB");
    let s = stats(&url);
    assert!(s["timed_out"].as_u64().unwrap() >= 1, "{s}");
}
