//! What the match server functions do. Who may be matched with whom, and what of each side the
//! model is shown, is decided once, in [`sides`]:
//!
//! - twin↔twin: the viewer's twin and another person's, both open to matches; only Shades their
//!   owners marked public are used (no bio), for both sides, so the one stored record says
//!   nothing about a private Shade to either owner;
//! - twin↔character and character↔character: the viewer's own, everything.
//!
//! Anything else is "not found", like a missing persona.

use super::{
    store::{self, MatchRow},
    Candidate, Candidates, Icebreaker, IcebreakerEvent, IcebreakerLine, MatchState, MatchSummary,
    MatchView, PersonaInfo, CANDIDATES, ICEBREAKER_LINES,
};
use crate::auth::{require_user, UserId};
use crate::domain::{terms, Confidence, MatchResult, PersonaKind, PersonaRef, ShadeDraft};
use crate::error::{AppError, OrInternal};
use crate::infra::llm::{prompts, LlmError};
use crate::infra::AppState;
use crate::limits;
use crate::usage::calls::structured;
use leptos::server_fn::codec::TextStream;

/// How long a claim to compute a pair holds before another server may take it over.
const CLAIM_MS: i64 = 60_000;

/// One side of a pair, as the model is shown it.
#[derive(Debug, Clone)]
pub struct Side {
    pub persona: PersonaRef,
    pub owner: UserId,
    pub name: String,
    pub profile: String,
}

/// The text a model is shown of a twin: its name, bio (unless `public_only`) and Shades (only
/// public ones if `public_only`).
pub fn twin_profile(name: &str, bio: &str, shades: &[ShadeDraft], public_only: bool) -> String {
    let mut out = format!("{name} (a person's digital twin)\n");
    if !public_only && !bio.trim().is_empty() {
        out.push_str(&format!("Bio: {}\n", bio.trim()));
    }
    out.push_str("Shades:\n");
    let mut any = false;
    for s in shades.iter().filter(|s| s.public || !public_only) {
        any = true;
        out.push_str(&format!(
            "- {} {} ({}): {}",
            s.icon,
            s.name,
            Confidence::words(s.confidence),
            s.description
        ));
        if !s.topics.is_empty() {
            out.push_str(&format!(" [from: {}]", s.topics));
        }
        out.push('\n');
    }
    if !any {
        out.push_str("(none)\n");
    }
    out
}

fn character_profile(c: &crate::characters::CharacterView) -> String {
    let d = &c.draft;
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    format!(
        "{} (a character: {} years, {})\nTraits: {}\nBackstory: {}\nWorld: {}\n",
        d.name,
        d.age,
        d.gender,
        d.traits.join(", "),
        cut(&d.backstory, 800),
        cut(&d.story_context, 400)
    )
}

