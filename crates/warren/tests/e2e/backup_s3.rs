//! Reaching the S3 backup target of `backup.rs` directly, to damage objects the way a faulty
//! bucket would (used only when `tests/suites/backup` runs the backup tests against SeaweedFS).

use aws_sdk_s3::primitives::ByteStream;

fn flag<'a>(flags: &'a [String], name: &str) -> &'a str {
    flags
        .iter()
        .find_map(|f| f.strip_prefix(&format!("--{name}=")))
        .unwrap_or_else(|| panic!("no --{name}"))
}

/// Reads object `key` of the backup target, changes it with `how` and writes it back.
pub async fn rewrite(flags: &[String], key: &str, how: fn(&mut Vec<u8>)) {
    let url = flag(flags, "backup-url").strip_prefix("s3://").unwrap();
    let (bucket, prefix) = url.split_once('/').unwrap();
    let client = warren_files::s3::client(&warren_files::S3Config {
        enabled: true,
        bucket: bucket.to_string(),
        region: "us-east-1".into(),
        endpoint: flag(flags, "backup-s3-endpoint").to_string(),
        access_key: flag(flags, "backup-s3-access-key").to_string(),
        secret: flag(flags, "backup-s3-secret").to_string(),
        force_path_style: true,
    });
    let full = format!("{prefix}/{key}");
    let object = client
        .get_object()
        .bucket(bucket)
        .key(&full)
        .send()
        .await
        .unwrap();
    let mut bytes = object.body.collect().await.unwrap().to_vec();
    how(&mut bytes);
    client
        .put_object()
        .bucket(bucket)
        .key(&full)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap();
}
