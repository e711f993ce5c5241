//! What the play server functions do: start a run, read runs, play a scene (saving the choice and
//! starting the [`TurnJob`] that writes it), re-roll a scene; and, at start-up, give up the scenes
//! whose server died ([`interrupt_stale_turns`]). Queries are in [`super::store`].

use super::relay::TurnJob;
use super::{store, PlayEvent, PlayTurn, RunSummary, RunView, TurnStatus, RUNS_PAGE};
use crate::auth::{require_user, UserId};
use crate::domain::{Pacing, PlayChoice};
use crate::error::{AppError, OrInternal};
use crate::infra::{db::Db, llm::prompts, now_ms, AppState};
use crate::limits;
use leptos::server_fn::codec::TextStream;

/// What a second scene requested while one is being written is told.
pub const BUSY: &str = "A scene is still being written in this story. Wait for it to finish.";
/// What a choice made on a stale page is told.
pub const MOVED: &str =
    "The story has moved on since this page was loaded (another tab, or a scene that needs a retry). Reload to continue.";

/// Marks `interrupted` the scenes still `streaming` whose heartbeat is older than the configured
/// `REPLY_STALE_SECS` (their server is gone): in `run_id`, or everywhere at start-up.
pub async fn interrupt_stale_turns(
    db: &Db,
    stale_after: std::time::Duration,
    run_id: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let cutoff = now_ms() - stale_after.as_millis() as i64;
    let n = store::interrupt_stale(db, run_id, cutoff).await?;
    if n > 0 {
        tracing::warn!(
            turns = n,
            "play scenes whose server stopped writing them are marked interrupted"
        );
    }
    Ok(n)
}

use crate::infra::check_id;

#[tracing::instrument(skip_all)]
pub async fn start(character_id: String) -> Result<String, AppError> {
    let user = require_user().await?;
    let id = start_for(&AppState::get()?.db, &user, &character_id).await?;
    leptos_axum::redirect(&format!("/play/{id}"));
    Ok(id)
}

/// Starts a run of `user`'s character (the app's server function, or the REST API).
pub async fn start_for(db: &Db, user: &UserId, character_id: &str) -> Result<String, AppError> {
    check_id(character_id)?;
    let id = store::create_run(db, user, character_id)
        .await
        .or_internal("start run")?
        .ok_or(AppError::NotFound)?;
    tracing::info!("play run started");
    Ok(id)
}

#[tracing::instrument(skip_all)]
pub async fn get(id: String) -> Result<RunView, AppError> {
    let user = require_user().await?;
    get_for(&AppState::get()?, &user, &id).await
}

/// `user`'s run `id` with every scene played.
pub async fn get_for(state: &AppState, user: &UserId, id: &str) -> Result<RunView, AppError> {
    check_id(id)?;
    view(state, user, id).await
}

/// The run and its scenes, a scene whose server died marked interrupted first.
async fn load(
    state: &AppState,
    user: &UserId,
    id: &str,
) -> Result<(store::Run, Vec<PlayTurn>), AppError> {
    let run = store::find_run(&state.db, user, id)
        .await
        .or_internal("load run")?
        .ok_or(AppError::NotFound)?;
    let mut turns = store::turns(&state.db, id)
        .await
        .or_internal("load scenes")?;
    // Only a run whose last scene is still being written can have one to give up.
    if turns
        .last()
        .is_some_and(|t| t.status == TurnStatus::Streaming)
    {
        let n = interrupt_stale_turns(&state.db, state.config.replies.stale_after, Some(id))
            .await
            .or_internal("check scenes")?;
        if n > 0 {
            turns = store::turns(&state.db, id)
                .await
                .or_internal("load scenes")?;
        }
    }
    Ok((run, turns))
}

/// The run as its page shows it.
async fn view(state: &AppState, user: &UserId, id: &str) -> Result<RunView, AppError> {
    let (run, turns) = load(state, user, id).await?;
    Ok(view_of(state, run, turns))
}

