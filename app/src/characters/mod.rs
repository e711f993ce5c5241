//! Characters: generate, save, list, open, edit, duplicate, and delete to a trash (restorable
//! for [`TRASH_DAYS`] days).
//!
//! This module holds what crosses the wire (the views and the `#[server]` functions); the
//! behaviour is in [`service`] and every query on the `characters` table in [`store`].

use crate::domain::{CharacterDraft, GeneratedCharacter, Section};
use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod cards;
#[cfg(feature = "ssr")]
pub mod pictures;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;

/// A card on the dashboard.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharacterSummary {
    pub id: String,
    pub name: String,
    pub traits: Vec<String>,
    pub avatar: String,
    pub opening_line: String,
    pub created_at: i64,
    /// The user's own labels on it.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub favourite: bool,
}

/// How many characters a dashboard page shows unless asked otherwise.
pub const PAGE: i64 = 24;
/// The most characters one call returns; a larger `limit` is clamped to this.
pub const MAX_PAGE: i64 = 100;
/// The most characters one bulk action (delete, export, tag, favourite) may name.
pub const MAX_SELECTION: usize = 100;

/// How the dashboard orders characters.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CharacterSort {
    /// Newest first.
    #[default]
    Created,
    /// By name, A to Z.
    Name,
    /// Most recently chatted with first (never chatted with last).
    Chatted,
}

impl CharacterSort {
    pub const ALL: [CharacterSort; 3] = [
        CharacterSort::Created,
        CharacterSort::Chatted,
        CharacterSort::Name,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CharacterSort::Created => "created",
            CharacterSort::Name => "name",
            CharacterSort::Chatted => "chatted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            CharacterSort::Created => "Newest",
            CharacterSort::Name => "Name",
            CharacterSort::Chatted => "Recently chatted",
        }
    }
}

/// The dashboard's search and filters, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharacterFilter {
    /// Words to find in the name, traits, backstory or world (every word, each as a prefix).
    #[serde(default)]
    pub q: String,
    /// Only characters with this trait (any case).
    #[serde(default)]
    pub trait_name: String,
    /// Only characters in this language.
    #[serde(default)]
    pub language: String,
    /// Only characters with this tag of the user's (any case).
    #[serde(default)]
    pub tag: String,
    /// Only the user's favourites.
    #[serde(default)]
    pub favourites: bool,
    #[serde(default)]
    pub sort: CharacterSort,
}

impl CharacterFilter {
    /// The longest search the dashboard takes, in characters.
    pub const MAX_QUERY: usize = 200;
    /// At most this many words of a search are used.
    pub const MAX_TERMS: usize = 8;

    /// Checks the lengths, before any query.
    pub fn check(&self) -> Result<(), AppError> {
        if self.q.chars().count() > Self::MAX_QUERY {
            return Err(AppError::BadRequest(format!(
                "A search can be at most {} characters.",
                Self::MAX_QUERY
            )));
        }
        if self.trait_name.chars().count() > crate::domain::TraitName::MAX
            || self.language.chars().count() > crate::domain::Language::MAX
            || self.tag.chars().count() > crate::domain::TagName::MAX
        {
            return Err(AppError::BadRequest(
                "That trait, tag or language is longer than any can be.".into(),
            ));
        }
        Ok(())
    }

    /// The search's words: letters and digits only (so nothing a user types is read as query
    /// syntax), lower-cased, at most [`Self::MAX_TERMS`], each at most 40 characters.
    pub fn terms(&self) -> Vec<String> {
        crate::domain::search_terms(&self.q, Self::MAX_TERMS)
    }

    /// Whether anything narrows the list.
    pub fn narrows(&self) -> bool {
        !self.terms().is_empty()
            || !self.trait_name.trim().is_empty()
            || !self.language.trim().is_empty()
            || !self.tag.trim().is_empty()
            || self.favourites
    }
}

/// A page of the dashboard.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharacterPage {
    /// Newest first.
    pub characters: Vec<CharacterSummary>,
    /// When more remain: the cursor (`after`) for the next page.
    pub next: Option<String>,
}

/// A whole saved character.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharacterView {
    pub id: String,
    pub draft: CharacterDraft,
    pub created_at: i64,
    pub updated_at: i64,
    /// The lorebook of the card it was imported from (empty for others).
    #[serde(default)]
    pub lorebook: Vec<crate::domain::card::LoreEntry>,
    /// The user's own labels on it (not part of its story, nor of an exported card).
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub favourite: bool,
}

/// How long a deleted character stays in the trash, restorable, before it is removed for good.
pub const TRASH_DAYS: i64 = 30;

/// A character in the trash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashedCharacter {
    pub id: String,
    pub name: String,
    pub avatar: String,
    /// When it was deleted (epoch ms); it is removed for good [`TRASH_DAYS`] later.
    pub deleted_at: i64,
}

/// What generation returns: the story parts, and whether an offline writer produced them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    pub story: GeneratedCharacter,
    pub offline: bool,
}

/// Writes the story parts (backstory, world, opening line, start options, endings) from the
/// first wizard step. `variation` picks a different take on the same inputs.
#[server(endpoint = "characters/generate", input = Json)]
pub async fn generate_character(
    draft: CharacterDraft,
    variation: u64,
) -> Result<Generated, AppError> {
    service::generate(draft, variation).await
}

/// Saves a new character; returns its id. `import`: the card import the draft was made from,
/// whose card (whole, with its extensions) is kept with the character.
#[server(endpoint = "characters/save", input = Json)]
pub async fn save_character(
    draft: CharacterDraft,
    #[server(default)] import: Option<String>,
) -> Result<String, AppError> {
    service::save(draft, import).await
}

