//! Compatibility matches through the server, on SQLite and Postgres: who may be matched with
//! whom (opt-in, public Shades only between people, one's own otherwise), one record per pair
//! seen by both owners, stale matches shown as updating and recomputed, failures marked failed
//! (never a score of 0) and retried. Two users sign in through the SecondMe stand-in.

use crate::common::standins::{secondme, SecondMe};
use crate::common::*;
use app::domain::{PersonaKind, PersonaRef, ShadeDraft, TwinDraft};
use app::error::AppError;
use app::matches::{
    GetMatch, IcebreakerEvent, ListMatches, MatchCandidates, MatchState, ScoreMatch,
    StartIcebreaker, ICEBREAKER_LINES,
};
use app::twins::{GetTwin, SaveTwin};
use mock_llm::{MockLlm, Reply};
use serde_json::json;
use std::time::Duration;

on_both_backends!(
    twins_are_matched_only_when_both_opt_in_and_only_on_public_shades,
    own_twin_and_characters_are_matched_and_failures_are_marked,
    an_icebreaker_is_streamed_saved_and_read_by_both_owners,
);

/// Starts match `id`'s icebreaker and reads its whole stream.
async fn talk(app: &TestApp, id: &str) -> Result<Vec<IcebreakerEvent>, AppError> {
    let res = app.send(StartIcebreaker { id: id.into() }).await;
    let status = res.status();
    let body = res.text().await.unwrap();
    if !status.is_success() {
        return Err(serde_json::from_str(&body).unwrap());
    }
    Ok(body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect())
}

