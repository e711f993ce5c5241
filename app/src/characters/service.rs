//! What the character server functions do: generate a story (with one repair of an invalid
//! reply), save, list and open. Queries are in [`super::store`].

use super::{
    store, CharacterFilter, CharacterPage, CharacterSummary, CharacterView, Generated,
    TrashedCharacter, MAX_PAGE, PAGE, TRASH_DAYS,
};
use crate::auth::{require_user, UserId};
use crate::domain::{CharacterDraft, CharacterSeed, GeneratedCharacter, Section, Tags};
use crate::error::{AppError, OrInternal};
use crate::infra::db::Db;
use crate::infra::{
    llm::{prompts, LlmError},
    AppState,
};
use crate::limits;
use crate::usage::calls::structured;

#[tracing::instrument(skip_all, fields(variation))]
pub async fn generate(draft: CharacterDraft, variation: u64) -> Result<Generated, AppError> {
    let user = require_user().await?;
    generate_for(&AppState::get()?, &user, draft, variation).await
}

/// [`generate`] for `user`, however they are signed in (the REST API generates too).
pub async fn generate_for(
    state: &AppState,
    user: &UserId,
    draft: CharacterDraft,
    variation: u64,
) -> Result<Generated, AppError> {
    let seed = draft.parse_seed()?;
    let (state, user) = (state.clone(), user.clone());
    let mut slot = limits::service::begin_model_call(&state, &user).await?;
    let story = write_story(&state, &user, &seed, variation).await;
    slot.release().await;
    let story = story.map_err(|e| {
        tracing::warn!(error = %e, "character generation failed");
        AppError::Provider(e.user_message().to_string())
    })?;
    Ok(Generated {
        story,
        offline: state.llm.is_offline(),
    })
}

/// Asks the model for a character's story parts, parses and validates the reply, and gives
/// an invalid reply one repair attempt that names what was wrong. Every call is recorded.
pub async fn write_story(
    state: &AppState,
    user: &UserId,
    seed: &CharacterSeed,
    variation: u64,
) -> Result<GeneratedCharacter, LlmError> {
    let request = prompts::character(seed, variation);
    let kinds = ("character", "character_repair");
    structured(
        state,
        user,
        request,
        kinds,
        Some(seed.language.as_str()),
        parse_generated,
    )
    .await
}

/// Writes one section of `draft` again (see [`super::regenerate_section`]).
#[tracing::instrument(skip_all, fields(section = section.key(), variation))]
pub async fn regenerate_section(
    draft: CharacterDraft,
    section: Section,
    variation: u64,
) -> Result<super::Rewritten, AppError> {
    let user = require_user().await?;
    regenerate_section_for(&AppState::get()?, &user, draft, section, variation).await
}

/// [`regenerate_section`] for `user`, however they are signed in.
pub async fn regenerate_section_for(
    state: &AppState,
    user: &UserId,
    draft: CharacterDraft,
    section: Section,
    variation: u64,
) -> Result<super::Rewritten, AppError> {
    let seed = draft.parse_seed()?;
    // The context sent with the request is bounded like a saved character.
    if draft.backstory.chars().count() > crate::domain::LongText::MAX
        || draft.story_context.chars().count() > crate::domain::LongText::MAX
        || draft.opening_line.chars().count() > crate::domain::OpeningLine::MAX
        || draft.start_options.len() > GeneratedCharacter::START_OPTIONS
        || draft.endings.len() > GeneratedCharacter::ENDINGS
    {
        return Err(AppError::BadRequest(
            "The story is longer than a character can be; shorten it first.".into(),
        ));
    }
    let (state, user) = (state.clone(), user.clone());
    let mut slot = limits::service::begin_model_call(&state, &user).await?;
    let request = prompts::section(&seed, &draft, section, variation);
    let schema = section.schema();
    let kinds = ("section", "section_repair");
    let language = Some(seed.language.as_str());
    let rewritten = structured(&state, &user, request, kinds, language, |raw| {
        let mut value: serde_json::Value = serde_json::from_str(raw.trim())
            .map_err(|e| LlmError::InvalidReply(format!("the reply is not valid JSON ({e})")))?;
        crate::domain::schema::recover(&mut value, &schema);
        let mut out = draft.clone();
        section
            .apply(&value, &mut out)
            .map_err(|e| LlmError::InvalidReply(e.0))?;
        Ok(out)
    })
    .await;
    slot.release().await;
    let draft = rewritten.map_err(|e| {
        tracing::warn!(error = %e, "section generation failed");
        AppError::Provider(e.user_message().to_string())
    })?;
    Ok(super::Rewritten {
        draft,
        offline: state.llm.is_offline(),
    })
}

