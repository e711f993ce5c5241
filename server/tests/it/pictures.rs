//! Pictures for characters, on SQLite and Postgres: uploaded on a character's page (a multipart
//! form post, so without JavaScript too) as PNG, JPEG or WebP, refused when not a picture, damaged,
//! a decompression bomb or over 5 MB; served to their owner only, cached for good with an ETag;
//! shown on the dashboard; a save naming someone else's picture refused; exported inside the card
//! PNG, and a PNG card's own picture kept when it is imported; pictures no character shows purged.

use crate::common::*;
use app::characters::{GetCharacter, SaveCharacter, UpdateCharacter};
use app::error::AppError;
use image::{DynamicImage, ImageFormat, RgbImage};

on_both_backends!(
    a_picture_is_uploaded_served_to_its_owner_and_shown,
    bad_pictures_and_other_peoples_are_refused,
    pictures_travel_inside_cards_and_unused_ones_are_purged,
);

/// A `w` × `h` picture in `format`, a gradient (so it is not one flat colour).
pub fn picture(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 120])
    }));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn png(w: u32, h: u32) -> Vec<u8> {
    picture(w, h, ImageFormat::Png)
}

/// The picture id a character's avatar names.
fn picture_id(avatar: &str) -> String {
    app::domain::Avatar::picture_of(avatar)
        .unwrap_or_else(|| panic!("not an uploaded picture: {avatar}"))
        .to_string()
}

/// The bytes at `path`, as the signed-in browser gets them.
async fn download(app: &TestApp, path: &str) -> Vec<u8> {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.bytes().await.unwrap().to_vec()
}

