//! The `play_runs` and `play_turns` tables: every query on them.
//!
//! What the database keeps true, whatever the number of servers: turns numbered 1, 2, 3… per run
//! in the order written (`seq`, given under the run row's lock); at most one `streaming` turn per
//! run (a partial unique index); a new scene only after the run's last scene, as the player saw
//! it (`start_turn` compares the last scene's id under the lock); a turn's final state written
//! once (`… WHERE status = 'streaming'`); re-rolled turns kept (`superseded`), never overwritten.

use super::{PlayTurn, RunEnding, RunStatus, RunSummary, TurnStatus};
use crate::auth::UserId;
use crate::infra::{db::Db, llm::Usage, new_id, now_ms};
use crate::with_pool;
use sqlx::types::Json;

/// A run with what its scenes are written from: the run's own copy of the story's frame and the
/// character's persona as it is now.
pub struct Run {
    pub id: String,
    pub character_id: String,
    pub name: String,
    pub avatar: String,
    pub traits: Vec<String>,
    pub backstory: String,
    pub story_context: String,
    pub language: String,
    pub scenes: u8,
    pub opening_line: String,
    pub start_options: Vec<String>,
    pub endings: Vec<RunEnding>,
    pub status: RunStatus,
    pub ending: Option<u8>,
    pub created_at: i64,
    /// The running summary of scenes 1 to `summary_through`.
    pub summary: String,
    pub summary_through: u8,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    character_id: String,
    name: String,
    avatar: String,
    traits: Json<Vec<String>>,
    backstory: String,
    story_context: String,
    language: String,
    scenes: i32,
    opening_line: String,
    start_options: Json<Vec<String>>,
    endings: Json<Vec<(String, String)>>,
    status: String,
    ending: Option<i32>,
    created_at: i64,
    summary: String,
    summary_through: i32,
}

impl TryFrom<RunRow> for Run {
    type Error = sqlx::Error;
    fn try_from(r: RunRow) -> Result<Self, sqlx::Error> {
        let status = RunStatus::parse(&r.status).ok_or_else(|| unknown(&r.id, &r.status))?;
        Ok(Run {
            id: r.id,
            character_id: r.character_id,
            name: r.name,
            avatar: r.avatar,
            traits: r.traits.0,
            backstory: r.backstory,
            story_context: r.story_context,
            language: r.language,
            scenes: r.scenes.clamp(1, 25) as u8,
            opening_line: r.opening_line,
            start_options: r.start_options.0,
            endings: r
                .endings
                .0
                .into_iter()
                .map(|(kind, text)| RunEnding { kind, text })
                .collect(),
            status,
            ending: r.ending.map(|e| e.clamp(0, 255) as u8),
            created_at: r.created_at,
            summary: r.summary,
            summary_through: r.summary_through.clamp(0, 255) as u8,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TurnRow {
    id: String,
    scene: i32,
    choice: String,
    choice_option: Option<i32>,
    dialogue: String,
    options: Json<Vec<String>>,
    ending: Option<i32>,
    status: String,
}

impl TryFrom<TurnRow> for PlayTurn {
    type Error = sqlx::Error;
    fn try_from(r: TurnRow) -> Result<Self, sqlx::Error> {
        let status = TurnStatus::parse(&r.status).ok_or_else(|| unknown(&r.id, &r.status))?;
        Ok(PlayTurn {
            id: r.id,
            scene: r.scene.clamp(0, 255) as u8,
            choice: r.choice,
            option: r.choice_option.map(|o| o.clamp(0, 255) as u8),
            dialogue: r.dialogue,
            options: r.options.0,
            ending: r.ending.map(|e| e.clamp(0, 255) as u8),
            status,
        })
    }
}

/// A stored word this code does not know: an error in the log and a failed read.
fn unknown(id: &str, value: &str) -> sqlx::Error {
    tracing::error!(row = %id, value, "play row with an unknown status");
    sqlx::Error::Decode(format!("play row {id}: unknown status {value:?}").into())
}

const TURN_COLUMNS: &str = "id, scene, choice, choice_option, dialogue, options, ending, status";

/// Starts a run of `owner`'s character `character_id` (outside the trash) from what it has now:
/// its opening line, start options, endings and number of scenes. `None` if there is no such
/// character of theirs.
pub async fn create_run(
    db: &Db,
    owner: &UserId,
    character_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let Some(c) = crate::characters::store::find(db, owner, character_id).await? else {
        return Ok(None);
    };
    let d = c.draft;
    let scenes = d
        .scenes
        .trim()
        .parse::<u8>()
        .ok()
        .and_then(|n| crate::domain::SceneCount::new(n).ok())
        .unwrap_or_default()
        .get();
    let endings: Vec<(String, String)> = d
        .endings
        .iter()
        .filter(|e| !e.text.trim().is_empty())
        .map(|e| (e.kind.clone(), e.text.clone()))
        .collect();
    let options: Vec<String> = d
        .start_options
        .into_iter()
        .filter(|o| !o.trim().is_empty())
        .collect();
    let id = new_id();
    let now = now_ms();
    with_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO play_runs (id, owner_id, character_id, scenes, opening_line, start_options, \
             endings, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&id)
        .bind(&owner.0)
        .bind(character_id)
        .bind(i32::from(scenes))
        .bind(&d.opening_line)
        .bind(Json(&options))
        .bind(Json(&endings))
        .bind(RunStatus::Playing.as_str())
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())?
    });
    Ok(Some(id))
}

/// The run `run_id` if `owner` owns it and its character is not in the trash.
pub async fn find_run(db: &Db, owner: &UserId, run_id: &str) -> Result<Option<Run>, sqlx::Error> {
    let row: Option<RunRow> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT r.id, r.character_id, c.name, c.avatar, c.traits, c.backstory, c.story_context, \
             c.language, r.scenes, r.opening_line, r.start_options, r.endings, r.status, r.ending, \
             r.created_at, r.summary, r.summary_through \
             FROM play_runs r JOIN characters c ON c.id = r.character_id \
             WHERE r.id = $1 AND r.owner_id = $2 AND c.deleted_at IS NULL",
        )
        .bind(run_id)
        .bind(&owner.0)
        .fetch_optional(pool)
        .await?
    });
    row.map(Run::try_from).transpose()
}