/// Parses and validates a generated character: JSON of the right shape, every text in bounds,
/// exactly three start options and three endings of distinct kinds. What oversteps the schema in
/// a way that needs no model to fix (a text too long, a kind in capitals) is mended first
/// ([`crate::domain::schema::recover`]); only the rest is refused, for the one repair call.
pub fn parse_generated(raw: &str) -> Result<GeneratedCharacter, LlmError> {
    let invalid = |m: String| LlmError::InvalidReply(m);
    let mut value: serde_json::Value = serde_json::from_str(raw.trim())
        .map_err(|e| invalid(format!("the reply is not valid JSON ({e})")))?;
    let mended = crate::domain::schema::recover(&mut value, &GeneratedCharacter::schema());
    if !mended.is_empty() {
        tracing::info!(?mended, "mended a structured reply without a repair call");
    }
    let g: GeneratedCharacter =
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    g.check().map_err(|e| invalid(e.0))?;
    Ok(g)
}

#[tracing::instrument(skip_all)]
pub async fn save(draft: CharacterDraft, import: Option<String>) -> Result<String, AppError> {
    let user = require_user().await?;
    save_for(&AppState::get()?.db, &user, draft, import).await
}

/// Saves a new character of `user` (from the app, or the REST API); returns its id.
pub async fn save_for(
    db: &Db,
    user: &UserId,
    draft: CharacterDraft,
    import: Option<String>,
) -> Result<String, AppError> {
    let spec = draft.parse_spec()?;
    if let Some(import) = &import {
        check_id(import)?;
    }
    super::pictures::check_avatar(db, user, &spec.avatar).await?;
    let id = store::insert(db, user, &spec)
        .await
        .or_internal("save character")?;
    if let Some(import) = import {
        // The character is saved either way; a card import that is gone (used, expired) only
        // means its original card is not kept, which the user cannot act on.
        if !super::cards::attach(db, user, &import, &id)
            .await
            .or_internal("keep imported card")?
        {
            tracing::info!("card import gone before the save");
        }
    }
    Ok(id)
}

/// The first page of the user's characters at the largest page size.
pub async fn list() -> Result<Vec<CharacterSummary>, AppError> {
    let user = require_user().await?;
    store::list_for(&AppState::get()?.db, &user)
        .await
        .or_internal("list characters")
}

/// A page of the user's characters, newest first, after the character `after` (the last of the
/// previous page; someone else's or a missing one is not found). `limit` defaults to [`PAGE`] and
/// is clamped to 1..=[`MAX_PAGE`].
#[tracing::instrument(skip_all)]
pub async fn page(after: Option<String>, limit: Option<u32>) -> Result<CharacterPage, AppError> {
    let user = require_user().await?;
    page_for(&AppState::get()?.db, &user, after, limit).await
}

