//! The `characters` table: every query on it. Reads are scoped to their owner; someone else's
//! character reads as missing.

use super::{CharacterFilter, CharacterSort, CharacterSummary, CharacterView};
use crate::auth::UserId;
use crate::domain::{CharacterDraft, CharacterSpec, DraftEnding};
use crate::infra::{db::Db, new_id, now_ms};
use crate::with_pool;
use sqlx::types::Json as SqlJson;

#[derive(sqlx::FromRow)]
struct CharacterRow {
    id: String,
    name: String,
    traits: SqlJson<Vec<String>>,
    age: i32,
    gender: String,
    voice: String,
    scenes: i32,
    language: String,
    avatar: String,
    backstory: String,
    story_context: String,
    opening_line: String,
    start_options: SqlJson<Vec<String>>,
    endings: SqlJson<Vec<DraftEnding>>,
    created_at: i64,
    updated_at: i64,
    /// The card it was imported from, if it was.
    card: Option<String>,
    tags: SqlJson<Vec<String>>,
    favourite: i32,
}

impl CharacterRow {
    fn into_view(self) -> CharacterView {
        CharacterView {
            id: self.id,
            draft: CharacterDraft {
                name: self.name,
                traits: self.traits.0,
                age: self.age.to_string(),
                gender: self.gender,
                voice: self.voice,
                scenes: self.scenes.to_string(),
                language: self.language,
                avatar: self.avatar,
                backstory: self.backstory,
                story_context: self.story_context,
                opening_line: self.opening_line,
                start_options: self.start_options.0,
                endings: self.endings.0,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
            lorebook: self
                .card
                .and_then(|c| serde_json::from_str(&c).ok())
                .map(|card| crate::domain::card::lorebook(&card))
                .unwrap_or_default(),
            tags: self.tags.0,
            favourite: self.favourite != 0,
        }
    }
}

/// Binds a character's values where the INSERT and the UPDATE both expect them: `$1` its id, `$2`
/// its owner, `$3`–`$15` its fields (with `$lists` from [`lists`]), `$16` the time.
macro_rules! bind_character {
    ($query:expr, $id:expr, $owner:expr, $spec:expr, $lists:expr, $now:expr) => {
        $query
            .bind($id)
            .bind(&$owner.0)
            .bind($spec.seed.name.as_str())
            .bind(&$lists.0)
            .bind($spec.seed.age.get() as i32)
            .bind($spec.seed.gender.as_str())
            .bind($spec.voice.as_str())
            .bind($spec.scenes.get() as i32)
            .bind($spec.seed.language.as_str())
            .bind($spec.avatar.as_str())
            .bind($spec.story.backstory.as_str())
            .bind($spec.story.story_context.as_str())
            .bind($spec.story.opening_line.as_str())
            .bind(&$lists.1)
            .bind(&$lists.2)
            .bind($now)
    };
}

const COLUMNS: &str = "id, name, traits, age, gender, voice, scenes, language, avatar, backstory, \
                       story_context, opening_line, start_options, endings, created_at, updated_at, card, \
                       tags, favourite";

pub async fn insert(db: &Db, owner: &UserId, spec: &CharacterSpec) -> Result<String, sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    let lists = lists(spec);
    with_pool!(db, pool => {
        bind_character!(
            sqlx::query(
                "INSERT INTO characters (id, owner_id, name, traits, age, gender, voice, scenes, language, \
                 avatar, backstory, story_context, opening_line, start_options, endings, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
            ),
            &id, owner, spec, lists, now
        )
        .execute(pool)
        .await.map(|_| ())?
    });
    Ok(id)
}

type Lists = (
    SqlJson<Vec<String>>,
    SqlJson<Vec<String>>,
    SqlJson<Vec<DraftEnding>>,
);

/// The list columns of a character, as stored (JSON).
fn lists(spec: &CharacterSpec) -> Lists {
    let traits = SqlJson(spec.seed.traits.to_strings());
    let options = SqlJson(
        spec.story
            .start_options
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    );
    let endings = SqlJson(
        spec.story
            .endings
            .iter()
            .map(DraftEnding::from)
            .collect::<Vec<_>>(),
    );
    (traits, options, endings)
}