/// The scenes of a run as played (re-rolled ones left out), in order. A run has at most 25
/// scenes, so this is bounded; the limit is a second guard.
pub async fn turns(db: &Db, run_id: &str) -> Result<Vec<PlayTurn>, sqlx::Error> {
    let rows: Vec<TurnRow> = with_pool!(db, pool => {
        sqlx::query_as(&format!(
            "SELECT {TURN_COLUMNS} FROM play_turns WHERE run_id = $1 AND superseded = 0 \
             ORDER BY seq LIMIT 64"
        ))
        .bind(run_id)
        .fetch_all(pool)
        .await?
    });
    rows.into_iter().map(PlayTurn::try_from).collect()
}

/// `owner`'s runs, most recently played first (of `character_id` only, if given; characters in
/// the trash left out), with how many scenes each has played.
pub async fn list_runs(
    db: &Db,
    owner: &UserId,
    character_id: Option<&str>,
    limit: i64,
) -> Result<Vec<RunSummary>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: String,
        character_id: String,
        name: String,
        scenes: i32,
        played: i64,
        status: String,
        ending: Option<i32>,
        endings: Json<Vec<(String, String)>>,
        updated_at: i64,
    }
    let rows: Vec<Row> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT r.id, r.character_id, c.name, r.scenes, \
             (SELECT COUNT(*) FROM play_turns t WHERE t.run_id = r.id AND t.superseded = 0 \
              AND t.status = 'complete') AS played, \
             r.status, r.ending, r.endings, r.updated_at \
             FROM play_runs r JOIN characters c ON c.id = r.character_id \
             WHERE r.owner_id = $1 AND c.deleted_at IS NULL AND ($2 = '' OR r.character_id = $2) \
             ORDER BY r.updated_at DESC, r.id DESC LIMIT $3",
        )
        .bind(&owner.0)
        .bind(character_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    rows.into_iter()
        .map(|r| {
            let status = RunStatus::parse(&r.status).ok_or_else(|| unknown(&r.id, &r.status))?;
            let ending = r
                .ending
                .and_then(|e| usize::try_from(e).ok()?.checked_sub(1))
                .and_then(|i| r.endings.0.get(i).map(|(kind, _)| kind.clone()))
                .or_else(|| (status == RunStatus::Ended).then(|| "ending".to_string()));
            Ok(RunSummary {
                id: r.id,
                character_id: r.character_id,
                character_name: r.name,
                scenes: r.scenes.clamp(1, 25) as u8,
                played: r.played.clamp(0, 255) as u8,
                status,
                ending,
                updated_at: r.updated_at,
            })
        })
        .collect()
}

/// What [`start_turn`] and [`reroll`] did.
pub enum Start {
    /// The choice is saved with its scene, empty and `streaming`.
    Started(PlayTurn),
    /// A scene of this run is being written; nothing was saved.
    Busy,
    /// The run is not where the player saw it (another tab played on, the scene failed, the
    /// story ended); nothing was saved.
    Moved,
}

