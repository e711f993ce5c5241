//! Pictures users upload for their characters. An upload (PNG, JPEG or WebP, at most
//! [`MAX_UPLOAD_BYTES`]) is decoded by the `image` crate within limits checked from its header
//! before any pixel is decoded (at most [`MAX_SIDE`] a side and [`MAX_PIXELS`] in all, a bounded
//! allocation), turned upright by its EXIF orientation, flattened onto white, cropped to its
//! centre and re-encoded as a 2:3 portrait (at most [`PORTRAIT`]) and a square thumbnail
//! ([`THUMB`]), both JPEG — nothing of the original file (its metadata, EXIF, location, colour
//! profile, other chunks) is kept. Pictures live in the `pictures` table, so every server serves
//! them; a character shows one by its avatar being `upload:<id>`. Every query on `pictures` is
//! here, scoped to its owner.

use crate::auth::{require_user, UserId};
use crate::domain::Avatar;
use crate::error::{AppError, OrInternal};
use crate::infra::{db::Db, new_id, now_ms, AppState};
use crate::with_pool;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

/// The largest upload taken.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// The longest side a picture may have, as its header says.
pub const MAX_SIDE: u32 = 8_000;
/// The most pixels a picture may have (a decompression bomb claims far more): 25 million, a
/// 5,000 × 5,000 photo, 100 MB decoded at 8 bits a channel.
pub const MAX_PIXELS: u64 = 25_000_000;
/// How many pictures one server decodes at once (each may hold a few hundred MB while it does);
/// the others wait their turn.
const AT_ONCE: usize = 2;
/// How many pictures a user may upload (or bring in with PNG cards) a day.
pub const PER_DAY: i64 = 100;
/// The portrait's largest size (2:3, like a card's); a smaller picture is not enlarged.
pub const PORTRAIT: (u32, u32) = (512, 768);
/// The thumbnail's side.
pub const THUMB: u32 = 160;
/// JPEG quality of both.
const QUALITY: u8 = 85;

/// Why an upload was refused, in a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PictureError {
    #[error("The picture is larger than 5 MB.")]
    TooLarge,
    #[error("Send a PNG, JPEG or WebP picture.")]
    NotAPicture,
    #[error("The picture is too large: at most 8,000 pixels a side and 25 million in all.")]
    TooManyPixels,
    #[error("The picture could not be read: the file is damaged or not what it says it is.")]
    Damaged,
}

/// A picture as kept: both JPEG.
#[derive(Debug, Clone)]
pub struct Processed {
    pub portrait: Vec<u8>,
    pub thumb: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Decodes, checks and re-encodes an uploaded picture (CPU work: call it on a blocking thread).
pub fn process(bytes: &[u8]) -> Result<Processed, PictureError> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(PictureError::TooLarge);
    }
    decode(bytes)
}

/// [`process`] for the image of a PNG card, which may be as large as a card file may be.
pub fn process_card(bytes: &[u8]) -> Result<Processed, PictureError> {
    if bytes.len() > crate::domain::card::MAX_CARD_BYTES {
        return Err(PictureError::TooLarge);
    }
    decode(bytes)
}

fn decode(bytes: &[u8]) -> Result<Processed, PictureError> {
    let format = image::guess_format(bytes).map_err(|_| PictureError::NotAPicture)?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP
    ) {
        return Err(PictureError::NotAPicture);
    }
    let refused = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => PictureError::TooManyPixels,
        _ => PictureError::Damaged,
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // Room for the decoded picture at 16 bits per channel with alpha, and no more.
    limits.max_alloc = Some(MAX_PIXELS * 8 + (1 << 20));
    let mut reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(refused)?;
    // The header's size, before any pixel is decoded.
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(PictureError::Damaged);
    }
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(PictureError::TooManyPixels);
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(refused)?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    // Cropped and scaled first, flattened after: no second full-size copy of a large picture.
    let portrait = flatten(&cover(&img, PORTRAIT.0, PORTRAIT.1));
    let thumb = flatten(&cover(&img, THUMB, THUMB));
    drop(img);
    Ok(Processed {
        width: portrait.width(),
        height: portrait.height(),
        portrait: jpeg(&portrait)?,
        thumb: jpeg(&thumb)?,
    })
}

