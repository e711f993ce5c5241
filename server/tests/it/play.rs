//! Play mode through the server, on SQLite and Postgres, against the mock model speaking Gemini:
//! a 5-scene run played to an ending (options and a typed action), the prompt's pacing at each
//! scene, the choice saved before the model is called, stale choices refused, faults (options
//! malformed once and repaired, malformed twice, a cut-off scene, a 503 then success) kept and
//! re-rolled, usage recorded; and the pages without JavaScript, including a choice posted as a
//! plain form.

use crate::common::*;
use app::domain::PlayChoice;
use app::error::AppError;
use app::play::{
    Choose, GetRun, ListRuns, PlayEvent, RerollTurn, RunStatus, RunView, StartRun, TakeTurn,
    TurnStatus,
};
use leptos::server_fn::ServerFn;
use mock_llm::Reply;
use serde_json::json;

on_both_backends!(
    a_run_is_played_scene_by_scene_to_an_ending,
    faults_keep_the_choice_and_the_scene_is_written_again,
    run_pages_work_without_javascript,
    a_scene_streams_from_the_openai_compatible_provider_and_outlives_a_closed_tab,
    a_long_run_keeps_a_running_summary_of_what_no_longer_fits,
    a_scene_cut_by_a_crash_is_interrupted_and_tried_again_after_restart,
);

/// A saved character of 5 scenes with the offline writer's story; returns its id.
async fn five_scene_character(app: &TestApp, name: &str) -> String {
    let mut d = full_draft(name);
    d.scenes = "5".into();
    app.call(app::characters::SaveCharacter {
        draft: d,
        import: None,
    })
    .await
    .unwrap()
}