/// Saves the player's `choice` as scene `scene` of run `run_id`, empty and `streaming`, if the
/// run's last scene is still `after` (empty: no scene yet), complete, and not the ending.
pub async fn start_turn(
    db: &Db,
    run_id: &str,
    after: &str,
    scene: u8,
    choice: &str,
    option: Option<u8>,
) -> Result<Start, sqlx::Error> {
    let turn = new_turn(scene, choice, option);
    let res: Result<Start, sqlx::Error> = with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        lock_run(run_id).execute(&mut *tx).await?;
        let last: Option<(String, String, i32)> = sqlx::query_as(
            "SELECT id, status, COALESCE(ending, 0) FROM play_turns \
             WHERE run_id = $1 AND superseded = 0 ORDER BY seq DESC LIMIT 1",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
        let verdict = match &last {
            Some((_, status, _)) if status == TurnStatus::Streaming.as_str() => Some(Start::Busy),
            Some((id, status, ending)) => (id != after
                || status != TurnStatus::Complete.as_str()
                || *ending > 0)
                .then_some(Start::Moved),
            None => (!after.is_empty()).then_some(Start::Moved),
        };
        match verdict {
            Some(v) => Ok(v),
            None => match insert_turn(run_id, &turn).execute(&mut *tx).await {
                Ok(_) => tx.commit().await.map(|_| Start::Started(turn)),
                Err(e) if is_second_streaming_turn(&e) => Ok(Start::Busy),
                Err(e) => Err(e),
            },
        }
    });
    res
}

/// Writes the run's last scene `turn_id` again: the old version is kept, marked superseded, and
/// a new `streaming` one with the same choice takes its place; a run that had ended is playing
/// again until the new last scene ends it.
pub async fn reroll(db: &Db, run_id: &str, turn_id: &str) -> Result<Start, sqlx::Error> {
    let res: Result<Start, sqlx::Error> = with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        lock_run(run_id).execute(&mut *tx).await?;
        let old: Option<TurnRow> = sqlx::query_as(&format!(
            "SELECT {TURN_COLUMNS} FROM play_turns WHERE run_id = $1 AND superseded = 0 \
             ORDER BY seq DESC LIMIT 1"
        ))
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
        match old {
            None => Ok(Start::Moved),
            Some(o) if o.id != turn_id => Ok(Start::Moved),
            Some(o) if o.status == TurnStatus::Streaming.as_str() => Ok(Start::Busy),
            Some(o) => {
                let option = o.choice_option.map(|v| v.clamp(0, 255) as u8);
                let turn = new_turn(o.scene.clamp(0, 255) as u8, &o.choice, option);
                sqlx::query("UPDATE play_turns SET superseded = 1, updated_at = $1 WHERE id = $2")
                    .bind(now_ms())
                    .bind(&o.id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE play_runs SET status = $1, ending = NULL WHERE id = $2")
                    .bind(RunStatus::Playing.as_str())
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
                match insert_turn(run_id, &turn).execute(&mut *tx).await {
                    Ok(_) => tx.commit().await.map(|_| Start::Started(turn)),
                    Err(e) if is_second_streaming_turn(&e) => Ok(Start::Busy),
                    Err(e) => Err(e),
                }
            }
        }
    });
    res
}

fn new_turn(scene: u8, choice: &str, option: Option<u8>) -> PlayTurn {
    PlayTurn {
        id: new_id(),
        scene,
        choice: choice.to_string(),
        option,
        dialogue: String::new(),
        options: Vec::new(),
        ending: None,
        status: TurnStatus::Streaming,
    }
}

/// Takes the run's row lock for the transaction (a run's writes queue) and moves it to the top.
fn lock_run<'q, DB: sqlx::Database>(
    run_id: &'q str,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query("UPDATE play_runs SET updated_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(run_id)
}

/// The one INSERT into `play_turns`, under the run's lock: the turn takes the run's next `seq`
/// and starts its heartbeat.
fn insert_turn<'q, DB: sqlx::Database>(
    run_id: &'q str,
    t: &'q PlayTurn,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i32>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let now = now_ms();
    sqlx::query(
        "INSERT INTO play_turns (id, run_id, seq, scene, choice, choice_option, status, heartbeat_at, \
         created_at, updated_at) \
         SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5, $6, $7, $7, $7 \
         FROM play_turns WHERE run_id = $2",
    )
    .bind(t.id.as_str())
    .bind(run_id)
    .bind(i32::from(t.scene))
    .bind(t.choice.as_str())
    .bind(t.option.map(i32::from))
    .bind(TurnStatus::Streaming.as_str())
    .bind(now)
}