/// The picture's colours over white, where it is transparent.
fn flatten(img: &DynamicImage) -> RgbImage {
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (src, dst) in rgba.pixels().zip(out.pixels_mut()) {
        let a = u16::from(src[3]);
        for i in 0..3 {
            dst[i] = ((u16::from(src[i]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// The centre of `img` at the aspect of `w` × `h`, scaled down to at most that size (never up).
fn cover(img: &DynamicImage, w: u32, h: u32) -> DynamicImage {
    let (iw, ih) = (img.width(), img.height());
    // The largest w:h box inside the picture.
    let (cw, ch) = if u64::from(iw) * u64::from(h) > u64::from(ih) * u64::from(w) {
        (
            ((u64::from(ih) * u64::from(w)) / u64::from(h)).max(1) as u32,
            ih,
        )
    } else {
        (
            iw,
            ((u64::from(iw) * u64::from(h)) / u64::from(w)).max(1) as u32,
        )
    };
    let crop = img.crop_imm((iw - cw) / 2, (ih - ch) / 2, cw, ch);
    if cw <= w {
        return crop;
    }
    crop.resize_exact(w, h, image::imageops::FilterType::CatmullRom)
}

fn jpeg(img: &RgbImage) -> Result<Vec<u8>, PictureError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(img)
        .map_err(|_| PictureError::Damaged)?;
    Ok(out)
}

/// The RGB pixels of a kept portrait (for a card's PNG), with its size.
pub fn portrait_pixels(jpeg: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let img = image::load_from_memory_with_format(jpeg, ImageFormat::Jpeg).ok()?;
    let rgb = img.to_rgb8();
    Some((rgb.width(), rgb.height(), rgb.into_raw()))
}

/// Uploads a picture for the signed-in user's character: the form's `id` (the character) and its
/// file field. The picture becomes the character's avatar; a plain form post is sent back to the
/// character's page. Returns the picture's id.
#[tracing::instrument(skip_all)]
pub async fn upload(data: leptos::server_fn::codec::MultipartData) -> Result<String, AppError> {
    let user = require_user().await?;
    let unreadable = || AppError::BadRequest("The upload could not be read.".into());
    let mut form = data.into_inner().ok_or_else(unreadable)?;
    let (mut character, mut bytes): (Option<String>, Option<Vec<u8>>) = (None, None);
    while let Some(mut field) = form.next_field().await.map_err(|_| unreadable())? {
        if field.name() == Some("id") {
            let text = field.text().await.map_err(|_| unreadable())?;
            // An id is at most 64 characters; anything longer is simply not found.
            character = Some(text.chars().take(65).collect());
            continue;
        }
        if field.file_name().is_none() && field.name() != Some("picture") {
            continue;
        }
        let mut buf = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|_| unreadable())? {
            if buf.len() + chunk.len() > MAX_UPLOAD_BYTES {
                return Err(AppError::TooLarge(PictureError::TooLarge.to_string()));
            }
            buf.extend_from_slice(&chunk);
        }
        bytes = Some(buf);
    }
    let character = character.ok_or(AppError::NotFound)?;
    let bytes = bytes
        .filter(|b| !b.is_empty())
        .ok_or_else(|| AppError::BadRequest("Choose a picture to upload.".into()))?;
    let id = set_for(&AppState::get()?.db, &user, &character, bytes).await?;
    leptos_axum::redirect(&format!("/characters/{character}"));
    Ok(id)
}

/// Makes `bytes` the picture of `user`'s character `character` (the app's upload and the REST API
/// both come here): the character is looked up first, then the picture processed on a blocking
/// thread, kept, and shown. Returns the picture's id.
pub async fn set_for(
    db: &Db,
    user: &UserId,
    character: &str,
    bytes: Vec<u8>,
) -> Result<String, AppError> {
    super::service::check_id(character)?;
    let before = super::store::find(db, user, character)
        .await
        .or_internal("load character")?
        .ok_or(AppError::NotFound)?;
    check_allowance(db, user).await?;
    let processed = decode_in_turn(bytes, process).await?.map_err(|e| match e {
        PictureError::TooLarge => AppError::TooLarge(e.to_string()),
        e => AppError::BadRequest(e.to_string()),
    })?;
    let id = insert(db, user, &processed)
        .await
        .or_internal("keep picture")?;
    let avatar = format!("{}{id}", Avatar::UPLOAD);
    if !super::store::set_avatar(db, user, character, &avatar)
        .await
        .or_internal("show picture")?
    {
        // Deleted meanwhile: the picture goes with the next purge.
        return Err(AppError::NotFound);
    }
    // The picture it replaced goes at once, unless another character (a copy) shows it.
    if let Some(old) = before.draft.avatar.strip_prefix(Avatar::UPLOAD) {
        remove_if_unused(db, user, old)
            .await
            .or_internal("remove replaced picture")?;
    }
    tracing::info!(
        width = processed.width,
        height = processed.height,
        "picture uploaded"
    );
    Ok(id)
}

/// Runs `work` on `bytes` on a blocking thread, at most [`AT_ONCE`] at a time on this server.
pub async fn decode_in_turn(
    bytes: Vec<u8>,
    work: fn(&[u8]) -> Result<Processed, PictureError>,
) -> Result<Result<Processed, PictureError>, AppError> {
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(AT_ONCE);
    let _turn = TURNS.acquire().await.or_internal("wait to decode")?;
    tokio::task::spawn_blocking(move || work(&bytes))
        .await
        .or_internal("process picture")
}

/// Refuses (429) a user who has kept [`PER_DAY`] pictures in the last day.
pub async fn check_allowance(db: &Db, owner: &UserId) -> Result<(), AppError> {
    let since = now_ms() - 24 * 3_600_000;
    let n: i64 = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM pictures WHERE owner_id = $1 AND created_at >= $2")
            .bind(&owner.0)
            .bind(since)
            .fetch_one(pool)
            .await
            .or_internal("count pictures")?
    });
    if n >= PER_DAY {
        return Err(AppError::RateLimited {
            retry_after_secs: 3_600,
            message: format!("You have uploaded {PER_DAY} pictures today; try again later."),
        });
    }
    Ok(())
}

/// Removes `owner`'s picture `id` if no character and no pending card import shows it.
async fn remove_if_unused(db: &Db, owner: &UserId, id: &str) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "DELETE FROM pictures WHERE id = $1 AND owner_id = $2 \
             AND NOT EXISTS (SELECT 1 FROM characters c WHERE c.avatar = 'upload:' || pictures.id) \
             AND NOT EXISTS (SELECT 1 FROM card_imports i WHERE i.picture = pictures.id)",
        )
        .bind(id)
        .bind(&owner.0)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// Keeps a processed picture of `owner`'s; returns its id.
pub async fn insert(db: &Db, owner: &UserId, p: &Processed) -> Result<String, sqlx::Error> {
    let id = new_id();
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO pictures (id, owner_id, portrait, thumb, width, height, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&owner.0)
        .bind(&p.portrait)
        .bind(&p.thumb)
        .bind(p.width as i32)
        .bind(p.height as i32)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ())?
    });
    Ok(id)
}