/// FNV-1a over both sides' profiles: what the model was shown, so any change to it is seen.
pub fn fingerprint(a: &Side, b: &Side) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for byte in a.profile.bytes().chain([0xff]).chain(b.profile.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// One side as `viewer` may use it in a pair, or `None` (not found, not theirs, not open to
/// matches).
async fn side(
    state: &AppState,
    viewer: &UserId,
    r: &PersonaRef,
    public_only: bool,
) -> Result<Option<Side>, AppError> {
    match r.kind {
        PersonaKind::Twin => {
            let Some((owner, twin)) = crate::twins::store::find_by_id(&state.db, &r.id)
                .await
                .or_internal("load twin")?
            else {
                return Ok(None);
            };
            if owner != *viewer && !twin.matchable {
                return Ok(None);
            }
            let name = if twin.name.is_empty() {
                "A twin".to_string()
            } else {
                twin.name
            };
            let profile = twin_profile(&name, &twin.bio, &twin.shades, public_only);
            Ok(Some(Side {
                persona: r.clone(),
                owner,
                name,
                profile,
            }))
        }
        PersonaKind::Character => {
            let Some(c) = crate::characters::store::find(&state.db, viewer, &r.id)
                .await
                .or_internal("load character")?
            else {
                return Ok(None);
            };
            Ok(Some(Side {
                persona: r.clone(),
                owner: viewer.clone(),
                name: c.draft.name.clone(),
                profile: character_profile(&c),
            }))
        }
    }
}

/// The two sides of a pair `viewer` may have matched, in stored order, by the rules above.
async fn sides(
    state: &AppState,
    viewer: &UserId,
    x: &PersonaRef,
    y: &PersonaRef,
) -> Result<(Side, Side), AppError> {
    if x == y {
        return Err(AppError::BadRequest(
            "A match needs two different personas.".into(),
        ));
    }
    if x.id.is_empty() || x.id.len() > 64 || y.id.is_empty() || y.id.len() > 64 {
        return Err(AppError::NotFound);
    }
    let (a, b) = store::ordered(x.clone(), y.clone());
    let both_twins = a.kind == PersonaKind::Twin && b.kind == PersonaKind::Twin;
    let sa = side(state, viewer, &a, both_twins).await?;
    let sb = side(state, viewer, &b, both_twins).await?;
    let (Some(sa), Some(sb)) = (sa, sb) else {
        return Err(AppError::NotFound);
    };
    let mine = |s: &Side| s.owner == *viewer;
    if both_twins {
        // One is the viewer's, and it must be open to matches too.
        let own = if mine(&sa) { &sa } else { &sb };
        if !mine(own) || mine(&sa) == mine(&sb) {
            return Err(AppError::NotFound);
        }
        let open = crate::twins::store::find(&state.db, viewer)
            .await
            .or_internal("load twin")?
            .is_some_and(|t| t.matchable);
        if !open {
            return Err(AppError::BadRequest(
                "Open your twin to matches first (on the twin page) to be matched with other people's twins.".into(),
            ));
        }
    } else if !(mine(&sa) && mine(&sb)) {
        // Someone else's twin is matched with the viewer's twin only.
        return Err(AppError::NotFound);
    }
    Ok((sa, sb))
}

fn info(s: &Side, viewer: &UserId) -> PersonaInfo {
    PersonaInfo {
        persona: s.persona.clone(),
        name: s.name.clone(),
        yours: s.owner == *viewer,
    }
}

fn state_of(row: &MatchRow) -> MatchState {
    match row.state.as_str() {
        "fresh" => MatchState::Fresh,
        "failed" => MatchState::Failed,
        _ => MatchState::Updating,
    }
}

fn view(row: MatchRow, a: &Side, b: &Side, viewer: &UserId, state: MatchState) -> MatchView {
    MatchView {
        id: row.id,
        a: info(a, viewer),
        b: info(b, viewer),
        state,
        score: row
            .score
            .filter(|_| state == MatchState::Fresh)
            .map(|s| s as u8),
        reasoning: row.reasoning,
        strengths: row.strengths,
        challenges: row.challenges,
        provider: row.provider,
        computed_at: row.computed_at,
        icebreaker: None,
        can_talk: can_talk(a, b),
    }
}

/// Icebreakers are for a twin and someone else (twin↔twin, twin↔character).
fn can_talk(a: &Side, b: &Side) -> bool {
    a.persona.kind == PersonaKind::Twin || b.persona.kind == PersonaKind::Twin
}

/// Asks the model about a claimed pair and stores the answer (or marks it failed).
async fn compute(
    state: &AppState,
    user: &UserId,
    id: &str,
    a: &Side,
    b: &Side,
) -> Result<(), AppError> {
    let slot = limits::service::begin_model_call(state, user).await;
    let mut slot = match slot {
        Ok(slot) => slot,
        Err(e) => {
            store::fail(&state.db, id).await.or_internal("mark match")?;
            return Err(e);
        }
    };
    let request = prompts::match_pair(&a.profile, &b.profile);
    let schema = request.schema.clone();
    let result = structured(
        state,
        user,
        request,
        ("match", "match_repair"),
        None,
        |raw| {
            let mut value: serde_json::Value = serde_json::from_str(raw.trim()).map_err(|e| {
                LlmError::InvalidReply(format!("the reply is not valid JSON ({e})"))
            })?;
            crate::domain::schema::recover(&mut value, &schema);
            let parsed: MatchResult = serde_json::from_value(value).map_err(|e| {
                LlmError::InvalidReply(format!("the reply does not fit the schema ({e})"))
            })?;
            parsed.check().map_err(|e| LlmError::InvalidReply(e.0))?;
            Ok(parsed)
        },
    )
    .await;
    slot.release().await;
    match result {
        Ok(r) => {
            store::complete(&state.db, id, &r, &state.llm.model(), &fingerprint(a, b))
                .await
                .or_internal("store match")?;
            tracing::info!(score = r.score.get(), "match computed");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "match failed");
            store::fail(&state.db, id).await.or_internal("mark match")?;
            Err(AppError::Provider(e.user_message().to_string()))
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn score(x: PersonaRef, y: PersonaRef) -> Result<MatchView, AppError> {
    let user = require_user().await?;
    score_for(&AppState::get()?, &user, x, y).await
}

/// [`score`] for `user`, however they are signed in (the REST API works matches out too).
pub async fn score_for(
    state: &AppState,
    user: &UserId,
    x: PersonaRef,
    y: PersonaRef,
) -> Result<MatchView, AppError> {
    let (state, user) = (state.clone(), user.clone());
    let (a, b) = sides(&state, &user, &x, &y).await?;
    let (id, claimed) = store::claim(
        &state.db,
        (&a.persona, &a.owner.0),
        (&b.persona, &b.owner.0),
        CLAIM_MS,
        None,
    )
    .await
    .or_internal("claim match")?;
    if !claimed {
        return Err(AppError::Conflict(
            "This match is being worked out right now; it will appear in a moment.".into(),
        ));
    }
    compute(&state, &user, &id, &a, &b).await?;
    let row = store::find(&state.db, &user, &id)
        .await
        .or_internal("load match")?
        .ok_or(AppError::NotFound)?;
    Ok(view(row, &a, &b, &user, MatchState::Fresh))
}

/// A stored match as it stands for `viewer`: its sides as they are now (`None` if either is no
/// longer theirs to see — deleted, or a twin closed to matches), and whether it is current. A
/// stale or abandoned one is claimed and recomputed in the background.
async fn current(
    state: &AppState,
    viewer: &UserId,
    row: MatchRow,
) -> Result<Option<(MatchRow, Side, Side, MatchState)>, AppError> {
    let (a, b) = match sides(state, viewer, &row.a, &row.b).await {
        Ok(s) => s,
        Err(AppError::NotFound | AppError::BadRequest(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut st = state_of(&row);
    let now = fingerprint(&a, &b);
    let stale = st == MatchState::Fresh && row.fingerprint != now;
    if stale || st == MatchState::Updating {
        let (id, claimed) = store::claim(
            &state.db,
            (&a.persona, &a.owner.0),
            (&b.persona, &b.owner.0),
            CLAIM_MS,
            Some(&now),
        )
        .await
        .or_internal("claim match")?;
        if claimed {
            let (state2, user, a2, b2) = (state.clone(), viewer.clone(), a.clone(), b.clone());
            tokio::spawn(async move {
                let _ = compute(&state2, &user, &id, &a2, &b2).await;
            });
        }
        st = MatchState::Updating;
    }
    Ok(Some((row, a, b, st)))
}

#[tracing::instrument(skip_all)]
pub async fn list() -> Result<Vec<MatchSummary>, AppError> {
    let user = require_user().await?;
    list_for(&AppState::get()?, &user).await
}

/// [`list`] for `user`, however they are signed in.
pub async fn list_for(state: &AppState, user: &UserId) -> Result<Vec<MatchSummary>, AppError> {
    let (state, user) = (state.clone(), user.clone());
    let rows = store::list_for(&state.db, &user, 50)
        .await
        .or_internal("list matches")?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let Some((row, a, b, st)) = current(&state, &user, row).await? else {
            continue;
        };
        // "Mine" is the viewer's side (for twin↔twin, their twin; otherwise the first).
        let (mine, other) = if b.owner == user && a.owner != user {
            (&b, &a)
        } else {
            (&a, &b)
        };
        let first_line = row
            .reasoning
            .split_inclusive(['.', '!', '?'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        out.push(MatchSummary {
            id: row.id.clone(),
            mine: info(mine, &user),
            other: info(other, &user),
            state: st,
            score: row
                .score
                .filter(|_| st == MatchState::Fresh)
                .map(|s| s as u8),
            first_line,
            updated_at: row.updated_at,
        });
    }
    Ok(out)
}

/// The signed-in user and match `id` if they own one of its sides (else not found).
async fn visible(id: &str) -> Result<(AppState, UserId, MatchRow), AppError> {
    let user = require_user().await?;
    visible_to(&AppState::get()?, &user, id).await
}

/// Match `id` if `user` owns one of its sides (else not found).
async fn visible_to(
    state: &AppState,
    user: &UserId,
    id: &str,
) -> Result<(AppState, UserId, MatchRow), AppError> {
    crate::infra::check_id(id)?;
    let (state, user) = (state.clone(), user.clone());
    let row = store::find(&state.db, &user, id)
        .await
        .or_internal("load match")?
        .ok_or(AppError::NotFound)?;
    Ok((state, user, row))
}

#[tracing::instrument(skip_all)]
pub async fn get(id: String) -> Result<MatchView, AppError> {
    let user = require_user().await?;
    get_for(&AppState::get()?, &user, &id).await
}

/// [`get`] for `user`, however they are signed in.
pub async fn get_for(state: &AppState, user: &UserId, id: &str) -> Result<MatchView, AppError> {
    let (state, user, row) = visible_to(state, user, id).await?;
    let (row, a, b, st) = current(&state, &user, row)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut v = view(row, &a, &b, &user, st);
    v.icebreaker = store::icebreaker(&state.db, &v.id)
        .await
        .or_internal("load icebreaker")?
        .filter(|(_, _, updated)| *updated > 0)
        .map(|(status, lines, _)| Icebreaker {
            status,
            lines: lines
                .into_iter()
                .map(|(speaker, text)| IcebreakerLine { speaker, text })
                .collect(),
        });
    Ok(v)
}

/// Starts match `id`'s conversation: checked like opening the match, then written by a task
/// that runs to its end whether or not the browser stays, each line saved as it is finished.
#[tracing::instrument(skip_all)]
pub async fn icebreaker(id: String) -> Result<TextStream<AppError>, AppError> {
    let (state, user, row) = visible(&id).await?;
    let (a, b) = match sides(&state, &user, &row.a, &row.b).await {
        Ok(s) => s,
        Err(AppError::BadRequest(_)) => return Err(AppError::NotFound),
        Err(e) => return Err(e),
    };
    if !can_talk(&a, &b) {
        return Err(AppError::BadRequest(
            "Conversations are for your twin and someone else.".into(),
        ));
    }
    let slot = limits::service::begin_model_call(&state, &user).await?;
    if !store::begin_icebreaker(&state.db, &id, &user, CLAIM_MS)
        .await
        .or_internal("start icebreaker")?
    {
        return Err(AppError::Conflict(
            "This conversation is being written right now; it will appear in a moment.".into(),
        ));
    }
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<String, AppError>>();
    let span = crate::usage::call_span(state.llm.name(), "icebreaker");
    tokio::spawn(tracing::Instrument::instrument(
        talk(state.clone(), user, id, (a, b), tx, slot),
        span,
    ));
    Ok(TextStream::new(rx))
}

/// Writes the conversation: each side in turn, each line streamed, saved when finished; a fault
/// keeps the lines said (the cut line too, marked with "…") and marks it failed.
async fn talk(
    state: AppState,
    user: UserId,
    id: String,
    (a, b): (Side, Side),
    tx: futures::channel::mpsc::UnboundedSender<Result<String, AppError>>,
    mut slot: limits::service::Slot,
) {
    use crate::infra::llm::ChatChunk;
    use futures::StreamExt;
    let send = |ev: IcebreakerEvent| {
        let mut line = serde_json::to_string(&ev).unwrap_or_default();
        line.push('\n');
        // A closed channel: the browser went away; the conversation is written regardless.
        let _ = tx.unbounded_send(Ok(line));
    };
    let mut lines: Vec<(String, String)> = Vec::new();
    for i in 0..ICEBREAKER_LINES {
        let (me, other, tag) = if i % 2 == 0 {
            (&a, &b, "a")
        } else {
            (&b, &a, "b")
        };
        let said: Vec<(bool, String)> = lines.iter().map(|(s, t)| (s == tag, t.clone())).collect();
        let request = prompts::icebreaker_line(
            (&me.name, &me.profile),
            (&other.name, &other.profile),
            &said,
        );
        let started = std::time::Instant::now();
        let mut upstream = state.llm.stream_chat(request);
        let mut text = String::new();
        let mut usage = crate::infra::llm::Usage::default();
        let mut failure = None;
        loop {
            match upstream.next().await {
                Some(Ok(ChatChunk::Delta(d))) => {
                    text.push_str(&d);
                    send(IcebreakerEvent::Delta {
                        speaker: tag.into(),
                        text: d,
                    });
                }
                Some(Ok(ChatChunk::Done { usage: u })) => {
                    usage = u;
                    break;
                }
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                None => {
                    failure = Some(LlmError::CutOff("the stream ended early".into()));
                    break;
                }
            }
        }
        let result: Result<(), LlmError> = failure.clone().map_or(Ok(()), Err);
        crate::usage::store::record(
            &state.db,
            crate::usage::Record {
                owner_id: &user.0,
                kind: "icebreaker",
                provider: state.llm.name(),
                language: None,
                outcome: crate::usage::outcome(&result),
                duration_ms: started.elapsed().as_millis() as i64,
                usage,
            },
        )
        .await;
        if let Some(e) = failure {
            tracing::warn!(error = %e, line = i, "icebreaker failed");
            if !text.trim().is_empty() {
                lines.push((tag.into(), format!("{} …", text.trim())));
            }
            if let Err(e) = store::save_icebreaker(&state.db, &id, "failed", &lines).await {
                tracing::error!(error = %e, "saving a failed icebreaker");
            }
            slot.release().await;
            send(IcebreakerEvent::Failed {
                message: e.user_message().to_string(),
            });
            return;
        }
        lines.push((tag.into(), text.trim().to_string()));
        let status = if i + 1 == ICEBREAKER_LINES {
            "complete"
        } else {
            "writing"
        };
        if let Err(e) = store::save_icebreaker(&state.db, &id, status, &lines).await {
            tracing::error!(error = %e, "saving an icebreaker line");
        }
        send(IcebreakerEvent::LineDone);
    }
    slot.release().await;
    send(IcebreakerEvent::Done);
}

/// The words of `shades` (only public ones if `public_only`) that ranking reads, each once, at
/// most [`crate::twins::store::MAX_QUERY_TERMS`].
fn shade_terms(shades: &[ShadeDraft], public_only: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in shades.iter().filter(|s| s.public || !public_only) {
        for t in terms(&format!("{} {} {}", s.name, s.topics, s.description), 64) {
            if out.len() >= crate::twins::store::MAX_QUERY_TERMS {
                return out;
            }
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

#[tracing::instrument(skip_all)]
pub async fn candidates() -> Result<Candidates, AppError> {
    let user = require_user().await?;
    let state = AppState::get()?;
    let Some(twin) = crate::twins::store::find(&state.db, &user)
        .await
        .or_internal("load twin")?
    else {
        return Ok(Candidates {
            twin: None,
            matchable: false,
            twins: Vec::new(),
            characters: Vec::new(),
        });
    };
    let me = PersonaRef {
        kind: PersonaKind::Twin,
        id: twin.id.clone(),
    };
    // Other people see only public Shades; ranking them uses only the viewer's public ones too.
    let public_terms = shade_terms(&twin.shades, true);
    let twins = if twin.matchable {
        crate::twins::store::candidates(&state.db, &user, &public_terms, CANDIDATES)
            .await
            .or_internal("rank twins")?
            .into_iter()
            .map(|(id, _owner, name, overlap)| Candidate {
                persona: PersonaRef {
                    kind: PersonaKind::Twin,
                    id,
                },
                name: if name.is_empty() {
                    "A twin".into()
                } else {
                    name
                },
                overlap,
            })
            .collect()
    } else {
        Vec::new()
    };
    // The viewer's own characters, ranked against all their Shades.
    let all = shade_terms(&twin.shades, false);
    let mut characters: Vec<Candidate> = crate::characters::store::list_for(&state.db, &user)
        .await
        .or_internal("list characters")?
        .into_iter()
        .map(|c| {
            let words = terms(
                &format!("{} {} {}", c.name, c.traits.join(" "), c.opening_line),
                64,
            );
            let overlap = words.iter().filter(|w| all.contains(w)).count() as i64;
            Candidate {
                persona: PersonaRef {
                    kind: PersonaKind::Character,
                    id: c.id,
                },
                name: c.name,
                overlap,
            }
        })
        .collect();
    characters.sort_by_key(|c| std::cmp::Reverse(c.overlap));
    characters.truncate(CANDIDATES as usize);
    Ok(Candidates {
        twin: Some(me),
        matchable: twin.matchable,
        twins,
        characters,
    })
}