/// A unique violation of `play_turns_one_streaming`.
fn is_second_streaming_turn(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(e) = e else {
        return false;
    };
    e.is_unique_violation()
        && (e.constraint() == Some("play_turns_one_streaming")
            || e.message().ends_with("play_turns.run_id"))
}

/// Saves the dialogue of a scene still being written and beats its heartbeat; `false` if it is no
/// longer streaming (given up as interrupted).
pub async fn flush(db: &Db, turn_id: &str, dialogue: &str) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let n = with_pool!(db, pool => {
        sqlx::query(
            "UPDATE play_turns SET dialogue = $1, heartbeat_at = $2, updated_at = $2 \
             WHERE id = $3 AND status = $4",
        )
        .bind(dialogue)
        .bind(now)
        .bind(turn_id)
        .bind(TurnStatus::Streaming.as_str())
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// How a scene ends, as [`finish`] saves it.
pub struct Ending<'a> {
    pub dialogue: &'a str,
    pub options: &'a [String],
    pub ending: Option<u8>,
    pub status: TurnStatus,
    pub usage: Usage,
    pub provider: &'a str,
}

/// Saves a scene's final text and state, only over `streaming` (an interruption set first
/// stays, though the text is saved); a complete last scene ends the run with its ending.
/// Returns the status the turn ends with (`None` if it is gone).
pub async fn finish(
    db: &Db,
    run_id: &str,
    turn_id: &str,
    e: &Ending<'_>,
) -> Result<Option<TurnStatus>, sqlx::Error> {
    let now = now_ms();
    let ended: Option<(String,)> = with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        let ended: Option<(String,)> = sqlx::query_as(
            "UPDATE play_turns SET dialogue = $1, options = $2, ending = $3, \
             status = CASE WHEN status = $4 THEN $5 ELSE status END, heartbeat_at = NULL, \
             input_tokens = $6, output_tokens = $7, provider = $8, updated_at = $9 \
             WHERE id = $10 RETURNING status",
        )
        .bind(e.dialogue)
        .bind(Json(e.options))
        .bind(e.ending.map(i32::from))
        .bind(TurnStatus::Streaming.as_str())
        .bind(e.status.as_str())
        .bind(e.usage.input_tokens as i32)
        .bind(e.usage.output_tokens as i32)
        .bind(e.provider)
        .bind(now)
        .bind(turn_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let (Some((status,)), Some(ending)) = (&ended, e.ending) {
            if status == TurnStatus::Complete.as_str() {
                sqlx::query("UPDATE play_runs SET status = $1, ending = $2, updated_at = $3 WHERE id = $4")
                    .bind(RunStatus::Ended.as_str())
                    .bind(i32::from(ending))
                    .bind(now)
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        ended
    });
    ended
        .map(|(s,)| TurnStatus::parse(&s).ok_or_else(|| unknown(turn_id, &s)))
        .transpose()
}

/// Marks `interrupted` the scenes of `run_id` still `streaming` whose heartbeat is older than
/// `older_than_ms` (their server is gone), text kept; everywhere when `run_id` is `None` (at
/// start-up). Returns how many.
pub async fn interrupt_stale(
    db: &Db,
    run_id: Option<&str>,
    older_than_ms: i64,
) -> Result<u64, sqlx::Error> {
    let n = with_pool!(db, pool => {
        sqlx::query(
            "UPDATE play_turns SET status = $1, heartbeat_at = NULL, updated_at = $2 \
             WHERE status = $3 AND COALESCE(heartbeat_at, updated_at) < $4 \
             AND ($5 = '' OR run_id = $5)",
        )
        .bind(TurnStatus::Interrupted.as_str())
        .bind(now_ms())
        .bind(TurnStatus::Streaming.as_str())
        .bind(older_than_ms)
        .bind(run_id.unwrap_or(""))
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(n)
}

/// Saves a run's running summary of scenes 1 to `through`, only forward: a summary covering fewer
/// scenes than the stored one (written late, by another server) is dropped. `true` if saved.
pub async fn save_summary(
    db: &Db,
    run_id: &str,
    summary: &str,
    through: u8,
) -> Result<bool, sqlx::Error> {
    let n = with_pool!(db, pool => {
        sqlx::query(
            "UPDATE play_runs SET summary = $1, summary_through = $2 \
             WHERE id = $3 AND summary_through < $2",
        )
        .bind(summary)
        .bind(i32::from(through))
        .bind(run_id)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}