async fn an_icebreaker_is_streamed_saved_and_read_by_both_owners(backend: Backend) {
    let (alice, bob, mock) = two_users(backend).await;
    let ada = save_twin(
        &alice,
        "Ada",
        true,
        vec![
            shade(
                "Night owl",
                "jazz, night",
                "Your best ideas come late.",
                true,
            ),
            shade(
                "Secret hobby",
                "xylophone",
                "You practise the xylophone.",
                false,
            ),
        ],
    )
    .await;
    let ben = save_twin(
        &bob,
        "Ben",
        true,
        vec![shade("Jazz lover", "jazz", "Records.", true)],
    )
    .await;
    let m = alice
        .call(ScoreMatch {
            a: ada.clone(),
            b: ben.clone(),
        })
        .await
        .unwrap();
    assert!(m.can_talk && m.icebreaker.is_none());
    let before = mock.requests().len();

    let events = talk(&alice, &m.id).await.unwrap();
    let done = events
        .iter()
        .filter(|e| matches!(e, IcebreakerEvent::LineDone))
        .count();
    assert_eq!(done, ICEBREAKER_LINES);
    assert_eq!(events.last(), Some(&IcebreakerEvent::Done));
    let speakers: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            IcebreakerEvent::Delta { speaker, .. } => Some(speaker.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(speakers.first(), Some(&"a"));
    assert!(speakers.contains(&"b"));
    // Each line from its speaker's profile: public Shades only, between people.
    let reqs = &mock.requests()[before..];
    assert_eq!(reqs.len(), ICEBREAKER_LINES);
    let system = reqs[0].body["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        system.contains("You are Ada, meeting Ben") && system.contains("Jazz lover"),
        "{system}"
    );
    for r in reqs {
        let all = r.body.to_string();
        assert!(
            !all.contains("xylophone") && !all.contains("private bio"),
            "{all}"
        );
    }
    // The other owner reads it, saved, in order.
    let seen = bob.call(GetMatch { id: m.id.clone() }).await.unwrap();
    let ice = seen.icebreaker.unwrap();
    assert_eq!(ice.status, "complete");
    let order: Vec<&str> = ice.lines.iter().map(|l| l.speaker.as_str()).collect();
    assert_eq!(order, ["a", "b", "a", "b"]);
    assert!(ice.lines.iter().all(|l| !l.text.is_empty()));
    assert_eq!(
        count(
            &alice,
            "SELECT COUNT(*) FROM generations WHERE kind = 'icebreaker' AND outcome = 'ok'"
        )
        .await,
        ICEBREAKER_LINES as i64
    );

    // The model fails on the second line: the first is kept, the conversation marked failed.
    mock.push(Reply::text(&["Hello ", "Ben."]));
    for _ in 0..2 {
        mock.push(Reply::error(503, "UNAVAILABLE"));
    }
    let events = talk(&bob, &m.id).await.unwrap();
    assert!(
        matches!(events.last(), Some(IcebreakerEvent::Failed { message }) if message.contains("unavailable")),
        "{events:?}"
    );
    let ice = alice
        .call(GetMatch { id: m.id.clone() })
        .await
        .unwrap()
        .icebreaker
        .unwrap();
    assert_eq!(ice.status, "failed");
    assert_eq!(ice.lines.len(), 1);
    assert_eq!(ice.lines[0].text, "Hello Ben.");

    // Two characters do not talk; someone who owns no side cannot start one.
    let mira = PersonaRef {
        kind: PersonaKind::Character,
        id: save_character(&alice, "Mira").await,
    };
    let kai = PersonaRef {
        kind: PersonaKind::Character,
        id: save_character(&alice, "Kai").await,
    };
    let cc = alice.call(ScoreMatch { a: mira, b: kai }).await.unwrap();
    assert!(!cc.can_talk);
    assert!(matches!(
        talk(&alice, &cc.id).await.unwrap_err(),
        AppError::BadRequest(_)
    ));
    assert_eq!(talk(&bob, &cc.id).await.unwrap_err(), AppError::NotFound);

    // The match page renders the conversation without JavaScript.
    let html = bob.html(&format!("/matches/{}", m.id)).await;
    assert!(
        html.contains("Conversation") && html.contains("Hello Ben."),
        "{html}"
    );
}

/// An app on Gemini (the mock) with SecondMe sign-in, and two signed-in users.
async fn two_users(backend: Backend) -> (TestApp, TestApp, MockLlm) {
    let mock = MockLlm::start().await;
    let sm = SecondMe::start().await;
    let mut env = sm.env(secondme::CLIENT_SECRET);
    env.extend(gemini_env(&mock, 2));
    let alice = spawn_app_env(backend, &env).await;
    sm.set_user_id(Some(json!(1)));
    assert_eq!(sign_in_via(&alice, "secondme").await, "/dashboard");
    let bob = alice.another_browser();
    sm.set_user_id(Some(json!(2)));
    assert_eq!(sign_in_via(&bob, "secondme").await, "/dashboard");
    (alice, bob, mock)
}

fn shade(name: &str, topics: &str, description: &str, public: bool) -> ShadeDraft {
    ShadeDraft {
        name: name.into(),
        icon: "🌙".into(),
        description: description.into(),
        confidence: 0.8,
        topics: topics.into(),
        public,
        ..ShadeDraft::default()
    }
}

async fn save_twin(
    app: &TestApp,
    name: &str,
    matchable: bool,
    shades: Vec<ShadeDraft>,
) -> PersonaRef {
    app.call(SaveTwin {
        twin: TwinDraft {
            name: name.into(),
            bio: format!("{name}'s private bio."),
            matchable,
            shades,
        },
    })
    .await
    .unwrap();
    twin_ref(app).await
}

async fn twin_ref(app: &TestApp) -> PersonaRef {
    let id: String = app::with_pool!(&app.db, pool => {
        let me = app.call(app::auth::GetCurrentUser {}).await.unwrap().unwrap();
        sqlx::query_scalar("SELECT id FROM twins WHERE owner_id = $1").bind(me.id).fetch_one(pool).await.unwrap()
    });
    PersonaRef {
        kind: PersonaKind::Twin,
        id,
    }
}

async fn twins_are_matched_only_when_both_opt_in_and_only_on_public_shades(backend: Backend) {
    let (alice, bob, mock) = two_users(backend).await;
    let ada = save_twin(
        &alice,
        "Ada",
        true,
        vec![
            shade(
                "Night owl",
                "jazz, night",
                "Your best ideas come late.",
                true,
            ),
            shade(
                "Secret hobby",
                "xylophone",
                "You practise the xylophone in secret.",
                false,
            ),
        ],
    )
    .await;
    let ben = save_twin(
        &bob,
        "Ben",
        false,
        vec![shade("Jazz lover", "jazz, night", "Records.", true)],
    )
    .await;

    // Ben has not opened his twin: Ada does not see it and cannot be matched with it.
    let c = alice.call(MatchCandidates {}).await.unwrap();
    assert!(c.matchable && c.twins.is_empty());
    let err = alice
        .call(ScoreMatch {
            a: ada.clone(),
            b: ben.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err, AppError::NotFound);

    // Ben opens his twin: Ada finds him by the words of their public Shades, no model call.
    save_twin(
        &bob,
        "Ben",
        true,
        vec![shade("Jazz lover", "jazz, night", "Records.", true)],
    )
    .await;
    let c = alice.call(MatchCandidates {}).await.unwrap();
    assert_eq!(c.twins.len(), 1);
    assert_eq!(c.twins[0].persona, ben);
    assert!(c.twins[0].overlap > 0);
    assert!(mock.requests().is_empty());

    let m = alice
        .call(ScoreMatch {
            a: ada.clone(),
            b: ben.clone(),
        })
        .await
        .unwrap();
    assert_eq!(m.state, MatchState::Fresh);
    assert_eq!(m.score, Some(72));
    assert_eq!(
        m.provider, "gemini-2.5-flash",
        "the model that wrote it is kept"
    );
    assert!(m.computed_at.is_some());
    assert_eq!(m.strengths.len(), 3);
    assert_eq!(m.challenges.len(), 3);
    let prompt = mock.requests()[0].body["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        prompt.contains("Night owl") && prompt.contains("Jazz lover"),
        "{prompt}"
    );
    for private in ["Secret hobby", "xylophone", "private bio"] {
        assert!(
            !prompt.contains(private),
            "{private} reached the model: {prompt}"
        );
    }

    // One record, seen by both.
    assert_eq!(count(&alice, "SELECT COUNT(*) FROM matches").await, 1);
    let theirs = bob.call(ListMatches {}).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].other.name, "Ada");
    assert!(theirs[0].mine.yours && !theirs[0].other.yours);
    assert_eq!(
        bob.call(GetMatch { id: m.id.clone() }).await.unwrap().score,
        Some(72)
    );

    // A public Shade changes: the match is stale, shown updating, then recomputed.
    save_twin(
        &bob,
        "Ben",
        true,
        vec![shade(
            "Jazz lover",
            "jazz, vinyl",
            "Records and radio.",
            true,
        )],
    )
    .await;
    let listed = alice.call(ListMatches {}).await.unwrap();
    assert_eq!(listed[0].state, MatchState::Updating);
    assert_eq!(listed[0].score, None, "never a stale score as current");
    let mut fresh = None;
    for _ in 0..50 {
        let m = alice.call(GetMatch { id: m.id.clone() }).await.unwrap();
        if m.state == MatchState::Fresh {
            fresh = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fresh.is_some(), "the stale match was recomputed");
    let reqs: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.body["contents"].to_string())
        .collect();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    // A private Shade changes: nothing the other side could see changed, nothing recomputed.
    let mut shades = vec![
        shade(
            "Night owl",
            "jazz, night",
            "Your best ideas come late.",
            true,
        ),
        shade("Secret hobby", "xylophone, drums", "Now drums too.", false),
    ];
    save_twin(&alice, "Ada", true, shades.clone()).await;
    assert_eq!(
        alice.call(ListMatches {}).await.unwrap()[0].state,
        MatchState::Fresh
    );

    // Ada closes her twin: gone from both lists at once, and unreachable.
    shades.truncate(1);
    save_twin(&alice, "Ada", false, shades).await;
    assert!(alice.call(ListMatches {}).await.unwrap().is_empty());
    assert!(bob.call(ListMatches {}).await.unwrap().is_empty());
    assert_eq!(
        bob.call(GetMatch { id: m.id.clone() }).await.unwrap_err(),
        AppError::NotFound
    );
    assert!(bob.call(MatchCandidates {}).await.unwrap().twins.is_empty());
    assert_eq!(mock.requests().len(), 2);
    assert!(alice.call(GetTwin {}).await.unwrap().exists);
}