/// Replaces every field of `owner`'s character `id` (not in the trash); `false` if there is none.
pub async fn update(
    db: &Db,
    owner: &UserId,
    id: &str,
    spec: &CharacterSpec,
    if_version: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let lists = lists(spec);
    // `updated_at` is the row's version: it only grows, by at least 1 each update, so an update
    // made "if the version is still N" (`if_version`, the REST API's If-Match) cannot overwrite a
    // change made after N, even within the same millisecond.
    let n = with_pool!(db, pool => {
        bind_character!(
            sqlx::query(
            "UPDATE characters SET name = $3, traits = $4, age = $5, gender = $6, voice = $7, \
             scenes = $8, language = $9, avatar = $10, backstory = $11, story_context = $12, \
             opening_line = $13, start_options = $14, endings = $15, \
             updated_at = CASE WHEN $16 > updated_at THEN $16 ELSE updated_at + 1 END \
             WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL AND ($17 = 0 OR updated_at = $17)",
            ),
            id, owner, spec, lists, now_ms()
        )
        .bind(if_version.unwrap_or(0))
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// Marks `owner`'s character `id` (not in the trash) as a favourite or not; `false` if there is
/// none. Not an edit: its version (`updated_at`) stays.
pub async fn set_favourite(
    db: &Db,
    owner: &UserId,
    id: &str,
    favourite: bool,
) -> Result<bool, sqlx::Error> {
    let n = with_pool!(db, pool => {
        sqlx::query("UPDATE characters SET favourite = $3 WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL")
            .bind(id)
            .bind(&owner.0)
            .bind(i32::from(favourite))
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

/// Sets the avatar of `owner`'s character `id` (not in the trash); `false` if there is none.
pub async fn set_avatar(
    db: &Db,
    owner: &UserId,
    id: &str,
    avatar: &str,
) -> Result<bool, sqlx::Error> {
    let n = with_pool!(db, pool => {
        sqlx::query(
            "UPDATE characters SET avatar = $3, updated_at = CASE WHEN $4 > updated_at THEN $4 ELSE updated_at + 1 END \
             WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(&owner.0)
        .bind(avatar)
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// The tags of `owner`'s character `id` (not in the trash); `None` if there is none.
pub async fn tags_of(
    db: &Db,
    owner: &UserId,
    id: &str,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let row: Option<(SqlJson<Vec<String>>,)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT tags FROM characters WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL")
            .bind(id)
            .bind(&owner.0)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(|(t,)| t.0))
}

/// Sets the tags of `owner`'s character `id` (not in the trash) to `tags` — only if they are
/// still `if_was` when that is given (a change made meanwhile, by another tab or server, is not
/// overwritten). `false` if nothing was written. Not an edit: its version stays.
pub async fn set_tags(
    db: &Db,
    owner: &UserId,
    id: &str,
    tags: &crate::domain::Tags,
    if_was: Option<&[String]>,
) -> Result<bool, sqlx::Error> {
    // Distinct already: `Tags` keeps one of each, ignoring case.
    let keys: Vec<String> = tags.iter().map(str::to_lowercase).collect();
    let tags = SqlJson(tags.to_strings());
    // Only if still as read (when `if_was` is given); its index rows in the same transaction.
    let (cas, was) = match if_was {
        Some(was) => (" AND tags = $4", SqlJson(was.to_vec())),
        None => ("", SqlJson(Vec::new())),
    };
    let sql = format!(
        "UPDATE characters SET tags = $3 WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL{cas}"
    );
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        let mut q = sqlx::query(&sql).bind(id).bind(&owner.0).bind(&tags);
        if if_was.is_some() {
            q = q.bind(&was);
        }
        if q.execute(&mut *tx).await?.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM character_tags WHERE character_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for key in &keys {
            sqlx::query(
                "INSERT INTO character_tags (character_id, owner_id, tag, created_at) \
                 SELECT id, owner_id, $2, created_at FROM characters WHERE id = $1",
            )
            .bind(id)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    });
    Ok(true)
}

/// Moves `owner`'s character `id` to the trash at `now`; `false` if there is no such character
/// out of the trash.
pub async fn trash(db: &Db, owner: &UserId, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let n = with_pool!(db, pool => {
        sqlx::query("UPDATE characters SET deleted_at = $3 WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL")
            .bind(id)
            .bind(&owner.0)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

/// Brings `owner`'s character `id` back from the trash if it was deleted at or after `cutoff`;
/// `false` if there is no such character in the trash.
pub async fn restore(
    db: &Db,
    owner: &UserId,
    id: &str,
    cutoff: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = with_pool!(db, pool => {
        sqlx::query(
            "UPDATE characters SET deleted_at = NULL, updated_at = $4 \
             WHERE id = $1 AND owner_id = $2 AND deleted_at IS NOT NULL AND deleted_at >= $3",
        )
        .bind(id)
        .bind(&owner.0)
        .bind(cutoff)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// `owner`'s characters in the trash deleted at or after `cutoff`, most recently deleted first
/// (at most `limit`).
pub async fn trash_for(
    db: &Db,
    owner: &UserId,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<super::TrashedCharacter>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64)> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT id, name, avatar, deleted_at FROM characters \
             WHERE owner_id = $1 AND deleted_at IS NOT NULL AND deleted_at >= $2 \
             ORDER BY deleted_at DESC, id DESC LIMIT $3",
        )
        .bind(&owner.0)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|(id, name, avatar, deleted_at)| super::TrashedCharacter {
            id,
            name,
            avatar,
            deleted_at,
        })
        .collect())
}

/// Removes for good every character (with its chats: they cascade) deleted before `cutoff`.
pub async fn purge_trash(db: &Db, cutoff: i64) -> Result<u64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query("DELETE FROM characters WHERE deleted_at IS NOT NULL AND deleted_at < $1")
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: String,
    name: String,
    traits: SqlJson<Vec<String>>,
    avatar: String,
    opening_line: String,
    created_at: i64,
    tags: SqlJson<Vec<String>>,
    favourite: i32,
    /// How many rows a bounded search read (Postgres' first try; see [`search_page`]).
    #[sqlx(default)]
    scanned: i64,
}

/// How many of the owner's rows, in order, Postgres searches one by one before asking the index.
const SCAN: i64 = 2_000;

/// What [`page_for`] was asked to start after.
pub enum After<'a> {
    /// The first page.
    Start,
    /// After the character with this id (the last one of the previous page).
    Character(&'a str),
}

/// One page of `owner`'s characters, newest first by keyset on `(created_at, id)`: up to `limit`
/// after `after`, and whether more remain. `None` when `after` names a character `owner` does not
/// have (someone else's cursor reads as missing).
pub async fn page_for(
    db: &Db,
    owner: &UserId,
    after: After<'_>,
    limit: i64,
) -> Result<Option<(Vec<CharacterSummary>, bool)>, sqlx::Error> {
    search_page(db, owner, &CharacterFilter::default(), after, limit).await
}

/// A value bound to a query built at run time.
enum Arg {
    Text(String),
    Int(i64),
}

/// The token that stands for `owner` in SQLite's full-text index (see the migration
/// `20261207090005_character_search.sql`): `o` and their id without dashes.
fn owner_token(owner: &UserId) -> String {
    crate::infra::db::owner_token(&owner.0)
}

/// One page of `owner`'s characters that `filter` finds (its words in the full-text index — FTS5
/// on SQLite, holding a token for the owner so a search reads only the owner's entries; the
/// `search` tsvector on Postgres — its trait, its language), in its order by keyset on (the
/// order's column, `id`): up to `limit` after `after`, and whether more remain. `None` when
/// `after` names a character `owner` does not have.
///
/// On SQLite a search is driven from the FTS5 index (a `CROSS JOIN` keeps it the outer loop), and
/// "newest first" is the index's own rowid order, descending — insertion order, which is creation
/// order — so the first page stops after its rows instead of sorting every match.
pub async fn search_page(
    db: &Db,
    owner: &UserId,
    filter: &CharacterFilter,
    after: After<'_>,
    limit: i64,
) -> Result<Option<(Vec<CharacterSummary>, bool)>, sqlx::Error> {
    use crate::infra::db::Backend;
    let sqlite = db.backend() == Backend::Sqlite;
    let cursor: Option<(i64, i64, String, i64)> = match after {
        After::Start => None,
        After::Character(id) => {
            // The rowid only on SQLite (Postgres has none; 0 stands in).
            let sql = if sqlite {
                "SELECT rowid, created_at, name, chatted_at FROM characters WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL"
            } else {
                "SELECT 0::BIGINT, created_at, name, chatted_at FROM characters WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL"
            };
            let found: Option<(i64, i64, String, i64)> = with_pool!(db, pool => {
                sqlx::query_as(sql)
                    .bind(id)
                    .bind(&owner.0)
                    .fetch_optional(pool)
                    .await?
            });
            if found.is_none() {
                return Ok(None);
            }
            found
        }
    };
    let terms = filter.terms();
    let fts = sqlite && !terms.is_empty();
    let mut args = vec![Arg::Text(owner.0.clone())];
    let arg = |a: Arg, args: &mut Vec<Arg>| {
        args.push(a);
        format!("${}", args.len())
    };
    let columns =
        "c.id, c.name, c.traits, c.avatar, c.opening_line, c.created_at, c.tags, c.favourite";
    // The statement's parts: the search, the other filters, the keyset, the order.
    let mut search = String::new();
    if !terms.is_empty() {
        // Every word as a prefix. The words are letters and digits only (`CharacterFilter::terms`),
        // so neither index reads anything in them as syntax.
        if sqlite {
            // With the owner's token, so only the owner's entries are read.
            let words: Vec<String> = terms
                .iter()
                .map(|t| format!("{{name traits backstory story_context}} : \"{t}\"*"))
                .collect();
            let query = format!(
                "owner : \"{}\" AND {}",
                owner_token(owner),
                words.join(" AND ")
            );
            let p = arg(Arg::Text(query), &mut args);
            search = format!(" AND characters_fts MATCH {p}");
        } else {
            let words: Vec<String> = terms.iter().map(|t| format!("{t}:*")).collect();
            let p = arg(Arg::Text(words.join(" & ")), &mut args);
            search = format!(" AND c.search @@ to_tsquery('simple', {p})");
        }
    }
    let mut filters = String::new();
    let language = filter.language.trim();
    if !language.is_empty() {
        let p = arg(Arg::Text(language.to_string()), &mut args);
        filters.push_str(&format!(" AND c.language = {p}"));
    }
    let trait_name = filter.trait_name.trim();
    if !trait_name.is_empty() {
        let p = arg(Arg::Text(trait_name.to_lowercase()), &mut args);
        filters.push_str(&if sqlite {
            format!(" AND EXISTS (SELECT 1 FROM json_each(c.traits) t WHERE lower(t.value) = {p})")
        } else {
            format!(" AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(c.traits) t(v) WHERE lower(t.v) = {p})")
        });
    }
    // A tag is found through `character_tags` (its keys lower-cased by the app, so any script
    // matches alike). Newest first without a search, the tag's own index drives the page — its
    // rows in order, as many as the page needs, however rare or common the tag; otherwise the tag
    // is one more condition.
    let tag = filter.tag.trim();
    let tag_driven = !tag.is_empty() && terms.is_empty() && filter.sort == CharacterSort::Created;
    if !tag.is_empty() {
        let p = arg(Arg::Text(tag.to_lowercase()), &mut args);
        filters.push_str(&if tag_driven {
            format!(" AND t.owner_id = $1 AND t.tag = {p}")
        } else {
            format!(
                " AND c.id IN (SELECT character_id FROM character_tags WHERE owner_id = $1 AND tag = {p})"
            )
        });
    }
    if filter.favourites {
        filters.push_str(" AND c.favourite = 1");
    }
    let id_col = if tag_driven { "t.character_id" } else { "c.id" };
    let (column, descending) = match filter.sort {
        CharacterSort::Created if tag_driven => ("t.created_at", true),
        CharacterSort::Created if fts => ("characters_fts.rowid", true),
        CharacterSort::Created => ("c.created_at", true),
        CharacterSort::Name => ("c.name", false),
        CharacterSort::Chatted => ("c.chatted_at", true),
    };
    let by_rowid = column == "characters_fts.rowid";
    let mut keyset = String::new();
    if let Some((rowid, created_at, name, chatted_at)) = cursor {
        let op = if descending { "<" } else { ">" };
        if by_rowid {
            let r = arg(Arg::Int(rowid), &mut args);
            keyset = format!(" AND {column} {op} {r}");
        } else {
            let id = match after {
                After::Character(id) => id.to_string(),
                After::Start => String::new(),
            };
            let key = match filter.sort {
                CharacterSort::Created => Arg::Int(created_at),
                CharacterSort::Name => Arg::Text(name),
                CharacterSort::Chatted => Arg::Int(chatted_at),
            };
            let k = arg(key, &mut args);
            let i = arg(Arg::Text(id), &mut args);
            // A row comparison, which both databases read as one range of the order's index (an
            // `a < k OR (a = k AND id < i)` had Postgres read and sort every row before it).
            keyset = format!(" AND ({column}, {id_col}) {op} ({k}, {i})");
        }
    }
    let dir = if descending { "DESC" } else { "ASC" };
    let order = if by_rowid {
        format!(" ORDER BY {column} {dir}")
    } else {
        format!(" ORDER BY {column} {dir}, {id_col} {dir}")
    };
    let l = arg(Arg::Int(limit + 1), &mut args);
    let from = if fts {
        "FROM characters_fts CROSS JOIN characters c ON c.rowid = characters_fts.rowid"
    } else if tag_driven && sqlite {
        // `CROSS JOIN` keeps the tag's index the outer loop on SQLite.
        "FROM character_tags t CROSS JOIN characters c ON c.id = t.character_id"
    } else if tag_driven {
        "FROM character_tags t JOIN characters c ON c.id = t.character_id"
    } else {
        "FROM characters c"
    };
    let whole = format!(
        "SELECT {columns} {from} WHERE c.owner_id = $1 AND c.deleted_at IS NULL\
         {search}{filters}{keyset}{order} LIMIT {l}"
    );
    // A filtered list is planned for its own values each time (not cached as a prepared
    // statement): a generic plan does not know how many characters the owner has or how common
    // the words are, and Postgres' chose to read every match of a common word (80 ms at 1,000,000
    // characters, against 2 ms planned for the values).
    let narrowed = filter.narrows();
    let run = |sql: String, args: &[Arg]| {
        let args: Vec<Arg> = args
            .iter()
            .map(|a| match a {
                Arg::Text(t) => Arg::Text(t.clone()),
                Arg::Int(n) => Arg::Int(*n),
            })
            .collect();
        async move {
            let rows: Vec<SummaryRow> = with_pool!(db, pool => {
                let mut q = sqlx::query_as(&sql).persistent(!narrowed);
                for a in args {
                    q = match a {
                        Arg::Text(t) => q.bind(t),
                        Arg::Int(n) => q.bind(n),
                    };
                }
                q.fetch_all(pool).await?
            });
            Ok::<_, sqlx::Error>(rows)
        }
    };
    let mut rows = if !sqlite && !search.is_empty() {
        // Postgres: first the owner's next rows in order, a bounded number, searched one by one —
        // a common word fills the page from the first few hundred. Only when they do not (a
        // rarer word) is the search index asked, for every match.
        let recent = format!(
            "WITH recent AS (SELECT c.* FROM characters c WHERE c.owner_id = $1 \
             AND c.deleted_at IS NULL{keyset}{order} LIMIT {SCAN}) \
             SELECT {columns}, (SELECT COUNT(*) FROM recent) AS scanned FROM recent c \
             WHERE TRUE{search}{filters}{order} LIMIT {l}"
        );
        let first = run(recent, &args).await?;
        let whole_page = first.len() as i64 > limit;
        let read_all = first.first().is_some_and(|r| r.scanned < SCAN);
        if whole_page || read_all {
            first
        } else {
            run(whole, &args).await?
        }
    } else {
        run(whole, &args).await?
    };
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    let list = rows
        .into_iter()
        .map(|r| CharacterSummary {
            id: r.id,
            name: r.name,
            traits: r.traits.0,
            avatar: r.avatar,
            opening_line: r.opening_line,
            created_at: r.created_at,
            tags: r.tags.0,
            favourite: r.favourite != 0,
        })
        .collect();
    Ok(Some((list, more)))
}

/// The first page of `owner`'s characters at the largest page size, newest first.
pub async fn list_for(db: &Db, owner: &UserId) -> Result<Vec<CharacterSummary>, sqlx::Error> {
    let first = page_for(db, owner, After::Start, super::MAX_PAGE).await?;
    Ok(first.map(|(list, _)| list).unwrap_or_default())
}

/// The character `id` if `owner` owns it and it is not in the trash; someone else's character is
/// `None`, like a missing one.
pub async fn find(db: &Db, owner: &UserId, id: &str) -> Result<Option<CharacterView>, sqlx::Error> {
    let row: Option<CharacterRow> = with_pool!(db, pool => {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM characters WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL"))
            .bind(id)
            .bind(&owner.0)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(CharacterRow::into_view))
}

/// Up to `limit` of `owner`'s characters not in the trash, oldest first, whole, each with the
/// card it was imported from (if any, as stored). For the bulk export.
pub async fn all_with_cards(
    db: &Db,
    owner: &UserId,
    limit: i64,
) -> Result<Vec<(CharacterView, Option<String>)>, sqlx::Error> {
    let rows: Vec<CharacterRow> = with_pool!(db, pool => {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM characters WHERE owner_id = $1 AND deleted_at IS NULL \
             ORDER BY created_at, id LIMIT $2"
        ))
        .bind(&owner.0)
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| {
            let card = r.card.clone();
            (r.into_view(), card)
        })
        .collect())
}

/// How many characters `owner` has outside the trash.
pub async fn count_for(db: &Db, owner: &UserId) -> Result<i64, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM characters WHERE owner_id = $1 AND deleted_at IS NULL")
            .bind(&owner.0)
            .fetch_one(pool)
            .await
    })
}