/// Which of a picture's two sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Portrait,
    Thumb,
}

/// The JPEG of `owner`'s picture `id` at `size`; `None` for someone else's or a missing one.
pub async fn get(
    db: &Db,
    owner: &UserId,
    id: &str,
    size: Size,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    if Avatar::picture_of(&format!("{}{id}", Avatar::UPLOAD)).is_none() {
        return Ok(None);
    }
    let column = match size {
        Size::Portrait => "portrait",
        Size::Thumb => "thumb",
    };
    let sql = format!("SELECT {column} FROM pictures WHERE id = $1 AND owner_id = $2");
    with_pool!(db, pool => {
        sqlx::query_scalar::<_, Vec<u8>>(&sql)
            .bind(id)
            .bind(&owner.0)
            .fetch_optional(pool)
            .await
    })
}

/// Whether `owner` has the picture `id`.
pub async fn exists(db: &Db, owner: &UserId, id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = with_pool!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM pictures WHERE id = $1 AND owner_id = $2")
            .bind(id)
            .bind(&owner.0)
            .fetch_one(pool)
            .await?
    });
    Ok(n > 0)
}

/// Refuses an avatar naming a picture `owner` does not have (someone else's, or a made-up id), as
/// the avatar field's error.
pub async fn check_avatar(db: &Db, owner: &UserId, avatar: &Avatar) -> Result<(), AppError> {
    let Some(id) = avatar.picture() else {
        return Ok(());
    };
    if exists(db, owner, id).await.or_internal("find picture")? {
        return Ok(());
    }
    let mut errs = crate::domain::FieldErrors::default();
    errs.push(
        crate::domain::field::AVATAR,
        crate::domain::Invalid::new("That picture is not one of yours: upload it again."),
    );
    Err(AppError::Invalid(errs))
}

