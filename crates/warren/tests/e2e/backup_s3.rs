//! Reaching the S3 backup target of `backup.rs` directly, to damage objects the way a faulty
//! bucket would (used only when `tests/suites/backup` runs the backup tests against SeaweedFS).

use aws_sdk_s3::primitives::ByteStream;

fn flag<'a>(flags: &'a [String], name: &str) -> &'a str {
    flags
        .iter()
        .find_map(|f| f.strip_prefix(&format!("--{name}=")))
        .unwrap_or_else(|| panic!("no --{name}"))
}

fn client(flags: &[String]) -> (aws_sdk_s3::Client, String, String) {
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
    (client, bucket.to_string(), prefix.to_string())
}

/// Keys of the backup target under `under` (relative to the target's prefix), sorted.
pub async fn list(flags: &[String], under: &str) -> Vec<String> {
    let (client, bucket, prefix) = client(flags);
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(format!("{prefix}/{under}"))
            .set_continuation_token(token.take())
            .send()
            .await
            .unwrap();
        for object in page.contents() {
            if let Some(key) = object
                .key()
                .and_then(|k| k.strip_prefix(&format!("{prefix}/")))
            {
                keys.push(key.to_string());
            }
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
            _ => break,
        }
    }
    keys.sort();
    keys
}

/// Object `key` of the backup target.
pub async fn read(flags: &[String], key: &str) -> Vec<u8> {
    let (client, bucket, prefix) = client(flags);
    let object = client
        .get_object()
        .bucket(&bucket)
        .key(format!("{prefix}/{key}"))
        .send()
        .await
        .unwrap();
    object.body.collect().await.unwrap().to_vec()
}

/// Writes object `key` of the backup target.
pub async fn write(flags: &[String], key: &str, bytes: Vec<u8>) {
    let (client, bucket, prefix) = client(flags);
    client
        .put_object()
        .bucket(&bucket)
        .key(format!("{prefix}/{key}"))
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap();
}

/// Deletes object `key` of the backup target.
pub async fn delete(flags: &[String], key: &str) {
    let (client, bucket, prefix) = client(flags);
    client
        .delete_object()
        .bucket(&bucket)
        .key(format!("{prefix}/{key}"))
        .send()
        .await
        .unwrap();
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
