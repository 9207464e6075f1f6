//! Large-file scenarios in a `photos` collection both targets get identically: thumbnails of a
//! 4-megapixel JPEG (made here with the `image` crate) generated on first request, the same
//! thumbnails once cached, and 10 MiB uploads.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use crate::load::{self, Bounds, OpError, Stats, mix};
use crate::seed::Dataset;
use crate::target::{Target, json_ok, send_ok};

/// The thumb sizes of the `photos` file field: each is a separate first-time thumbnail.
pub const THUMBS: [&str; 8] = [
    "100x100", "200x200", "300x0", "0x300", "150x150", "50x50", "400x300", "120x90",
];
/// 2304 × 1728 = 3.98 megapixels (4:3).
const WIDTH: u32 = 2304;
const HEIGHT: u32 = 1728;
/// Size of one large upload.
pub const BIG_UPLOAD: usize = 10 * 1024 * 1024;
/// Largest file the `photos` field takes.
const MAX_FILE: u64 = 20 * 1024 * 1024;
/// Photos uploaded fresh for each uncached-thumbnail run (× 8 sizes = the run's op budget).
const FRESH_PHOTOS: usize = 32;
/// Photos uploaded fresh for the one-client first-thumb run.
const FIRST_PHOTOS: usize = 6;
/// Photos whose thumbs are warmed before the cached-thumb run.
const CACHED_PHOTOS: usize = 4;
/// Large uploads per run at most (each writes 10 MiB to the target's disk).
const MAX_BIG_UPLOADS: u64 = 120;
const BOUNDARY: &str = "----warren-bench-photos-boundary-Q3xk9";

/// The 4-megapixel JPEG, made once: gradients with fine texture so it compresses like a photo
/// rather than like a flat image.
pub fn jpeg_4mp() -> Arc<[u8]> {
    static JPEG: OnceLock<Arc<[u8]>> = OnceLock::new();
    JPEG.get_or_init(|| {
        let pixels = image::RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
            let noise = (mix(u64::from(x), u64::from(y)) & 0x1f) as u32;
            image::Rgb([
                ((x * 200 / WIDTH) + noise) as u8,
                ((y * 200 / HEIGHT) + noise) as u8,
                (((x ^ y) & 0x3f) + 96 + noise) as u8,
            ])
        });
        let mut out = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
        pixels
            .write_with_encoder(encoder)
            .expect("encoding an in-memory RGB image as JPEG cannot fail");
        eprintln!("photo: {WIDTH}x{HEIGHT} JPEG, {} bytes", out.len());
        out.into()
    })
    .clone()
}

/// Incompressible bytes for the large uploads.
fn big_blob() -> Arc<[u8]> {
    static BLOB: OnceLock<Arc<[u8]>> = OnceLock::new();
    BLOB.get_or_init(|| {
        (0..BIG_UPLOAD / 8)
            .flat_map(|k| mix(k as u64, 0x5eed).to_le_bytes())
            .collect()
    })
    .clone()
}

/// Creates the `photos` collection when it is missing.
async fn ensure_collection(target: &Target) -> Result<(), String> {
    let su = target
        .superuser_token()
        .await
        .map_err(|e| format!("superuser login: {e}"))?;
    let photos = json!({
        "name": "photos",
        "type": "base",
        "listRule": "",
        "viewRule": "",
        "createRule": "@request.auth.id != ''",
        "updateRule": null,
        "deleteRule": null,
        "fields": [
            { "name": "title", "type": "text" },
            { "name": "file", "type": "file", "maxSelect": 1, "maxSize": MAX_FILE, "thumbs": THUMBS },
        ],
    });
    crate::seed::create_collection(target, &su, photos)
        .await
        .map_err(|e| e.message)
}

fn multipart(title: &str, filename: &str, content_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes.len() + 512);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{title}\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Uploads one file into `photos`; returns `(record id, stored file name)`.
async fn upload(
    target: &Target,
    token: &str,
    title: &str,
    filename: &str,
    content_type: &str,
    bytes: &[u8],
) -> Result<(String, String), OpError> {
    let req = target
        .client
        .post(target.url("/api/collections/photos/records"))
        .header("Authorization", token)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(title, filename, content_type, bytes));
    let json = json_ok(req.send().await?).await?;
    let field = |key: &str| json.get(key).and_then(Value::as_str).unwrap_or_default();
    if field("id").is_empty() || field("file").is_empty() {
        return Err(OpError::other("upload response lacks id or file"));
    }
    Ok((field("id").to_string(), field("file").to_string()))
}

async fn upload_photos(
    target: &Target,
    data: &Dataset,
    n: usize,
) -> Result<Arc<Vec<(String, String)>>, String> {
    ensure_collection(target).await?;
    let jpeg = jpeg_4mp();
    let mut photos = Vec::with_capacity(n);
    for k in 0..n {
        let (_, token) = data.worker_user(k);
        let photo = upload(target, token, "photo", "photo.jpg", "image/jpeg", &jpeg)
            .await
            .map_err(|e| format!("uploading 4 MP photos: {e}"))?;
        photos.push(photo);
    }
    Ok(Arc::new(photos))
}