fn view_of(state: &AppState, run: store::Run, turns: Vec<PlayTurn>) -> RunView {
    RunView {
        id: run.id,
        character_id: run.character_id,
        character_name: run.name,
        avatar: run.avatar,
        scenes: run.scenes,
        opening_line: run.opening_line,
        start_options: run.start_options,
        endings: run.endings,
        status: run.status,
        ending: run.ending,
        turns,
        offline: state.llm.is_offline(),
        created_at: run.created_at,
        summary: run.summary,
        summary_through: run.summary_through,
    }
}

#[tracing::instrument(skip_all)]
pub async fn list(
    character_id: Option<String>,
    limit: Option<i64>,
) -> Result<Vec<RunSummary>, AppError> {
    let user = require_user().await?;
    list_for(&AppState::get()?.db, &user, character_id, limit).await
}

/// `user`'s runs (of `character_id`, if given), most recently played first.
pub async fn list_for(
    db: &Db,
    user: &UserId,
    character_id: Option<String>,
    limit: Option<i64>,
) -> Result<Vec<RunSummary>, AppError> {
    let character_id = character_id.filter(|c| !c.is_empty());
    if let Some(c) = &character_id {
        // Someone else's character has no runs to list: it is not found.
        check_id(c)?;
        crate::characters::store::find(db, user, c)
            .await
            .or_internal("load character")?
            .ok_or(AppError::NotFound)?;
    }
    let limit = limit.unwrap_or(RUNS_PAGE).clamp(1, RUNS_PAGE);
    store::list_runs(db, user, character_id.as_deref(), limit)
        .await
        .or_internal("list runs")
}

/// Plays the scene after `after` with the player's `choice`, streaming it.
#[tracing::instrument(skip_all, fields(run_id = %run_id))]
pub async fn turn(
    run_id: String,
    after: String,
    choice: PlayChoice,
) -> Result<TextStream<AppError>, AppError> {
    let user = require_user().await?;
    turn_for(&AppState::get()?, user, run_id, after, choice).await
}

/// [`turn`] for `user`, however they are signed in (the REST API streams the same events).
pub async fn turn_for(
    state: &AppState,
    user: UserId,
    run_id: String,
    after: String,
    choice: PlayChoice,
) -> Result<TextStream<AppError>, AppError> {
    check_id(&run_id)?;
    if after.len() > 64 {
        return Err(AppError::BadRequest("`after` is not a scene.".into()));
    }
    let state = state.clone();
    let (run, turns) = load(&state, &user, &run_id).await?;
    let choice = choice
        .parse(&super::offered(&run.start_options, &turns))
        .map_err(|e| AppError::BadRequest(e.0))?;
    let scene = super::next_scene(&turns);
    // Within the user's limits, then the choice saved before the model is called: unless a
    // scene is being written or the story is not where the player saw it.
    let slot = limits::service::begin_model_call(&state, &user).await?;
    let option = choice.option().map(|i| i as u8);
    let turn = match store::start_turn(&state.db, &run_id, &after, scene, choice.text(), option)
        .await
        .or_internal("save choice")?
    {
        store::Start::Started(t) => t,
        store::Start::Busy => return Err(AppError::Conflict(BUSY.into())),
        store::Start::Moved => return Err(AppError::Conflict(MOVED.into())),
    };
    tracing::info!(scene, "play scene started");
    Ok(spawn(&state, user, &run, &turns, turn, slot, 0))
}

/// The form post of a choice (no JavaScript): plays the scene to its end, then sends the
/// browser back to the run, where it is shown (or its failure, with a retry).
#[tracing::instrument(skip_all, fields(run_id = %run_id))]
pub async fn choose(
    run_id: String,
    after: String,
    option: Option<u8>,
    action: String,
) -> Result<(), AppError> {
    use futures::StreamExt;
    let stream = turn(run_id.clone(), after, PlayChoice { option, action }).await?;
    let mut stream = stream.into_inner();
    while stream.next().await.is_some() {}
    leptos_axum::redirect(&format!("/play/{run_id}"));
    Ok(())
}

