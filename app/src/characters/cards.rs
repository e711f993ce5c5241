//! Character Card import, on the server: read the uploaded file, keep the card whole in
//! `card_imports` until the wizard saves the character made from it, then move it onto that
//! character (`characters.card`, with the card's alternate greetings and extensions in their own
//! columns). Every query on `card_imports` is here, scoped to its owner.

use super::CardImport;
use crate::auth::{require_user, UserId};
use crate::domain::card::{self, CardError, ImportedCard, MAX_CARD_BYTES};
use crate::domain::CharacterDraft;
use crate::error::{AppError, OrInternal};
use crate::infra::{db::Db, new_id, now_ms, AppState};
use crate::with_pool;
use serde_json::Value;

/// Pending imports a user may have; an import beyond it replaces their oldest.
const MAX_PENDING: i64 = 20;
/// A pending import older than this is gone (the wizard's draft outlives it in the browser).
const PENDING_MS: i64 = 24 * 3_600_000;

/// Reads the card file in the upload (the first file field), keeps it, and returns the wizard
/// draft made from it. Signed in first; the file is read within [`MAX_CARD_BYTES`].
#[tracing::instrument(skip_all)]
pub async fn import(data: leptos::server_fn::codec::MultipartData) -> Result<CardImport, AppError> {
    let user = require_user().await?;
    let mut form = data
        .into_inner()
        .ok_or_else(|| AppError::BadRequest("The upload could not be read.".into()))?;
    let mut bytes: Option<Vec<u8>> = None;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|_| AppError::BadRequest("The upload could not be read.".into()))?
    {
        if field.file_name().is_none() && field.name() != Some("card") {
            continue;
        }
        let mut buf = Vec::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|_| AppError::BadRequest("The upload could not be read.".into()))?
        {
            if buf.len() + chunk.len() > MAX_CARD_BYTES {
                return Err(AppError::TooLarge(CardError::TooLarge.to_string()));
            }
            buf.extend_from_slice(&chunk);
        }
        bytes = Some(buf);
        break;
    }
    let bytes =
        bytes.ok_or_else(|| AppError::BadRequest("Choose a card file to import.".into()))?;
    let view = import_bytes(&AppState::get()?.db, &user, &bytes).await?;
    // A plain form post (no JavaScript) goes on to the wizard with the draft.
    leptos_axum::redirect(&format!("/characters/new?import={}", view.id));
    Ok(view)
}

/// Reads a card file (PNG or JSON, V1 to V3) of `owner`'s and keeps it as a pending import;
/// returns the draft made from it (the app's upload and the REST API both come here).
pub async fn import_bytes(db: &Db, owner: &UserId, bytes: &[u8]) -> Result<CardImport, AppError> {
    let card = card::read_file(bytes).map_err(|e| match e {
        CardError::TooLarge => AppError::TooLarge(e.to_string()),
        e => AppError::BadRequest(e.to_string()),
    })?;
    // A PNG card's image is the character's picture: kept as one, stripped and re-encoded like
    // an upload. A picture that cannot be used only means the drawn avatar instead, said so. A
    // card PersonaFlux exported with a drawn avatar names it (`extensions.personaflux.avatar`):
    // its image is only that drawing, so the drawn avatar is kept and the round trip is exact.
    let drawn = {
        let avatar = card.to_draft().0.avatar;
        !avatar.trim().is_empty() && crate::domain::Avatar::picture_of(&avatar).is_none()
    };
    let mut note = None;
    let picture = if bytes.starts_with(b"\x89PNG")
        && !drawn
        && super::pictures::check_allowance(db, owner).await.is_ok()
    {
        match super::pictures::decode_in_turn(bytes.to_vec(), super::pictures::process_card).await?
        {
            Ok(p) => Some(
                super::pictures::insert(db, owner, &p)
                    .await
                    .or_internal("keep card picture")?,
            ),
            Err(e) => {
                note = Some(format!("The card's picture is not used: {e}"));
                None
            }
        }
    } else {
        None
    };
    let id = insert(db, owner, &card, picture.as_deref())
        .await
        .or_internal("keep card import")?;
    tracing::info!(spec = ?card.spec, picture = picture.is_some(), "card imported");
    let mut view = view_of(id, &card, picture.as_deref());
    view.notes.extend(note);
    Ok(view)
}

/// A pending import of the signed-in user, as the wizard opens it.
pub async fn get(id: String) -> Result<CardImport, AppError> {
    let user = require_user().await?;
    super::service::check_id(&id)?;
    let db = AppState::get()?.db;
    let (raw, picture) = find(&db, &user, &id)
        .await
        .or_internal("load card import")?
        .ok_or(AppError::NotFound)?;
    let card = card::parse_json(raw.as_bytes()).or_internal("stored card")?;
    Ok(view_of(id, &card, picture.as_deref()))
}