/// Fetches one thumb and checks it is an image smaller than the original.
async fn thumb(target: &Target, id: &str, file: &str, size: &str) -> Result<(), OpError> {
    let req = target
        .client
        .get(target.url(&format!("/api/files/photos/{id}/{file}")))
        .query(&[("thumb", size)]);
    let resp = send_ok(req).await?;
    let is_image = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("image/"));
    let bytes = resp.bytes().await?;
    if !is_image || bytes.len() < 8 || bytes.len() >= jpeg_4mp().len() {
        return Err(OpError::other(format!(
            "thumb {size} is not a small image ({} bytes)",
            bytes.len()
        )));
    }
    Ok(())
}

/// Runs a photos scenario once. `Err` means the target does not support it.
pub async fn run(
    name: &str,
    target: &Target,
    data: &Dataset,
    bounds: Bounds,
) -> Result<Stats, String> {
    match name {
        "files-thumb-4mp" | "files-thumb-4mp-first" => {
            let n = if name == "files-thumb-4mp" {
                FRESH_PHOTOS
            } else {
                FIRST_PHOTOS
            };
            // Fresh photos each run, so every operation is a thumbnail never made before.
            let photos = upload_photos(target, data, n).await?;
            let bounds = Bounds {
                max_ops: bounds.max_ops.min((n * THUMBS.len()) as u64),
                ..bounds
            };
            let t = target.clone();
            Ok(load::run(bounds, "thumb/s", move |_, seq| {
                let (t, photos) = (t.clone(), Arc::clone(&photos));
                async move {
                    let seq = seq as usize;
                    let (id, file) = &photos[seq % photos.len()];
                    let size = THUMBS[seq / photos.len() % THUMBS.len()];
                    thumb(&t, id, file, size).await
                }
            })
            .await)
        }
        "files-thumb-4mp-cached" => {
            let photos = upload_photos(target, data, CACHED_PHOTOS).await?;
            for (id, file) in photos.iter() {
                for size in THUMBS {
                    thumb(target, id, file, size)
                        .await
                        .map_err(|e| format!("warming thumbs: {e}"))?;
                }
            }
            let t = target.clone();
            Ok(load::run(bounds, "req/s", move |w, seq| {
                let (t, photos) = (t.clone(), Arc::clone(&photos));
                async move {
                    let r = mix(w as u64, seq) as usize;
                    let (id, file) = &photos[r % photos.len()];
                    thumb(&t, id, file, THUMBS[r / photos.len() % THUMBS.len()]).await
                }
            })
            .await)
        }
        "files-upload-10mb" => {
            ensure_collection(target).await?;
            let blob = big_blob();
            let (_, token) = data.worker_user(0);
            // One probe: a refusal of the size itself means the target cannot run this.
            upload(
                target,
                token,
                "probe",
                "blob.bin",
                "application/octet-stream",
                &blob,
            )
            .await
            .map_err(|e| format!("10 MiB upload: {e}"))?;
            let bounds = Bounds {
                max_ops: bounds.max_ops.min(MAX_BIG_UPLOADS),
                ..bounds
            };
            let (t, data) = (target.clone(), data.clone());
            let mut stats = load::run(bounds, "MiB/s", move |w, seq| {
                let (t, data, blob) = (t.clone(), data.clone(), Arc::clone(&blob));
                async move {
                    let (_, token) = data.worker_user(w);
                    let title = format!("big {w}-{seq}");
                    upload(
                        &t,
                        token,
                        &title,
                        "blob.bin",
                        "application/octet-stream",
                        &blob,
                    )
                    .await
                    .map(|_| ())
                }
            })
            .await;
            stats.items_per_op = (BIG_UPLOAD / (1024 * 1024)) as f64;
            Ok(stats)
        }
        other => Err(format!("scenario {other} has no runner")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_photo_is_a_4_megapixel_jpeg_of_photo_like_size() {
        let jpeg = jpeg_4mp();
        let decoded = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
            .expect("the generated JPEG decodes");
        assert_eq!((decoded.width(), decoded.height()), (WIDTH, HEIGHT));
        assert!(u64::from(WIDTH * HEIGHT) >= 3_900_000);
        // Textured enough not to collapse to a few kilobytes, small enough for the field.
        assert!(
            jpeg.len() > 200_000 && (jpeg.len() as u64) < MAX_FILE,
            "{}",
            jpeg.len()
        );
    }

    #[test]
    fn the_big_upload_is_ten_mebibytes_of_varied_bytes() {
        let blob = big_blob();
        assert_eq!(blob.len(), BIG_UPLOAD);
        assert_ne!(blob[..8], blob[8..16]);
    }

    #[test]
    fn multipart_bodies_carry_the_file_between_boundaries() {
        let body = multipart("t", "a.bin", "application/octet-stream", b"XYZ");
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(
            "filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\nXYZ\r\n"
        ));
        assert!(text.ends_with(&format!("--{BOUNDARY}--\r\n")));
    }
}