/// A card file imported (not yet saved), as a script asks.
async fn import(app: &TestApp, name: &str, bytes: Vec<u8>) -> app::characters::CardImport {
    let res = app
        .upload_request(&app.client, "application/json", name, bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{name}");
    res.json().await.unwrap()
}

async fn avatar_of(app: &TestApp, id: &str) -> String {
    app.call(GetCharacter { id: id.into() })
        .await
        .unwrap()
        .draft
        .avatar
}

async fn a_picture_is_uploaded_served_to_its_owner_and_shown(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await;
    let before = app.call(GetCharacter { id: id.clone() }).await.unwrap();

    // As the page's form sends it without JavaScript: back to the character's page.
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP] {
        let res = app
            .picture_request(&app.client, "text/html", &id, picture(600, 900, format))
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_redirection(),
            "{format:?}: {}",
            res.status()
        );
        assert_eq!(res.headers()["location"], format!("/characters/{id}"));
    }
    let after = app.call(GetCharacter { id: id.clone() }).await.unwrap();
    let pid = picture_id(&after.draft.avatar);
    assert!(
        after.updated_at > before.updated_at,
        "a new picture is an edit"
    );
    // Each replaced the one before, which went at once.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM pictures").await, 1);

    // Served to its owner: JPEG, cached for good, 304 for the same ETag.
    for (file, size) in [("portrait.jpg", (512, 768)), ("thumb.jpg", (160, 160))] {
        let url = app.url(&format!("/pictures/{pid}/{file}"));
        let res = app.client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200, "{file}");
        assert_eq!(res.headers()["content-type"], "image/jpeg");
        assert_eq!(
            res.headers()["cache-control"],
            "private, max-age=31536000, immutable"
        );
        let etag = res.headers()["etag"].to_str().unwrap().to_string();
        let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), size, "{file}");
        let res = app
            .client
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 304);
    }
    // Not to anyone else, nor to no one.
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let url = app.url(&format!("/pictures/{pid}/portrait.jpg"));
    assert_eq!(other.client.get(&url).send().await.unwrap().status(), 404);
    assert_eq!(new_client().get(&url).send().await.unwrap().status(), 401);
    for bad in ["nope", "..%2F..%2Fetc", &"a".repeat(80)] {
        let res = app
            .client
            .get(app.url(&format!("/pictures/{bad}/thumb.jpg")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{bad}");
    }

    // Shown wherever the character is: its page (with the portrait), the dashboard (thumbnail).
    let html = app.html(&format!("/characters/{id}")).await;
    assert!(
        html.contains(&format!("/pictures/{pid}/portrait.jpg")),
        "{html}"
    );
    assert!(html.contains(r#"enctype="multipart/form-data""#), "{html}");
    let html = app.html("/dashboard").await;
    assert!(
        html.contains(&format!(
            r#"<img src="/pictures/{pid}/thumb.jpg" alt="" width="64" height="64" class="avatar picture">"#
        )),
        "{html}"
    );
    // Editing keeps the picture; choosing a drawn avatar again is allowed.
    let mut draft = after.draft.clone();
    draft.backstory = "Edited.".into();
    app.call(UpdateCharacter {
        id: id.clone(),
        draft: draft.clone(),
    })
    .await
    .unwrap();
    assert_eq!(avatar_of(&app, &id).await, after.draft.avatar);
    draft.avatar = "moss".into();
    app.call(UpdateCharacter {
        id: id.clone(),
        draft,
    })
    .await
    .unwrap();
    assert_eq!(avatar_of(&app, &id).await, "moss");
    // A script's upload gets the picture's id.
    let res = app
        .picture_request(&app.client, "application/json", &id, png(100, 100))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let new: String = res.json().await.unwrap();
    assert_eq!(picture_id(&avatar_of(&app, &id).await), new);
}

async fn bad_pictures_and_other_peoples_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await;
    let mut bomb = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bomb, 30_000, 30_000);
        enc.set_color(png::ColorType::Rgb);
        let mut w = enc.write_header().unwrap();
        w.write_chunk(
            png::chunk::IDAT,
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        )
        .unwrap();
    }
    let real = png(64, 64);
    for (bytes, status, says) in [
        (b"not a picture at all".to_vec(), 422, "PNG, JPEG or WebP"),
        (
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            422,
            "PNG, JPEG or WebP",
        ),
        (real[..real.len() / 2].to_vec(), 422, "damaged"),
        (bomb, 422, "too large"),
        (Vec::new(), 422, "Choose a picture"),
        (vec![0x89; 5 * 1024 * 1024 + 100], 413, "larger than 5 MB"),
        (vec![0x89; 6 * 1024 * 1024], 413, "too large"),
    ] {
        let res = app
            .picture_request(&app.client, "application/json", &id, bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{says}");
        let body = res.text().await.unwrap();
        assert!(body.contains(says), "{says}: {body}");
        assert!(
            !body.contains("image::") && !body.contains("Error {"),
            "{body}"
        );
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM pictures").await, 0);
    assert_eq!(avatar_of(&app, &id).await, "tide");

    // Someone else's picture cannot be named as one's avatar, on a save or an edit.
    let other = app.another_browser();
    sign_in_as_someone_else(&other).await;
    let theirs = save_character(&other, "Theirs").await;
    let res = other
        .picture_request(&other.client, "application/json", &theirs, png(50, 50))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let their_picture: String = res.json().await.unwrap();
    let mut d = full_draft("Thief");
    d.avatar = format!("upload:{their_picture}");
    match app
        .call(SaveCharacter {
            draft: d.clone(),
            import: None,
        })
        .await
    {
        Err(AppError::Invalid(errs)) => {
            assert_eq!(errs.0[0].field, "avatar");
            assert!(errs.0[0].message.contains("not one of yours"));
        }
        other => panic!("{other:?}"),
    }
    match app
        .call(UpdateCharacter {
            id: id.clone(),
            draft: d.clone(),
        })
        .await
    {
        Err(AppError::Invalid(errs)) => assert_eq!(errs.0[0].field, "avatar"),
        other => panic!("{other:?}"),
    }
    d.avatar = "upload:not-hex!".into();
    assert!(matches!(
        app.call(SaveCharacter {
            draft: d,
            import: None
        })
        .await,
        Err(AppError::Invalid(_))
    ));
    // Nor can a picture be put on someone else's character.
    let res = app
        .picture_request(&app.client, "application/json", &theirs, png(50, 50))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM pictures").await, 1);
}

async fn pictures_travel_inside_cards_and_unused_ones_are_purged(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let id = save_character(&app, "Mira").await;
    let res = app
        .picture_request(&app.client, "application/json", &id, png(300, 450))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let first: String = res.json().await.unwrap();

    // Exported, the card PNG is the picture (its size), still carrying the card.
    let card_png = download(&app, &format!("/characters/{id}/card.png")).await;
    let img = image::load_from_memory(&card_png).unwrap();
    assert_eq!((img.width(), img.height()), (300, 450));
    let read = app::domain::card::read_file(&card_png).unwrap();
    assert_eq!(read.raw["data"]["name"], "Mira");

    // Imported, the card's picture becomes the new character's own (a new picture, not the
    // original's id), and saving with it works.
    let card = import(&app, "Mira.png", card_png).await;
    let imported = picture_id(&card.draft.avatar);
    assert_ne!(imported, first);
    let copy = app
        .call(SaveCharacter {
            draft: card.draft.clone(),
            import: Some(card.id.clone()),
        })
        .await
        .unwrap();
    let res = app
        .client
        .get(app.url(&format!("/pictures/{imported}/portrait.jpg")))
        .send()
        .await
        .unwrap();
    let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (300, 450));
    // Saving used the pending import: it is gone.
    let again = app
        .call(app::characters::GetCardImport {
            id: card.id.clone(),
        })
        .await;
    assert!(again.is_err(), "used by the save");

    // A drawn avatar's export imports back as that drawn avatar, not as a picture.
    let drawn = save_character(&app, "Drawn").await;
    let png_bytes = download(&app, &format!("/characters/{drawn}/card.png")).await;
    let again = import(&app, "Drawn.png", png_bytes).await;
    assert_eq!(again.draft.avatar, "tide");
    // A JSON card naming a picture by id does not get it.
    let json = download(&app, &format!("/characters/{id}/card.json")).await;
    let again = import(&app, "Mira.json", json).await;
    assert!(app::domain::Avatar::picture_of(&again.draft.avatar).is_none());

    // A second upload replaces the first, which goes at once (no other character shows it).
    let res = app
        .picture_request(&app.client, "application/json", &id, png(80, 120))
        .send()
        .await
        .unwrap();
    let second: String = res.json().await.unwrap();
    let ids = || async {
        let v: Vec<String> = app::with_pool!(&app.db, pool => {
            sqlx::query_scalar("SELECT id FROM pictures ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap()
        });
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(ids().await, sorted(vec![second.clone(), imported.clone()]));
    // A PNG card imported but not yet saved holds its picture.
    let copy_png = download(&app, &format!("/characters/{copy}/card.png")).await;
    let pending = picture_id(&import(&app, "copy.png", copy_png).await.draft.avatar);
    // Given a drawn avatar again, the character no longer shows its picture: the purge removes
    // it (a day after its upload: here, with a cut-off in the future), and nothing that a
    // character or a pending import shows.
    let mut d = app
        .call(GetCharacter { id: id.clone() })
        .await
        .unwrap()
        .draft;
    d.avatar = "moss".into();
    app.call(UpdateCharacter {
        id: id.clone(),
        draft: d,
    })
    .await
    .unwrap();
    let gone = app::characters::pictures::purge_unused(&app.db, app::infra::now_ms() + 1)
        .await
        .unwrap();
    assert_eq!(gone, 1);
    assert_eq!(ids().await, sorted(vec![imported.clone(), pending.clone()]));
    assert_eq!(picture_id(&avatar_of(&app, &copy).await), imported);
    // A character in the trash keeps its picture (it may be restored).
    app.call(app::characters::DeleteCharacter { id: copy.clone() })
        .await
        .unwrap();
    app::characters::pictures::purge_unused(&app.db, app::infra::now_ms() + 1)
        .await
        .unwrap();
    assert_eq!(count(&app, "SELECT COUNT(*) FROM pictures").await, 2);

    // At most 100 new pictures a day: the 101st is a 429 with Retry-After, nothing kept.
    let me = app
        .call(app::auth::GetCurrentUser {})
        .await
        .unwrap()
        .unwrap()
        .id;
    let now = app::infra::now_ms();
    for i in 0..app::characters::pictures::PER_DAY {
        app::with_pool!(&app.db, pool => {
            sqlx::query(
                "INSERT INTO pictures (id, owner_id, portrait, thumb, width, height, created_at) \
                 VALUES ($1, $2, $3, $3, 1, 1, $4)",
            )
            .bind(format!("f{i:04}"))
            .bind(&me)
            .bind(vec![0u8])
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
        });
    }
    let before = count(&app, "SELECT COUNT(*) FROM pictures").await;
    let res = app
        .picture_request(&app.client, "application/json", &id, png(40, 60))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM pictures").await, before);
}