/// Removes pictures made before `cutoff` that no character shows (any more) and no pending card
/// import holds; the server runs it with the trash's purge. Returns how many went.
pub async fn purge_unused(db: &Db, cutoff: i64) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query(
            "DELETE FROM pictures WHERE created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM characters c WHERE c.avatar = 'upload:' || pictures.id) \
             AND NOT EXISTS (SELECT 1 FROM card_imports i WHERE i.picture = pictures.id)",
        )
        .bind(cutoff)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn png_jpeg_and_webp_become_a_portrait_and_a_thumbnail() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(900, 600, |x, y| {
            image::Rgba([
                (x % 256) as u8,
                (y % 256) as u8,
                90,
                if x < 50 { 0 } else { 255 },
            ])
        }));
        for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP] {
            let src = match format {
                ImageFormat::Jpeg => encode(&DynamicImage::ImageRgb8(img.to_rgb8()), format),
                f => encode(&img, f),
            };
            let p = process(&src).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            // 900×600 is wider than 2:3: its centre 400×600, not enlarged.
            assert_eq!((p.width, p.height), (400, 600), "{format:?}");
            let portrait = image::load_from_memory(&p.portrait).unwrap();
            assert_eq!((portrait.width(), portrait.height()), (400, 600));
            let thumb = image::load_from_memory(&p.thumb).unwrap();
            assert_eq!((thumb.width(), thumb.height()), (THUMB, THUMB));
            assert_eq!(image::guess_format(&p.portrait).unwrap(), ImageFormat::Jpeg);
        }
        // A large picture is scaled down to the portrait's size.
        let big =
            DynamicImage::ImageRgb8(RgbImage::from_pixel(2000, 3000, image::Rgb([10, 20, 30])));
        let p = process(&encode(&big, ImageFormat::Png)).unwrap();
        assert_eq!((p.width, p.height), PORTRAIT);
    }

    #[test]
    fn metadata_does_not_survive() {
        // A JPEG with an EXIF segment (APP1) holding a marker string right after its start.
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 96, image::Rgb([200, 10, 10])));
        let plain = encode(&img, ImageFormat::Jpeg);
        let secret = b"Exif\0\0GPS-SECRET-LOCATION";
        let mut with_exif = plain[..2].to_vec();
        with_exif.extend_from_slice(&[0xFF, 0xE1]);
        with_exif.extend_from_slice(&((secret.len() + 2) as u16).to_be_bytes());
        with_exif.extend_from_slice(secret);
        with_exif.extend_from_slice(&plain[2..]);
        let p = process(&with_exif).unwrap();
        let find = |hay: &[u8]| hay.windows(10).any(|w| w == b"GPS-SECRET");
        assert!(find(&with_exif));
        assert!(!find(&p.portrait) && !find(&p.thumb));
        // A PNG's text chunk neither.
        let mut png = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut png, 4, 4);
            enc.set_color(png::ColorType::Rgb);
            let mut w = enc.write_header().unwrap();
            w.write_text_chunk(&png::text_metadata::TEXtChunk::new(
                "Comment",
                "GPS-SECRET here",
            ))
            .unwrap();
            w.write_image_data(&[7u8; 48]).unwrap();
            w.finish().unwrap();
        }
        let p = process(&png).unwrap();
        assert!(!find(&p.portrait) && !find(&p.thumb));
    }

    #[test]
    fn the_page_knows_every_refusal() {
        for e in [
            PictureError::TooLarge,
            PictureError::NotAPicture,
            PictureError::TooManyPixels,
            PictureError::Damaged,
        ] {
            assert!(
                crate::characters::PICTURE_SENTENCES.contains(&e.to_string().as_str()),
                "{e}"
            );
        }
    }

    #[test]
    fn what_is_not_a_picture_or_is_a_bomb_is_refused() {
        assert_eq!(process(b"hello").unwrap_err(), PictureError::NotAPicture);
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        assert_eq!(process(gif).unwrap_err(), PictureError::NotAPicture);
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3])));
        let png = encode(&img, ImageFormat::Png);
        assert_eq!(
            process(&png[..png.len() / 2]).unwrap_err(),
            PictureError::Damaged
        );
        // A header claiming 20,000 × 20,000 (400 million pixels) in a file of a few dozen
        // bytes: refused from the header, before any pixel is decoded.
        let header_only = |w: u32, h: u32| {
            let mut out = Vec::new();
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Grayscale);
            let mut writer = enc.write_header().unwrap();
            // An empty zlib stream as the only image data.
            writer
                .write_chunk(
                    png::chunk::IDAT,
                    &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
                )
                .unwrap();
            drop(writer);
            out
        };
        let bomb = header_only(20_000, 20_000);
        assert!(bomb.len() < 100);
        assert_eq!(process(&bomb).unwrap_err(), PictureError::TooManyPixels);
        // 7,000 × 7,000 has sides within the limit but 49 million pixels.
        assert_eq!(
            process(&header_only(7_000, 7_000)).unwrap_err(),
            PictureError::TooManyPixels
        );
        // A header within the limits over data that is not there: damaged, not a panic.
        assert_eq!(
            process(&header_only(100, 100)).unwrap_err(),
            PictureError::Damaged
        );
        assert_eq!(
            process(&vec![0u8; MAX_UPLOAD_BYTES + 1]).unwrap_err(),
            PictureError::TooLarge
        );
    }

    #[test]
    fn a_rotated_photo_is_turned_upright() {
        // A JPEG 60 wide and 90 tall, with EXIF orientation 6 (rotate 90° clockwise to show):
        // shown, it is 90 wide and 60 tall, so the portrait crops its 40 × 60 centre.
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(60, 90, image::Rgb([0, 128, 0])));
        let plain = encode(&img, ImageFormat::Jpeg);
        // A minimal big-endian TIFF with one IFD entry: Orientation (0x0112) = 6.
        let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        exif.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0, 6, 0, 0]);
        exif.extend_from_slice(&[0, 0, 0, 0]);
        let mut rotated = plain[..2].to_vec();
        rotated.extend_from_slice(&[0xFF, 0xE1]);
        rotated.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        rotated.extend_from_slice(&exif);
        rotated.extend_from_slice(&plain[2..]);
        let p = process(&rotated).unwrap();
        assert_eq!((p.width, p.height), (40, 60));
    }
}