/// Writes the run's last scene again (the old one kept), streaming it.
#[tracing::instrument(skip_all, fields(run_id = %run_id))]
pub async fn reroll(run_id: String, turn_id: String) -> Result<TextStream<AppError>, AppError> {
    let user = require_user().await?;
    reroll_for(&AppState::get()?, user, &run_id, &turn_id).await
}

/// [`reroll`] for `user`, however they are signed in (the REST API re-rolls too).
pub async fn reroll_for(
    state: &AppState,
    user: UserId,
    run_id: &str,
    turn_id: &str,
) -> Result<TextStream<AppError>, AppError> {
    check_id(run_id)?;
    check_id(turn_id)?;
    let state = state.clone();
    let (run, turns) = load(&state, &user, run_id).await?;
    if !turns.iter().any(|t| t.id == turn_id) {
        return Err(AppError::NotFound);
    }
    let slot = limits::service::begin_model_call(&state, &user).await?;
    let turn = match store::reroll(&state.db, run_id, turn_id)
        .await
        .or_internal("re-roll scene")?
    {
        store::Start::Started(t) => t,
        store::Start::Busy => return Err(AppError::Conflict(BUSY.into())),
        store::Start::Moved => return Err(AppError::Conflict(MOVED.into())),
    };
    tracing::info!(scene = turn.scene, "play scene re-rolled");
    // Another take: a different variation of the same scene.
    let variation = now_ms().unsigned_abs();
    Ok(spawn(&state, user, &run, &turns, turn, slot, variation))
}

/// Builds the scene's request from the run as it was before this scene, and starts the task
/// that writes it; returns the stream of its events.
fn spawn(
    state: &AppState,
    user: UserId,
    run: &store::Run,
    turns: &[PlayTurn],
    turn: PlayTurn,
    slot: limits::service::Slot,
    variation: u64,
) -> TextStream<AppError> {
    // The story so far: the complete scenes before this one.
    let played: Vec<&PlayTurn> = turns
        .iter()
        .filter(|t| t.scene < turn.scene && t.status == TurnStatus::Complete)
        .collect();
    let story: Vec<(String, String)> = played
        .iter()
        .map(|t| (t.choice.clone(), t.dialogue.clone()))
        .collect();
    let mut choices: Vec<Option<usize>> =
        played.iter().map(|t| t.option.map(usize::from)).collect();
    choices.push(turn.option.map(usize::from));
    let endings: Vec<(String, String)> = run
        .endings
        .iter()
        .map(|e| (e.kind.clone(), e.text.clone()))
        .collect();
    let request = prompts::play_turn(&prompts::PlayScene {
        name: &run.name,
        traits: &run.traits,
        backstory: &run.backstory,
        story_context: &run.story_context,
        language: &run.language,
        opening_line: &run.opening_line,
        endings: &endings,
        story: &story,
        summary: &run.summary,
        summary_through: run.summary_through,
        scene: turn.scene,
        total: run.scenes,
        choice: &turn.choice,
        choices,
        variation,
    });
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<String, AppError>>();
    let _ = tx.unbounded_send(Ok(PlayEvent::Accepted { turn: turn.clone() }.to_line()));
    let upstream = state.llm.stream_json(request.clone());
    let job = TurnJob {
        state: state.clone(),
        owner: user,
        run_id: run.id.clone(),
        pacing: Pacing::of(turn.scene, run.scenes),
        endings: run.endings.len().max(1),
        turn,
        request,
        tx,
        slot,
    };
    let span = crate::usage::call_span(state.llm.name(), "play_turn");
    state
        .running
        .spawn(tracing::Instrument::instrument(job.run(upstream), span));
    TextStream::new(rx)
}