/// The wizard's view of a pending import. Its avatar is the card's own picture when it had one;
/// a picture named by the card (an export's `extensions.personaflux.avatar`) is never taken as
/// one of the importer's.
fn view_of(id: String, card: &ImportedCard, picture: Option<&str>) -> CardImport {
    let (mut draft, notes) = card.to_draft();
    match picture {
        Some(p) => draft.avatar = format!("{}{p}", crate::domain::Avatar::UPLOAD),
        None if crate::domain::Avatar::picture_of(&draft.avatar).is_some() => {
            draft.avatar = String::new()
        }
        None => {}
    }
    CardImport {
        id,
        format: card.spec.label().to_string(),
        draft: draft.with_defaults(),
        notes: notes.into_iter().map(|n| n.0).collect(),
    }
}

/// Keeps `card` as a pending import of `owner`; returns its id. Expired imports of theirs, and
/// their oldest beyond [`MAX_PENDING`], go.
pub async fn insert(
    db: &Db,
    owner: &UserId,
    card: &ImportedCard,
    picture: Option<&str>,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    let text = card.raw.to_string();
    let spec = format!("{:?}", card.spec);
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM card_imports WHERE owner_id = $1 AND created_at < $2")
            .bind(&owner.0)
            .bind(now - PENDING_MS)
            .execute(&mut *tx)
            .await?;
        // Room for this one: the owner's oldest beyond the limit go.
        sqlx::query(
            "DELETE FROM card_imports WHERE owner_id = $1 AND id NOT IN (SELECT id FROM card_imports \
             WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
        )
        .bind(&owner.0)
        .bind(MAX_PENDING - 1)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO card_imports (id, owner_id, spec, card, created_at, picture) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&owner.0)
        .bind(&spec)
        .bind(&text)
        .bind(now)
        .bind(picture)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    });
    Ok(id)
}

/// The card JSON of `owner`'s pending import `id` and its picture (if any), if it is theirs and
/// not expired.
async fn find(
    db: &Db,
    owner: &UserId,
    id: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    let since = now_ms() - PENDING_MS;
    with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT card, picture FROM card_imports WHERE id = $1 AND owner_id = $2 AND created_at >= $3",
        )
        .bind(id)
        .bind(&owner.0)
        .bind(since)
        .fetch_optional(pool)
        .await
    })
}

/// Moves `owner`'s pending import `import` onto their character `character`: the card as it
/// came, its alternate greetings and its extensions. `false` if there is no such import (someone
/// else's, expired, or already used), and then nothing changes.
pub async fn attach(
    db: &Db,
    owner: &UserId,
    import: &str,
    character: &str,
) -> Result<bool, sqlx::Error> {
    let Some((text, _)) = find(db, owner, import).await? else {
        return Ok(false);
    };
    let raw: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let data = raw.get("data").filter(|d| d.is_object()).unwrap_or(&raw);
    let greetings = data
        .get("alternate_greetings")
        .filter(|g| g.is_array())
        .cloned()
        .unwrap_or_else(|| Value::Array(Vec::new()));
    let extensions = data
        .get("extensions")
        .filter(|e| e.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        let taken = sqlx::query("DELETE FROM card_imports WHERE id = $1 AND owner_id = $2")
            .bind(import)
            .bind(&owner.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if taken == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE characters SET card = $1, alternate_greetings = $2, extensions = $3 \
             WHERE id = $4 AND owner_id = $5",
        )
        .bind(&text)
        .bind(sqlx::types::Json(&greetings))
        .bind(sqlx::types::Json(&extensions))
        .bind(character)
        .bind(&owner.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    });
    Ok(true)
}

/// The card `owner`'s character `id` was imported from, as it came; `None` if it was not.
pub async fn card_of(db: &Db, owner: &UserId, id: &str) -> Result<Option<String>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT card FROM characters WHERE id = $1 AND owner_id = $2",
        )
        .bind(id)
        .bind(&owner.0)
        .fetch_optional(pool)
        .await
        .map(Option::flatten)
    })
}

/// The file formats a character is exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Character Card V3 JSON.
    Json,
    /// A PNG portrait carrying the V3 card (`ccv3`) and its V2 backfill (`chara`).
    Png,
}

/// `owner`'s character `id` as a card file: its bytes and a file name. `None` if it is not
/// theirs (or is in the trash). A character imported from a card carries that card's every other
/// field (extensions, lorebook, unknown keys) through.
pub async fn export(
    db: &Db,
    owner: &UserId,
    id: &str,
    format: ExportFormat,
) -> Result<Option<(Vec<u8>, String)>, sqlx::Error> {
    if super::service::check_id(id).is_err() {
        return Ok(None);
    }
    let Some(character) = super::store::find(db, owner, id).await? else {
        return Ok(None);
    };
    let original: Option<Value> = card_of(db, owner, id)
        .await?
        .and_then(|c| serde_json::from_str(&c).ok());
    let (v3, v2) = card::export(&character.draft, original.as_ref());
    let stem = crate::infra::file_stem(&character.draft.name, "character");
    Ok(Some(match format {
        ExportFormat::Json => (
            serde_json::to_vec_pretty(&v3).unwrap_or_default(),
            format!("{stem}.json"),
        ),
        ExportFormat::Png => {
            let portrait = portrait_of(db, owner, &character.draft.avatar).await?;
            let draft = character.draft;
            let png = tokio::task::spawn_blocking(move || {
                card_png(&draft, portrait.as_deref(), &v3, &v2)
            })
            .await
            .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?;
            (png, format!("{stem}.png"))
        }
    }))
}