/// Every event of a streamed scene (or the refusal).
async fn events(res: reqwest::Response) -> Result<Vec<PlayEvent>, AppError> {
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

async fn play(
    app: &TestApp,
    run: &str,
    after: &str,
    option: Option<u8>,
    action: &str,
) -> Result<Vec<PlayEvent>, AppError> {
    events(
        app.send(TakeTurn {
            run_id: run.into(),
            after: after.into(),
            choice: PlayChoice {
                option,
                action: action.into(),
            },
        })
        .await,
    )
    .await
}

async fn run(app: &TestApp, id: &str) -> RunView {
    app.call(GetRun { id: id.into() }).await.unwrap()
}

fn dialogue_deltas(events: &[PlayEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            PlayEvent::Delta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

async fn a_run_is_played_scene_by_scene_to_an_ending(backend: Backend) {
    let (app, mock) = app_with_gemini(backend, 2).await;
    let character = five_scene_character(&app, "Mira").await;
    let id = app
        .call(StartRun {
            character_id: character.clone(),
        })
        .await
        .unwrap();
    let start = run(&app, &id).await;
    assert_eq!(start.scenes, 5);
    assert_eq!(start.status, RunStatus::Playing);
    assert_eq!(start.start_options.len(), 3);
    assert_eq!(start.offered(), start.start_options);
    assert!(!start.opening_line.is_empty());

    // Scene 1 from the first start option: the choice is saved first, the dialogue streams in
    // several pieces and is the dialogue saved, the options come with the end.
    let ev = play(&app, &id, "", Some(0), "").await.unwrap();
    let PlayEvent::Accepted { turn } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!((turn.scene, turn.option), (1, Some(0)));
    assert_eq!(turn.choice, start.start_options[0]);
    let deltas = ev
        .iter()
        .filter(|e| matches!(e, PlayEvent::Delta { .. }))
        .count();
    assert!(deltas >= 3, "the dialogue streams: {deltas} pieces");
    let PlayEvent::Finished {
        turn: done,
        run: status,
    } = ev.last().unwrap()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*status, RunStatus::Playing);
    assert_eq!(done.status, TurnStatus::Complete);
    assert_eq!(done.dialogue, dialogue_deltas(&ev));
    assert!(done.dialogue.contains("Scene 1"), "{}", done.dialogue);
    assert_eq!(done.options.len(), 3);

    // A stale page (no scene yet, as it saw it) is refused and saves nothing.
    let stale = play(&app, &id, "", Some(1), "").await.unwrap_err();
    assert!(matches!(stale, AppError::Conflict(_)), "{stale:?}");
    // So are an option not on offer, and both an option and an action.
    for (option, action) in [(Some(3), ""), (Some(0), "I sing.")] {
        let bad = play(&app, &id, &done.id, option, action).await.unwrap_err();
        assert!(matches!(bad, AppError::BadRequest(_)), "{bad:?}");
    }
    assert_eq!(run(&app, &id).await.turns.len(), 1);

    // Scene 2 from a typed action, then options to the end.
    let mut after = done.id.clone();
    let ev = play(&app, &id, &after, None, "I light the lamp myself.")
        .await
        .unwrap();
    let PlayEvent::Finished { turn, .. } = ev.last().unwrap() else {
        panic!("{ev:?}")
    };
    assert_eq!((turn.scene, turn.option), (2, None));
    assert!(turn.dialogue.contains("I light the lamp myself."));
    after = turn.id.clone();
    let mut last = None;
    for scene in 3..=5u8 {
        let ev = play(&app, &id, &after, Some(scene % 3), "").await.unwrap();
        let PlayEvent::Finished { turn, run } = ev.last().unwrap().clone() else {
            panic!("{ev:?}")
        };
        assert_eq!(turn.scene, scene);
        after = turn.id.clone();
        last = Some((turn, run));
    }
    let (last, status) = last.unwrap();
    assert_eq!(status, RunStatus::Ended);
    assert!(last.options.is_empty());
    assert_eq!(last.ending, Some(2), "the mock picks the second ending");

    let ended = run(&app, &id).await;
    assert_eq!(ended.status, RunStatus::Ended);
    assert_eq!(ended.ending, Some(2));
    assert_eq!(ended.turns.len(), 5);
    assert_eq!(ended.reached().unwrap(), &ended.endings[1]);
    // After the end nothing more is played.
    let after_end = play(&app, &id, &after, None, "Once more.")
        .await
        .unwrap_err();
    assert!(matches!(after_end, AppError::Conflict(_)), "{after_end:?}");

    // What the model was told: the scene and the total, the pacing, the story so far, and the
    // schema of each scene (options, then the ending at the last).
    let sent: Vec<serde_json::Value> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == "streamGenerateContent")
        .map(|r| r.body)
        .collect();
    assert_eq!(sent.len(), 5);
    let prompt = |i: usize| {
        sent[i]["contents"][0]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(prompt(0).contains("This is scene 1 of 5. The story is still unfolding"));
    assert!(prompt(0).contains("(Nothing yet: this is the first scene.)"));
    assert!(prompt(3).contains("This is scene 4 of 5. The story is past two thirds"));
    assert!(prompt(3).contains("Scene 2. The player: I light the lamp myself."));
    assert!(prompt(4).contains("This is scene 5 of 5. This is the last scene"));
    let schema = |i: usize| sent[i]["generationConfig"]["responseJsonSchema"].clone();
    assert_eq!(schema(0)["required"], json!(["dialogue", "options"]));
    assert_eq!(schema(4)["required"], json!(["dialogue", "ending"]));
    assert_eq!(schema(4)["properties"]["ending"]["maximum"], 3);

    // Usage of every scene, and the runs list.
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM generations WHERE kind = 'play_turn' AND outcome = 'ok'"
        )
        .await,
        5
    );
    let runs = app
        .call(ListRuns {
            character_id: Some(character.clone()),
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Ended);
    assert_eq!(runs[0].played, 5);
    assert_eq!(
        runs[0].ending.as_deref(),
        Some(ended.endings[1].kind.as_str())
    );
    // The story downloads as Markdown and as JSON, for its owner only.
    let md = app
        .client
        .get(app.url(&format!("/play/{id}/story.md")))
        .send()
        .await
        .unwrap();
    assert_eq!(md.status(), 200);
    assert!(md.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("mira-story.md"));
    let md = md.text().await.unwrap();
    assert!(md.starts_with("# Mira: a story in 5 scenes"), "{md}");
    assert!(
        md.contains("## Scene 2\n\n**You:** I light the lamp myself."),
        "{md}"
    );
    assert!(
        md.contains(&format!("## The end — {}", ended.endings[1].kind)),
        "{md}"
    );
    let json: RunView = app
        .client
        .get(app.url(&format!("/play/{id}/story.json")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json, ended);
    let anonymous = new_client()
        .get(app.url(&format!("/play/{id}/story.md")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let other = app::auth::store::upsert_identity(&app.db, "test", "other", "Other")
        .await
        .unwrap();
    let owner = app::auth::UserId(other.id);
    let theirs = app::characters::store::insert(
        &app.db,
        &owner,
        &full_draft("Theirs").parse_spec().unwrap(),
    )
    .await
    .unwrap();
    let their_run = app::play::store::create_run(&app.db, &owner, &theirs)
        .await
        .unwrap()
        .unwrap();
    for path in [
        format!("/play/{their_run}/story.md"),
        "/play/nope/story.json".to_string(),
    ] {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }

    // A second run starts from the opening again; both are listed, the newest first.
    let second = app
        .call(StartRun {
            character_id: character.clone(),
        })
        .await
        .unwrap();
    let runs = app
        .call(ListRuns {
            character_id: None,
            limit: Some(5),
        })
        .await
        .unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [second.as_str(), id.as_str()]
    );
}

async fn faults_keep_the_choice_and_the_scene_is_written_again(backend: Backend) {
    let (app, mock) = app_with_gemini(backend, 2).await;
    let character = five_scene_character(&app, "Mira").await;
    let id = app
        .call(StartRun {
            character_id: character,
        })
        .await
        .unwrap();

    // Options repeated: one repair (a whole answer, not streamed), which succeeds.
    mock.push(Reply::Json {
        value: json!({"dialogue": "Twice told.", "options": ["Go.", "go.", "Stay."]}),
    });
    let ev = play(&app, &id, "", Some(1), "").await.unwrap();
    let PlayEvent::Finished { turn, .. } = ev.last().unwrap().clone() else {
        panic!("{ev:?}")
    };
    assert_eq!(turn.status, TurnStatus::Complete);
    assert_eq!(turn.options.len(), 3);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM generations WHERE kind = 'play_turn_repair' AND outcome = 'ok'"
        )
        .await,
        1
    );

    // Malformed twice: the scene fails with a sentence, its dialogue kept and marked, the
    // choice saved; a re-roll writes it again and the failed version is kept, superseded.
    mock.push(Reply::Json {
        value: json!({"dialogue": "Half a scene.", "options": ["Only one."]}),
    });
    mock.push(Reply::Json {
        value: json!({"dialogue": "Still half.", "options": []}),
    });
    let ev = play(&app, &id, &turn.id, None, "I wait.").await.unwrap();
    let PlayEvent::Failed {
        message,
        turn: failed,
    } = ev.last().unwrap().clone()
    else {
        panic!("{ev:?}")
    };
    assert!(message.contains("Your choice is saved"), "{message}");
    assert_eq!(failed.status, TurnStatus::Failed);
    assert_eq!(failed.dialogue, "Half a scene.");
    let shown = run(&app, &id).await;
    assert_eq!(shown.turns.last().unwrap().status, TurnStatus::Failed);
    assert_eq!(shown.turns.last().unwrap().choice, "I wait.");
    // No new scene over a failed one: it is tried again instead.
    let moved = play(&app, &id, &failed.id, None, "Skip it.")
        .await
        .unwrap_err();
    assert!(matches!(moved, AppError::Conflict(_)), "{moved:?}");
    let ev = events(
        app.send(RerollTurn {
            run_id: id.clone(),
            turn_id: failed.id.clone(),
        })
        .await,
    )
    .await
    .unwrap();
    let PlayEvent::Finished { turn: again, .. } = ev.last().unwrap().clone() else {
        panic!("{ev:?}")
    };
    assert_eq!((again.scene, again.status), (2, TurnStatus::Complete));
    assert_eq!(again.choice, "I wait.");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM play_turns WHERE superseded = 1").await,
        1
    );
    assert_eq!(run(&app, &id).await.turns.len(), 2);

    // Cut off mid-dialogue: what arrived is kept, marked failed.
    mock.push(Reply::CutOff {
        chunks: vec!["{\"dialogue\": \"The tide".into(), " turns".into()],
    });
    let ev = play(&app, &id, &again.id, Some(0), "").await.unwrap();
    let PlayEvent::Failed { turn: cut, message } = ev.last().unwrap().clone() else {
        panic!("{ev:?}")
    };
    assert_eq!(cut.dialogue, "The tide turns");
    assert!(message.contains("cut off"), "{message}");
    // A 503, then success on the retry inside the same call.
    mock.push(Reply::error(503, "UNAVAILABLE"));
    let ev = events(
        app.send(RerollTurn {
            run_id: id.clone(),
            turn_id: cut.id.clone(),
        })
        .await,
    )
    .await
    .unwrap();
    let PlayEvent::Finished { turn: fine, .. } = ev.last().unwrap().clone() else {
        panic!("{ev:?}")
    };
    assert_eq!((fine.scene, fine.status), (3, TurnStatus::Complete));
    // Re-rolling a scene that is not the last is refused.
    let old = events(
        app.send(RerollTurn {
            run_id: id.clone(),
            turn_id: again.id.clone(),
        })
        .await,
    )
    .await
    .unwrap_err();
    assert!(matches!(old, AppError::Conflict(_)), "{old:?}");
}