/// The prompts of the match requests the model received (characters are written by it too).
fn match_prompts(mock: &MockLlm) -> Vec<String> {
    mock.requests()
        .iter()
        .filter_map(|r| {
            r.body["contents"][0]["parts"][0]["text"]
                .as_str()
                .map(str::to_string)
        })
        .filter(|p| p.starts_with("How compatible"))
        .collect()
}

async fn own_twin_and_characters_are_matched_and_failures_are_marked(backend: Backend) {
    let (alice, bob, mock) = two_users(backend).await;
    let ada = save_twin(
        &alice,
        "Ada",
        false,
        vec![shade("Brave", "courage", "You face storms.", false)],
    )
    .await;
    let mira = PersonaRef {
        kind: PersonaKind::Character,
        id: save_character(&alice, "Mira").await,
    };
    let kai = PersonaRef {
        kind: PersonaKind::Character,
        id: save_character(&alice, "Kai").await,
    };
    let theirs = PersonaRef {
        kind: PersonaKind::Character,
        id: save_character(&bob, "Theirs").await,
    };
    let c = alice.call(MatchCandidates {}).await.unwrap();
    assert_eq!(c.characters.len(), 2, "one's own characters only");
    assert!(c.twins.is_empty(), "a closed twin sees no one");

    // Twin and character (private Shades may be used: both are hers), character and character.
    let m = alice
        .call(ScoreMatch {
            a: ada.clone(),
            b: mira.clone(),
        })
        .await
        .unwrap();
    assert_eq!(m.score, Some(72));
    let prompts = match_prompts(&mock);
    assert_eq!(prompts.len(), 1);
    assert!(
        prompts[0].contains("Brave") && prompts[0].contains("Mira"),
        "{prompts:?}"
    );
    alice
        .call(ScoreMatch {
            a: kai.clone(),
            b: mira.clone(),
        })
        .await
        .unwrap();
    // The pair is one record whichever way round it is asked.
    alice
        .call(ScoreMatch {
            a: mira.clone(),
            b: kai.clone(),
        })
        .await
        .unwrap();
    assert_eq!(count(&alice, "SELECT COUNT(*) FROM matches").await, 2);

    // Not hers, not real, not a pair.
    for (a, b) in [
        (ada.clone(), theirs.clone()),
        (mira.clone(), theirs.clone()),
    ] {
        assert_eq!(
            alice.call(ScoreMatch { a, b }).await.unwrap_err(),
            AppError::NotFound
        );
    }
    let err = alice
        .call(ScoreMatch {
            a: mira.clone(),
            b: mira.clone(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::BadRequest(_)), "{err:?}");
    assert!(
        bob.call(ListMatches {}).await.unwrap().is_empty(),
        "Bob owns no side"
    );
    assert_eq!(
        bob.call(GetMatch { id: m.id.clone() }).await.unwrap_err(),
        AppError::NotFound
    );

    // The model fails: a sentence, the match marked failed with no score, then retried.
    for _ in 0..2 {
        mock.push(Reply::error(503, "UNAVAILABLE"));
    }
    let err = alice
        .call(ScoreMatch {
            a: ada.clone(),
            b: mira.clone(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Provider(s) if s.contains("unavailable")),
        "{err:?}"
    );
    let failed = alice.call(GetMatch { id: m.id.clone() }).await.unwrap();
    assert_eq!(failed.state, MatchState::Failed);
    assert_eq!(failed.score, None, "a failed match never shows a score");
    let retried = alice.call(ScoreMatch { a: ada, b: mira }).await.unwrap();
    assert_eq!(
        (retried.state, retried.score),
        (MatchState::Fresh, Some(72))
    );
    assert_eq!(retried.id, m.id);
    assert_eq!(
        count(
            &alice,
            "SELECT COUNT(*) FROM generations WHERE kind = 'match' AND outcome = 'unavailable'"
        )
        .await,
        1
    );

    // The dashboard shows the twin and the best matches, with their scores.
    let html = alice.html("/dashboard").await;
    assert!(
        html.contains("Your twin and matches") && html.contains("Ada"),
        "{html}"
    );
    assert!(html.contains("Mira") && html.contains("72 / 100"), "{html}");

    // The pages render without JavaScript.
    let html = alice.html("/matches").await;
    assert!(
        html.contains("Your matches") && html.contains("Mira"),
        "{html}"
    );
    assert!(html.contains("Work out the match"));
    let html = alice.html(&format!("/matches/{}", m.id)).await;
    assert!(html.contains("72") && html.contains("Strengths"), "{html}");
}