/// [`page`] for `user`, however they are signed in.
pub async fn page_for(
    db: &Db,
    user: &UserId,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<CharacterPage, AppError> {
    search_for(db, user, &CharacterFilter::default(), after, limit).await
}

#[tracing::instrument(skip_all)]
pub async fn search(
    filter: CharacterFilter,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<CharacterPage, AppError> {
    let user = require_user().await?;
    search_for(&AppState::get()?.db, &user, &filter, after, limit).await
}

/// A page of `user`'s characters that `filter` finds, in its order (the dashboard and the REST
/// API's list): the filter's lengths checked before any query.
pub async fn search_for(
    db: &Db,
    user: &UserId,
    filter: &CharacterFilter,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<CharacterPage, AppError> {
    filter.check()?;
    let limit = i64::from(limit.unwrap_or(PAGE as u32)).clamp(1, MAX_PAGE);
    let after = match after.as_deref() {
        None | Some("") => store::After::Start,
        Some(id) if id.len() <= 64 => store::After::Character(id),
        Some(_) => return Err(AppError::NotFound),
    };
    let (characters, more) = store::search_page(db, user, filter, after, limit)
        .await
        .or_internal("list characters")?
        .ok_or(AppError::NotFound)?;
    let next = more
        .then(|| characters.last().map(|c| c.id.clone()))
        .flatten();
    Ok(CharacterPage { characters, next })
}

pub async fn get(id: String) -> Result<CharacterView, AppError> {
    let user = require_user().await?;
    get_for(&AppState::get()?.db, &user, &id).await
}

/// `user`'s character `id` (someone else's, or a missing one, is not found).
pub async fn get_for(db: &Db, user: &UserId, id: &str) -> Result<CharacterView, AppError> {
    check_id(id)?;
    store::find(db, user, id)
        .await
        .or_internal("get character")?
        .ok_or(AppError::NotFound)
}

pub(super) use crate::infra::check_id;

#[tracing::instrument(skip_all)]
pub async fn update(id: String, draft: CharacterDraft) -> Result<String, AppError> {
    let user = require_user().await?;
    update_for(&AppState::get()?.db, &user, id, draft).await
}

/// Saves `draft` over `user`'s character `id`.
pub async fn update_for(
    db: &Db,
    user: &UserId,
    id: String,
    draft: CharacterDraft,
) -> Result<String, AppError> {
    check_id(&id)?;
    let spec = draft.parse_spec()?;
    super::pictures::check_avatar(db, user, &spec.avatar).await?;
    if store::update(db, user, &id, &spec, None)
        .await
        .or_internal("update character")?
    {
        Ok(id)
    } else {
        Err(AppError::NotFound)
    }
}

/// What [`update_if`] did.
pub enum Conditional {
    Updated,
    /// The character changed since `version`: nothing was saved.
    Changed,
}

/// Saves `draft` over `user`'s character `id` only if it is still at `version` (its
/// `updated_at`, as read): a lost update is refused, not made.
pub async fn update_if(
    db: &Db,
    user: &UserId,
    id: &str,
    draft: CharacterDraft,
    version: i64,
) -> Result<Conditional, AppError> {
    check_id(id)?;
    let spec = draft.parse_spec()?;
    super::pictures::check_avatar(db, user, &spec.avatar).await?;
    if store::update(db, user, id, &spec, Some(version))
        .await
        .or_internal("update character")?
    {
        return Ok(Conditional::Updated);
    }
    // Gone, or changed meanwhile.
    store::find(db, user, id)
        .await
        .or_internal("load character")?
        .ok_or(AppError::NotFound)?;
    Ok(Conditional::Changed)
}

#[tracing::instrument(skip_all)]
pub async fn duplicate(id: String) -> Result<String, AppError> {
    let user = require_user().await?;
    check_id(&id)?;
    let db = AppState::get()?.db;
    let original = store::find(&db, &user, &id)
        .await
        .or_internal("load character")?
        .ok_or(AppError::NotFound)?;
    let mut draft = original.draft;
    draft.name = copy_name(&draft.name);
    // A saved character parses; should an older row not, the user is told which field.
    let spec = draft.parse_spec()?;
    let copy = store::insert(&db, &user, &spec)
        .await
        .or_internal("save copy")?;
    // The copy keeps the original's tags (not its favourite mark: that is about the original).
    if let Ok(tags) = Tags::parse(&original.tags) {
        if !tags.is_empty() {
            store::set_tags(&db, &user, &copy, &tags, None)
                .await
                .or_internal("tag copy")?;
        }
    }
    leptos_axum::redirect(&format!("/characters/{copy}"));
    Ok(copy)
}

/// "Mira" → "Mira (copy)", within the name's length limit.
fn copy_name(name: &str) -> String {
    use crate::domain::CharacterName;
    const SUFFIX: &str = " (copy)";
    let room = CharacterName::MAX - SUFFIX.chars().count();
    let base: String = name.chars().take(room).collect();
    format!("{}{SUFFIX}", base.trim_end())
}

#[tracing::instrument(skip_all)]
pub async fn set_favourite(id: String, favourite: bool) -> Result<(), AppError> {
    let user = require_user().await?;
    set_favourite_for(&AppState::get()?.db, &user, &id, favourite).await
}

/// Marks `user`'s character `id` as a favourite, or not.
pub async fn set_favourite_for(
    db: &Db,
    user: &UserId,
    id: &str,
    favourite: bool,
) -> Result<(), AppError> {
    check_id(id)?;
    if store::set_favourite(db, user, id, favourite)
        .await
        .or_internal("mark favourite")?
    {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

#[tracing::instrument(skip_all)]
pub async fn set_tags(id: String, tags: String) -> Result<Vec<String>, AppError> {
    let user = require_user().await?;
    let tags = Tags::parse_list(&tags).map_err(|e| AppError::BadRequest(e.to_string()))?;
    set_tags_for(&AppState::get()?.db, &user, &id, &tags).await
}

/// Replaces the tags of `user`'s character `id`; returns them as kept.
pub async fn set_tags_for(
    db: &Db,
    user: &UserId,
    id: &str,
    tags: &Tags,
) -> Result<Vec<String>, AppError> {
    check_id(id)?;
    if store::set_tags(db, user, id, tags, None)
        .await
        .or_internal("tag character")?
    {
        Ok(tags.to_strings())
    } else {
        Err(AppError::NotFound)
    }
}

/// The ids of a selection, checked before any is looked up: 1 to [`super::cards::MAX_BULK`]
/// (refused with a sentence otherwise), repeats dropped. An id of no possible form is simply not
/// found later, as everywhere.
pub fn selection(ids: Vec<String>) -> Result<Vec<String>, AppError> {
    let max = super::cards::MAX_BULK;
    if ids.is_empty() || ids.len() > max {
        return Err(AppError::BadRequest(format!(
            "Select from 1 to {max} characters at a time."
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// What to do to every character of a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkAction {
    /// Move to the trash.
    Delete,
    /// Bring back from the trash (the undo of a bulk delete).
    Restore,
    /// Add these tags.
    Tag(Tags),
    /// Remove these tags.
    Untag(Tags),
    /// Mark, or unmark, as favourites.
    Favourite(bool),
}

/// What a bulk action did, per character.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BulkOutcome {
    /// Done.
    pub done: Vec<String>,
    /// Not the owner's, or not where the action applies (already in the trash, or not in it):
    /// nothing done.
    pub not_found: Vec<String>,
    /// Left as they were: the tags would have been more than a character may have.
    pub too_many_tags: Vec<String>,
    /// Left as they were: their tags kept changing (another tab or script) while these were saved.
    #[serde(default)]
    pub changed_meanwhile: Vec<String>,
}

/// Does `action` to each of `user`'s characters `ids` (checked by [`selection`] first). Tags are
/// added or removed by compare-and-set, so a change made meanwhile by another tab or server is
/// kept, not overwritten.
pub async fn bulk_for(
    db: &Db,
    user: &UserId,
    ids: Vec<String>,
    action: &BulkAction,
) -> Result<BulkOutcome, AppError> {
    let ids = selection(ids)?;
    let mut out = BulkOutcome::default();
    let now = crate::infra::now_ms();
    for id in ids {
        if check_id(&id).is_err() {
            out.not_found.push(id);
            continue;
        }
        let done = match action {
            BulkAction::Delete => store::trash(db, user, &id, now)
                .await
                .or_internal("delete character")?,
            BulkAction::Restore => store::restore(db, user, &id, trash_cutoff(), now)
                .await
                .or_internal("restore character")?,
            BulkAction::Favourite(f) => store::set_favourite(db, user, &id, *f)
                .await
                .or_internal("mark favourite")?,
            BulkAction::Tag(_) | BulkAction::Untag(_) => {
                match retag(db, user, &id, action).await? {
                    Retagged::Done => true,
                    Retagged::Missing => false,
                    Retagged::TooMany => {
                        out.too_many_tags.push(id);
                        continue;
                    }
                    Retagged::Busy => {
                        out.changed_meanwhile.push(id);
                        continue;
                    }
                }
            }
        };
        if done {
            out.done.push(id);
        } else {
            out.not_found.push(id);
        }
    }
    Ok(out)
}

enum Retagged {
    Done,
    Missing,
    TooMany,
    Busy,
}

/// Adds or removes tags on one character, read then written only if unchanged (a few tries).
async fn retag(
    db: &Db,
    user: &UserId,
    id: &str,
    action: &BulkAction,
) -> Result<Retagged, AppError> {
    for _ in 0..5 {
        let Some(was) = store::tags_of(db, user, id)
            .await
            .or_internal("read tags")?
        else {
            return Ok(Retagged::Missing);
        };
        let current = Tags::parse(&was).unwrap_or_default();
        let next = match action {
            BulkAction::Tag(more) => match current.with(more) {
                Ok(t) => t,
                Err(_) => return Ok(Retagged::TooMany),
            },
            BulkAction::Untag(gone) => current.without(gone),
            _ => return Ok(Retagged::Done),
        };
        if next == current && next.to_strings() == was {
            return Ok(Retagged::Done);
        }
        if store::set_tags(db, user, id, &next, Some(&was))
            .await
            .or_internal("tag character")?
        {
            return Ok(Retagged::Done);
        }
    }
    Ok(Retagged::Busy)
}

#[tracing::instrument(skip_all)]
pub async fn delete(id: String) -> Result<(), AppError> {
    let user = require_user().await?;
    delete_for(&AppState::get()?.db, &user, &id).await?;
    // Where the browser goes next: a form post is redirected, a hydrated page navigates.
    leptos_axum::redirect(&format!("/dashboard?deleted={id}"));
    Ok(())
}

/// Moves `user`'s character `id`, with its chats, to the trash.
pub async fn delete_for(db: &Db, user: &UserId, id: &str) -> Result<(), AppError> {
    check_id(id)?;
    if store::trash(db, user, id, crate::infra::now_ms())
        .await
        .or_internal("delete character")?
    {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

#[tracing::instrument(skip_all)]
pub async fn restore(id: String) -> Result<(), AppError> {
    let user = require_user().await?;
    check_id(&id)?;
    let db = AppState::get()?.db;
    if store::restore(&db, &user, &id, trash_cutoff(), crate::infra::now_ms())
        .await
        .or_internal("restore character")?
    {
        leptos_axum::redirect(&format!("/characters/{id}"));
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

pub async fn trash() -> Result<Vec<TrashedCharacter>, AppError> {
    let user = require_user().await?;
    let db = AppState::get()?.db;
    store::trash_for(&db, &user, trash_cutoff(), MAX_PAGE)
        .await
        .or_internal("list trash")
}

/// Deleted before this (epoch ms), a character is past its days in the trash: no longer listed
/// nor restorable, and removed by the next [`purge_expired`].
fn trash_cutoff() -> i64 {
    crate::infra::now_ms() - TRASH_DAYS * 24 * 3_600_000
}

/// Removes for good what has been in the trash longer than [`TRASH_DAYS`]. The server runs it at
/// start-up and every hour, never in a request: reading the trash writes nothing, and what is past
/// its days is already hidden and unrestorable by [`trash_cutoff`].
pub async fn purge_expired(db: &crate::infra::db::Db) {
    match store::purge_trash(db, trash_cutoff()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, "removed characters past their days in the trash"),
        Err(e) => tracing::warn!(error = ?e, "could not empty old trash"),
    }
    // Pictures no character shows, a day after they were uploaded (an upload is shown at once;
    // one is left over when its character was given another picture or removed for good).
    match super::pictures::purge_unused(db, crate::infra::now_ms() - 24 * 3_600_000).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, "removed pictures no character shows"),
        Err(e) => tracing::warn!(error = ?e, "could not remove unused pictures"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_copy_is_named_so_within_the_limit() {
        assert_eq!(super::copy_name("Mira"), "Mira (copy)");
        let long = "x".repeat(60);
        let copy = super::copy_name(&long);
        assert_eq!(copy.chars().count(), 60);
        assert!(copy.ends_with(" (copy)"));
    }
}