/// A Character Card read for import: the wizard draft made from it, and what the import cut or
/// could not fill (cards have no age, start options or endings).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardImport {
    pub id: String,
    /// "Character Card V2", …
    pub format: String,
    pub draft: CharacterDraft,
    pub notes: Vec<String>,
}

/// Imports a Character Card file (V1, V2 or V3 JSON, or a PNG carrying one), sent as the form
/// field `card`. Returns the draft for the wizard; a plain form post is redirected to it.
#[server(endpoint = "characters/import", input = leptos::server_fn::codec::MultipartFormData)]
pub async fn import_card(
    data: leptos::server_fn::codec::MultipartData,
) -> Result<CardImport, AppError> {
    cards::import(data).await
}

/// Every sentence a picture upload is refused with (the page shows one back from a plain form
/// post only if it is one of these). `pictures::PictureError` says the first four.
pub const PICTURE_SENTENCES: [&str; 6] = [
    "The picture is larger than 5 MB.",
    "Send a PNG, JPEG or WebP picture.",
    "The picture is too large: at most 8,000 pixels a side and 25 million in all.",
    "The picture could not be read: the file is damaged or not what it says it is.",
    "Choose a picture to upload.",
    "The upload could not be read.",
];

/// Uploads a picture (PNG, JPEG or WebP, up to 5 MB; the form's file field) for the signed-in
/// user's character `id` (the form field): it is decoded, stripped of its metadata, re-encoded as
/// a portrait and a thumbnail, and becomes the character's avatar. A plain form post is sent back
/// to the character's page. Returns the picture's id.
#[server(endpoint = "characters/picture", input = leptos::server_fn::codec::MultipartFormData)]
pub async fn upload_picture(
    data: leptos::server_fn::codec::MultipartData,
) -> Result<String, AppError> {
    pictures::upload(data).await
}

/// A pending card import of the signed-in user, for the wizard.
#[server(endpoint = "characters/import/get")]
pub async fn get_card_import(id: String) -> Result<CardImport, AppError> {
    cards::get(id).await
}

/// The signed-in user's characters, newest first: the first [`MAX_PAGE`] of them (see
/// [`list_character_page`] for the rest).
#[server(endpoint = "characters/list")]
pub async fn list_characters() -> Result<Vec<CharacterSummary>, AppError> {
    service::list().await
}

/// A page of the signed-in user's characters, newest first (keyset on creation time and id):
/// those after the character `after` (the previous page's `next`; another user's is not found),
/// at most `limit` (default [`PAGE`], clamped to [`MAX_PAGE`]).
#[server(endpoint = "characters/page")]
pub async fn list_character_page(
    after: Option<String>,
    limit: Option<u32>,
) -> Result<CharacterPage, AppError> {
    service::page(after, limit).await
}

/// A page of the signed-in user's characters found by `filter` (search, trait, language) in its
/// order: those after the character `after` (the previous page's `next`), at most `limit`.
#[server(endpoint = "characters/search", input = Json)]
pub async fn search_characters(
    filter: CharacterFilter,
    #[server(default)] after: Option<String>,
    #[server(default)] limit: Option<u32>,
) -> Result<CharacterPage, AppError> {
    service::search(filter, after, limit).await
}

#[server(endpoint = "characters/get")]
pub async fn get_character(id: String) -> Result<CharacterView, AppError> {
    service::get(id).await
}

/// What writing one section again returns: the draft with the new section, every other field as
/// it was sent.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewritten {
    pub draft: CharacterDraft,
    pub offline: bool,
}

/// Writes one section of the draft (backstory, world, opening line, start options or endings)
/// again, keeping every other field and giving them to the model as context. `variation` picks
/// another take.
#[server(endpoint = "characters/regenerate_section", input = Json)]
pub async fn regenerate_section(
    draft: CharacterDraft,
    section: Section,
    variation: u64,
) -> Result<Rewritten, AppError> {
    service::regenerate_section(draft, section, variation).await
}

/// Replaces a saved character's fields with `draft` (validated as on save). Returns its id.
#[server(endpoint = "characters/update", input = Json)]
pub async fn update_character(id: String, draft: CharacterDraft) -> Result<String, AppError> {
    service::update(id, draft).await
}

/// Saves a copy of a character, named "… (copy)". Returns the copy's id.
#[server(endpoint = "characters/duplicate")]
pub async fn duplicate_character(id: String) -> Result<String, AppError> {
    service::duplicate(id).await
}

/// Marks a character as one of the user's favourites, or unmarks it. Without JavaScript (a plain
/// form post) the browser is sent back to the page it came from.
#[server(endpoint = "characters/favourite")]
pub async fn set_favourite(id: String, favourite: bool) -> Result<(), AppError> {
    service::set_favourite(id, favourite).await
}

/// Replaces a character's tags with `tags`, a comma-separated list (at most
/// [`crate::domain::Tags::MAX`], each at most [`crate::domain::TagName::MAX`] characters).
/// Returns the tags as kept.
#[server(endpoint = "characters/tags")]
pub async fn set_tags(id: String, tags: String) -> Result<Vec<String>, AppError> {
    service::set_tags(id, tags).await
}

/// Moves a character, with its chats, to the trash. Without JavaScript (a plain form post) the
/// browser is sent to the dashboard, which offers Undo.
#[server(endpoint = "characters/delete")]
pub async fn delete_character(id: String) -> Result<(), AppError> {
    service::delete(id).await
}

/// Brings a character back from the trash.
#[server(endpoint = "characters/restore")]
pub async fn restore_character(id: String) -> Result<(), AppError> {
    service::restore(id).await
}

/// The signed-in user's trash, most recently deleted first.
#[server(endpoint = "characters/trash")]
pub async fn list_trash() -> Result<Vec<TrashedCharacter>, AppError> {
    service::trash().await
}