/// Folds the scenes of `owner`'s run `run_id` that no longer fit in a scene's prompt into its
/// running summary, if any do (a model call, recorded as `play_summary`). Run in the background
/// after a scene completes; a failure is logged and the fold tried again after the next scene
/// (meanwhile the prompt says which scenes it leaves out).
pub async fn fold_summary(state: AppState, owner: UserId, run_id: String) {
    let Ok(Some(run)) = store::find_run(&state.db, &owner, &run_id).await else {
        return;
    };
    let Ok(turns) = store::turns(&state.db, &run_id).await else {
        return;
    };
    let story: Vec<(String, String)> = turns
        .iter()
        .filter(|t| t.status == TurnStatus::Complete)
        .map(|t| (t.choice.clone(), t.dialogue.clone()))
        .collect();
    let from = usize::from(run.summary_through).min(story.len());
    let first = prompts::story_window(&story, run.summary_through);
    if first <= from {
        return;
    }
    let request = prompts::play_summary(&run.name, &run.summary, &story[from..first], from + 1);
    let result = crate::usage::calls::structured(
        &state,
        &owner,
        request,
        ("play_summary", "play_summary_repair"),
        Some(&run.language),
        |raw| {
            crate::domain::SummaryOutput::parse(raw)
                .map_err(crate::infra::llm::LlmError::InvalidReply)
        },
    )
    .await;
    match result {
        Ok(out) => {
            let through = first.min(255) as u8;
            match store::save_summary(&state.db, &run_id, out.summary.as_str(), through).await {
                Ok(saved) => tracing::info!(through, saved, "play run summary written"),
                Err(e) => tracing::warn!(error = ?e, "could not save the play run's summary"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not summarise the play run; trying after the next scene")
        }
    }
}

/// How a run is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunExport {
    /// The story as Markdown: the opening, each scene (the player's choice, the character's
    /// words), and the ending.
    Markdown,
    /// Everything the run page shows, as JSON ([`RunView`]).
    Json,
}

/// `owner`'s run `id` as a file to download (bytes, file name); `None` if there is no such run
/// of theirs.
pub async fn export(
    state: &AppState,
    owner: &UserId,
    id: &str,
    format: RunExport,
) -> Result<Option<(Vec<u8>, String)>, AppError> {
    if check_id(id).is_err() {
        return Ok(None);
    }
    let (run, turns) = match load(state, owner, id).await {
        Ok(found) => found,
        Err(AppError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let view = view_of(state, run, turns);
    let stem: String = view
        .character_name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let stem = if stem.is_empty() {
        "story".to_string()
    } else {
        format!("{stem}-story")
    };
    Ok(Some(match format {
        RunExport::Json => (
            serde_json::to_vec_pretty(&view).or_internal("encode run")?,
            format!("{stem}.json"),
        ),
        RunExport::Markdown => (markdown(&view).into_bytes(), format!("{stem}.md")),
    }))
}

/// The story as Markdown.
pub fn markdown(run: &RunView) -> String {
    let mut out = format!(
        "# {}: a story in {} scenes\n\n> {}\n",
        run.character_name, run.scenes, run.opening_line
    );
    for t in &run.turns {
        out.push_str(&format!(
            "\n## Scene {}\n\n**You:** {}\n\n",
            t.scene, t.choice
        ));
        out.push_str(&t.dialogue);
        out.push('\n');
        match t.status {
            TurnStatus::Complete | TurnStatus::Streaming => {}
            TurnStatus::Failed => out.push_str("\n*(This scene was cut off.)*\n"),
            TurnStatus::Interrupted => out.push_str("\n*(This scene was interrupted.)*\n"),
        }
    }
    match run.reached() {
        Some(e) => out.push_str(&format!("\n## The end — {}\n\n{}\n", e.kind, e.text)),
        None if run.status == super::RunStatus::Ended => out.push_str("\n## The end\n"),
        None => out.push_str("\n*(The story is still being played.)*\n"),
    }
    out
}