/// The JPEG portrait of the uploaded picture `avatar` names, if it names one of `owner`'s.
async fn portrait_of(
    db: &Db,
    owner: &UserId,
    avatar: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    match crate::domain::Avatar::picture_of(avatar) {
        Some(id) => super::pictures::get(db, owner, id, super::pictures::Size::Portrait).await,
        None => Ok(None),
    }
}

/// A card's PNG: the uploaded picture's portrait when there is one, else the drawn one.
fn card_png(draft: &CharacterDraft, portrait: Option<&[u8]>, v3: &Value, v2: &Value) -> Vec<u8> {
    match portrait.and_then(super::pictures::portrait_pixels) {
        Some((w, h, pixels)) => card::png_with_cards(w, h, &pixels, v3, v2),
        None => card::export_png(draft, v3, v2),
    }
}

/// The most characters one bulk export holds; a user with more is told so before any is drawn.
pub const MAX_BULK_EXPORT: i64 = 1000;

/// Every one of `owner`'s characters (not in the trash) as a Character Card PNG, in one zip:
/// `Ok(None)` when they have more than [`MAX_BULK_EXPORT`]. The pictures are drawn on a blocking
/// thread, not the request's.
pub async fn export_all(db: &Db, owner: &UserId) -> Result<Option<ZipFile>, sqlx::Error> {
    if super::store::count_for(db, owner).await? > MAX_BULK_EXPORT {
        return Ok(None);
    }
    let characters = super::store::all_with_cards(db, owner, MAX_BULK_EXPORT).await?;
    zip_cards(db, owner, characters).await.map(Some)
}

/// The most characters one request may name (bulk delete and export through the API).
pub const MAX_BULK: usize = super::MAX_SELECTION;

/// `owner`'s characters `ids` (not in the trash) as Character Card PNGs in one zip: `Ok(None)` if
/// any of them is not theirs. At most [`MAX_BULK`] ids, checked by the caller.
pub async fn export_some(
    db: &Db,
    owner: &UserId,
    ids: &[String],
) -> Result<Option<ZipFile>, sqlx::Error> {
    let mut characters = Vec::with_capacity(ids.len());
    for id in ids {
        if crate::infra::check_id(id).is_err() {
            return Ok(None);
        }
        let Some(c) = super::store::find(db, owner, id).await? else {
            return Ok(None);
        };
        let card = card_of(db, owner, id).await?;
        characters.push((c, card));
    }
    zip_cards(db, owner, characters).await.map(Some)
}

/// A zip of card PNGs, written to a temporary file (gone when dropped), read back from the start.
pub struct ZipFile {
    pub file: std::fs::File,
    pub len: u64,
}

/// The most bulk exports one server writes at once (each draws up to 1,000 pictures); the others
/// wait their turn.
const EXPORTS_AT_ONCE: usize = 2;

/// The characters' card PNGs in a zip (stored, not deflated: PNGs are compressed already), one
/// file per character named after it, `-2`, `-3`, … where names repeat. Written on a blocking
/// thread into a temporary file, one character at a time (its uploaded picture read only when
/// its turn comes), so an export holds one picture in memory, not all of them.
async fn zip_cards(
    db: &Db,
    owner: &UserId,
    characters: Vec<(super::CharacterView, Option<String>)>,
) -> Result<ZipFile, sqlx::Error> {
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(EXPORTS_AT_ONCE);
    let io = |e: std::io::Error| sqlx::Error::Io(e);
    let _turn = TURNS
        .acquire()
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
    let (db, owner) = (db.clone(), owner.clone());
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || -> Result<ZipFile, sqlx::Error> {
        use std::io::{Seek, Write};
        let zip_err = |e: zip::result::ZipError| io(std::io::Error::other(e));
        let mut zip = zip::ZipWriter::new(tempfile::tempfile().map_err(io)?);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let mut used = std::collections::HashSet::new();
        for (c, card) in characters {
            let portrait = runtime.block_on(portrait_of(&db, &owner, &c.draft.avatar))?;
            let original: Option<Value> =
                card.as_deref().and_then(|c| serde_json::from_str(c).ok());
            let (v3, v2) = card::export(&c.draft, original.as_ref());
            let stem = crate::infra::file_stem(&c.draft.name, "character");
            let mut name = format!("{stem}.png");
            let mut n = 1;
            while !used.insert(name.clone()) {
                n += 1;
                name = format!("{stem}-{n}.png");
            }
            zip.start_file(name, opts).map_err(zip_err)?;
            zip.write_all(&card_png(&c.draft, portrait.as_deref(), &v3, &v2))
                .map_err(io)?;
        }
        let mut file = zip.finish().map_err(zip_err)?;
        let len = file.stream_position().map_err(io)?;
        file.rewind().map_err(io)?;
        Ok(ZipFile { file, len })
    })
    .await
    .map_err(|e| io(std::io::Error::other(e)))?
}