async fn run_pages_work_without_javascript(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in_local().await;
    let character = five_scene_character(&app, "Mira").await;
    let id = app
        .call(StartRun {
            character_id: character.clone(),
        })
        .await
        .unwrap();
    let start = run(&app, &id).await;

    let html = app.html(&format!("/play/{id}")).await;
    assert!(html.contains("What do you do?"), "{html}");
    assert!(html.contains(&start.opening_line));
    assert!(html.contains("Opening · 5 scenes"));
    let listed = app.html(&format!("/characters/{character}/play")).await;
    assert!(listed.contains("Start a new story"));
    assert!(listed.contains(&format!("/play/{id}")));
    assert!(app
        .html(&format!("/characters/{character}"))
        .await
        .contains(&format!("/characters/{character}/play")));

    // A choice as a plain form post: the scene is written (offline), then back to the run.
    let res = app
        .client
        .post(app.url(Choose::PATH))
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("run_id={id}&after=&option=2"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(location(&res), format!("/play/{id}"));
    let played = run(&app, &id).await;
    assert_eq!(played.turns.len(), 1);
    assert_eq!(played.turns[0].status, TurnStatus::Complete);
    assert_eq!(played.turns[0].choice, start.start_options[2]);
    let html = app.html(&format!("/play/{id}")).await;
    assert!(html.contains("Scene 1 of 5"), "{html}");
    assert!(html.contains(&played.turns[0].options[0]));
    // The character's page offers to resume it.
    let sheet = app.html(&format!("/characters/{character}")).await;
    assert!(sheet.contains("stopped after 1 of 5 scenes"), "{sheet}");
    assert!(sheet.contains(&format!("href=\"/play/{id}\"")));
    // The dashboard lists it.
    assert!(app
        .html("/dashboard")
        .await
        .contains(&format!("/play/{id}")));
}

async fn a_scene_streams_from_the_openai_compatible_provider_and_outlives_a_closed_tab(
    backend: Backend,
) {
    let mock = mock_llm::MockLlm::start().await;
    let openai = mock.openai_base_url();
    let app = spawn_app_with(
        backend,
        &[
            ("LLM_PROVIDER", "openai"),
            ("OPENAI_BASE_URL", openai.as_str()),
            ("OPENAI_MODEL", "mock"),
        ],
        |_| {},
    )
    .await;
    app.sign_in_local().await;
    let character = five_scene_character(&app, "Mira").await;
    let id = app
        .call(StartRun {
            character_id: character,
        })
        .await
        .unwrap();

    // A streamed structured request, with the scene's schema.
    let ev = play(&app, &id, "", Some(0), "").await.unwrap();
    let PlayEvent::Finished { turn, .. } = ev.last().unwrap().clone() else {
        panic!("{ev:?}")
    };
    assert_eq!(turn.status, TurnStatus::Complete);
    assert!(
        ev.iter()
            .filter(|e| matches!(e, PlayEvent::Delta { .. }))
            .count()
            >= 3
    );
    let sent = mock.requests().last().unwrap().body.clone();
    assert_eq!(sent["stream"], true);
    assert_eq!(
        sent["response_format"]["json_schema"]["schema"]["required"],
        json!(["dialogue", "options"])
    );

    // The tab closes right after the choice is accepted: the scene is written and saved all the
    // same, and the reopened run shows it complete with its options.
    let res = app
        .send(TakeTurn {
            run_id: id.clone(),
            after: turn.id.clone(),
            choice: PlayChoice {
                option: Some(1),
                action: String::new(),
            },
        })
        .await;
    assert!(res.status().is_success());
    let mut body = res.bytes_stream();
    use futures::StreamExt;
    let first = body.next().await.unwrap().unwrap();
    assert!(std::str::from_utf8(&first)
        .unwrap()
        .contains("\"accepted\""));
    drop(body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let shown = run(&app, &id).await;
        if shown.turns.len() == 2 && shown.turns[1].status == TurnStatus::Complete {
            assert_eq!(shown.turns[1].options.len(), 3);
            assert!(!shown.turns[1].dialogue.is_empty());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scene was not finished: {shown:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until run `id`'s summary covers at least `through` scenes.
async fn summary_through(app: &TestApp, id: &str, through: u8) {
    let sql = format!(
        "SELECT COUNT(*) FROM play_runs WHERE id = '{id}' AND summary_through >= {through}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(app, &sql).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no summary through scene {through}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn a_long_run_keeps_a_running_summary_of_what_no_longer_fits(backend: Backend) {
    let (app, mock) = app_with_gemini(backend, 2).await;
    let mut d = full_draft("Mira");
    d.scenes = "15".into();
    let character = app
        .call(app::characters::SaveCharacter {
            draft: d,
            import: None,
        })
        .await
        .unwrap();
    let id = app
        .call(StartRun {
            character_id: character,
        })
        .await
        .unwrap();
    // Scenes of 1,190 characters: nine fit in a prompt's story budget (12,000), ten do not.
    let long: String = "The tide keeps every name it takes. "
        .repeat(40)
        .chars()
        .take(1190)
        .collect();
    let mut after = String::new();
    for scene in 1..=12u8 {
        mock.push(Reply::Json {
            value: json!({
                "dialogue": format!("Scene {scene}. {long}"),
                "options": [format!("Climb {scene}."), format!("Listen {scene}."), format!("Ask {scene}.")],
            }),
        });
        let ev = play(&app, &id, &after, Some(0), "").await.unwrap();
        let PlayEvent::Finished { turn, .. } = ev.last().unwrap().clone() else {
            panic!("scene {scene}: {ev:?}")
        };
        after = turn.id;
        if scene < 10 {
            assert_eq!(
                count(&app, "SELECT COUNT(*) FROM play_runs WHERE summary <> ''").await,
                0
            );
        } else {
            // The scenes that will not fit in the next prompt are folded in, one more each time.
            summary_through(&app, &id, scene - 9).await;
        }
    }
    let sent = mock.requests();
    // The fold requests: a structured summary of the scenes falling out, nothing streamed.
    let folds: Vec<&serde_json::Value> = sent
        .iter()
        .filter(|r| r.method == "generateContent")
        .map(|r| &r.body)
        .collect();
    assert_eq!(
        folds.len(),
        3,
        "one fold after each of scenes 10, 11 and 12"
    );
    let fold = folds[0]["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(fold.contains("Scene 1. The player:"), "{fold}");
    assert!(!fold.contains("Scene 2. The player:"), "{fold}");
    assert_eq!(
        folds[0]["generationConfig"]["responseJsonSchema"]["required"],
        json!(["summary"])
    );
    // Scene 12 was written from the summary of scenes 1 and 2 and the nine scenes after them that fit.
    let last = sent
        .iter()
        .rev()
        .find(|r| r.method == "streamGenerateContent")
        .unwrap();
    let prompt = last.body["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        prompt.contains("Earlier in the story (scenes 1 to 2, summarised): The mock summary"),
        "{}",
        &prompt[..prompt.len().min(1500)]
    );
    assert!(prompt.contains("Scene 3. The player: Climb 2."));
    assert!(prompt.contains("Scene 11. The player: Climb 10."));
    assert!(!prompt.contains("Scene 2. The player:"));
    assert!(!prompt.contains("happened earlier"));
    let shown = run(&app, &id).await;
    assert_eq!(shown.summary_through, 3);
    assert!(shown.summary.starts_with("The mock summary"));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM generations WHERE kind = 'play_summary' AND outcome = 'ok'"
        )
        .await,
        3
    );
    assert!(app
        .html(&format!("/play/{id}"))
        .await
        .contains("as the model remembers scenes 1 to 3"));
}

/// A scene's stored status and dialogue.
async fn stored_turn(app: &TestApp, id: &str) -> (String, String) {
    app::with_pool!(&app.db, pool => {
        let row: (String, String) = sqlx::query_as("SELECT status, dialogue FROM play_turns WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
        row
    })
}

async fn a_scene_cut_by_a_crash_is_interrupted_and_tried_again_after_restart(backend: Backend) {
    use crate::common::process::ServerProcess;
    use crate::reliability::{gemini_env, with};
    use futures::StreamExt;
    use std::time::{Duration, Instant};
    let mock = mock_llm::MockLlm::start().await;
    let db = TestDb::new(backend).await;
    let env = gemini_env(&mock);
    let env = with(&env, &[("REPLY_STALE_SECS", "1")]);
    let mut first = ServerProcess::start_new(&db, &env).await;
    first.app.sign_in_local().await;
    let character = five_scene_character(&first.app, "Mira").await;
    let id = first
        .app
        .call(StartRun {
            character_id: character,
        })
        .await
        .unwrap();
    // A slow scene: its JSON arrives a word at a time.
    let mut chunks = vec!["{\"dialogue\": \"".to_string()];
    chunks.extend((0..200).map(|i| format!("w{i} ")));
    mock.push(Reply::Text {
        chunks,
        finish: "STOP".into(),
        chunk_delay_ms: 40,
    });
    let res = first
        .app
        .send(TakeTurn {
            run_id: id.clone(),
            after: String::new(),
            choice: PlayChoice {
                option: Some(0),
                action: String::new(),
            },
        })
        .await;
    let mut body = res.bytes_stream();
    let mut lines = app::chat::EventLines::<PlayEvent>::default();
    let mut turn_id = None;
    while turn_id.is_none() {
        let chunk = body.next().await.unwrap().unwrap();
        for e in lines.push(std::str::from_utf8(&chunk).unwrap()) {
            if let Ok(PlayEvent::Accepted { turn }) = e {
                turn_id = Some(turn.id);
            }
        }
    }
    let turn_id = turn_id.unwrap();
    // Read on until some of the dialogue has been saved, then the server dies mid-scene.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_turn(&first.app, &turn_id).await.1.len() < 9 {
        assert!(Instant::now() < deadline, "nothing was flushed");
        body.next().await.expect("the scene goes on").unwrap();
    }
    first.kill();
    let (status, flushed) = stored_turn(&first.app, &turn_id).await;
    assert_eq!(status, "streaming");
    assert!(flushed.starts_with("w0 w1 "), "{flushed}");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = ServerProcess::start(&db, &env, first.app.client.clone()).await;
    assert_eq!(
        stored_turn(&second.app, &turn_id).await,
        ("interrupted".to_string(), flushed.clone()),
        "swept at start-up:\n{}",
        second.output()
    );
    // The page shows it cut off, with the choice kept and a way to try again.
    let html = second.app.html(&format!("/play/{id}")).await;
    assert!(
        html.contains("interrupted — the server stopped while writing"),
        "{html}"
    );
    assert!(html.contains("Try the scene again"), "{html}");
    let ev = events(
        second
            .app
            .send(RerollTurn {
                run_id: id.clone(),
                turn_id: turn_id.clone(),
            })
            .await,
    )
    .await
    .unwrap();
    let PlayEvent::Finished { turn, .. } = ev.last().unwrap().clone() else {
        panic!("{ev:?}")
    };
    assert_eq!((turn.scene, turn.status), (1, TurnStatus::Complete));
    assert_eq!(
        stored_turn(&second.app, &turn_id).await.0,
        "interrupted",
        "kept, superseded"
    );
}
