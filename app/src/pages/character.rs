//! A character's page, what the dashboard opens: everything about them, and what can be done
//! with them — chat, play a story, edit, duplicate, delete (to the trash), mark as a favourite,
//! tag. Every action is a link or a form post, so the page works without JavaScript too.

use crate::characters::{
    get_character, CharacterView, DeleteCharacter, DuplicateCharacter, SetFavourite, SetTags,
};
use crate::pages::layout::{error_view, param, AvatarBadge};
use leptos::prelude::*;
use leptos::server_fn::error::ServerFnUrlError;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn CharacterPage() -> impl IntoView {
    let params = use_params_map();
    // The labels' actions live here, above the sheet, so reading the character again after one
    // (their versions are in the resource's key) keeps their results on screen.
    let favourite = ServerAction::<SetFavourite>::new();
    let tags = ServerAction::<SetTags>::new();
    let character = Resource::new(
        move || {
            (
                param(params, "id").unwrap_or_default(),
                favourite.version().get(),
                tags.version().get(),
            )
        },
        |(id, _, _)| get_character(id),
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match character.await {
                    Ok(c) => view! { <CharacterSheet c favourite tags /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}

#[component]
fn CharacterSheet(
    c: CharacterView,
    favourite: ServerAction<SetFavourite>,
    tags: ServerAction<SetTags>,
) -> impl IntoView {
    let duplicate = ServerAction::<DuplicateCharacter>::new();
    let delete = ServerAction::<DeleteCharacter>::new();
    let d = c.draft;
    let id = c.id;
    let lorebook = c.lorebook;
    let chats_href = format!("/chats?with={id}");
    let (chat_href, play_href, edit_href) = (
        format!("/characters/{id}/chat"),
        format!("/characters/{id}/play"),
        format!("/characters/{id}/edit"),
    );
    // Downloads, not pages: `rel="external"` keeps the router from handling them.
    let (png_href, json_href) = (
        format!("/characters/{id}/card.png"),
        format!("/characters/{id}/card.json"),
    );
    let (dup_id, del_id, fav_id, tags_id, picture_id, play_id) = (
        id.clone(),
        id.clone(),
        id.clone(),
        id.clone(),
        id.clone(),
        id,
    );
    let upload_path = <crate::characters::UploadPicture as leptos::server_fn::ServerFn>::PATH;
    let portrait =
        crate::domain::Avatar::picture_of(&d.avatar).map(|p| format!("/pictures/{p}/portrait.jpg"));
    let failure = move || {
        let dup = duplicate.value().get().and_then(|r| r.err());
        dup.or_else(|| delete.value().get().and_then(|r| r.err()))
            .or_else(|| favourite.value().get().and_then(|r| r.err()))
            .map(|e| e.to_string())
    };
    let tags_failure = move || {
        tags.value()
            .get()
            .and_then(|r| r.err())
            .map(|e| e.to_string())
    };
    // The error of a form post the server sent back here (`__err`): the picture upload always (a
    // plain form post), the labels' forms without JavaScript.
    let query = use_query_map();
    // Only the page's own sentences are shown as they came: the address is anyone's to write.
    let posted_error = move || {
        param(query, "__err").map(|e| {
            use crate::error::AppError;
            match ServerFnUrlError::<AppError>::decode_err(&e) {
                AppError::BadRequest(m) | AppError::TooLarge(m)
                    if crate::characters::PICTURE_SENTENCES.contains(&m.as_str()) =>
                {
                    m
                }
                AppError::RateLimited { .. } => {
                    "That is all the pictures you may upload today; try again later.".to_string()
                }
                AppError::NotFound => "That character is not there any more.".to_string(),
                _ => "That could not be saved: check the picture or the tags and try again."
                    .to_string(),
            }
        })
    };
    let is_favourite = c.favourite;
    let tag_list = c.tags.join(", ");
    let tag_links = c.tags;
    let details = format!(
        "{} · {} · {} · {} scenes{}",
        d.age,
        d.gender,
        d.language,
        d.scenes,
        if d.voice.is_empty() {
            String::new()
        } else {
            format!(" · voice {}", d.voice)
        }
    );
    view! {
        <Title text=d.name.clone() />
        <article class="character-sheet" data-testid="character-sheet">
            <header class="page-head">
                <div class="identity">
                    <AvatarBadge avatar=d.avatar.clone() name=d.name.clone() />
                    <div>
                        <h1>{d.name.clone()}</h1>
                        <p class="traits">{d.traits.join(" · ")}</p>
                        <p class="muted">{details}</p>
                    </div>
                </div>
                <nav class="actions" aria-label="Character actions">
                    <a class="button primary" href=chat_href>"Chat"</a>
                    <a class="button" href=chats_href>"All chats"</a>
                    <a class="button primary" href=play_href data-testid="play">"Play"</a>
                    <a class="button" href=edit_href>"Edit"</a>
                    <a class="button" href=png_href download="" rel="external"
                        title="A Character Card V3 (with a V2 copy) inside a PNG, for SillyTavern and other tools">"Export card"</a>
                    <a class="button" href=json_href download="" rel="external">"Export JSON"</a>
                    <ActionForm action=duplicate attr:class="inline">
                        <input type="hidden" name="id" value=dup_id />
                        <button type="submit">"Duplicate"</button>
                    </ActionForm>
                    <ActionForm action=favourite attr:class="inline">
                        <input type="hidden" name="id" value=fav_id />
                        <input type="hidden" name="favourite" value=(!is_favourite).to_string() />
                        <button type="submit" aria-pressed=is_favourite.to_string() data-testid="favourite">
                            {if is_favourite { "★ Favourite" } else { "☆ Favourite" }}
                        </button>
                    </ActionForm>
                    <ActionForm action=delete attr:class="inline">
                        <input type="hidden" name="id" value=del_id />
                        <button type="submit" class="danger">"Delete"</button>
                    </ActionForm>
                </nav>
            </header>
            {move || failure().map(|m| view! { <p class="alert" role="alert">{m}</p> })}
            {move || posted_error().map(|m| view! { <p class="alert" role="alert" data-testid="posted-error">{m}</p> })}
            <ResumeStory character_id=play_id />
            <section>
                <h2>"Opening line"</h2>
                <blockquote class="quote">{d.opening_line.clone()}</blockquote>
            </section>
            <section>
                <h2>"Backstory"</h2>
                <Paragraphs text=d.backstory.clone() />
            </section>
            <section>
                <h2>"The world"</h2>
                <Paragraphs text=d.story_context.clone() />
            </section>
            <section>
                <h2>"Start options"</h2>
                <ol>{d.start_options.iter().map(|o| view! { <li>{o.clone()}</li> }).collect_view()}</ol>
            </section>
            <section>
                <h2>"Endings"</h2>
                <dl class="endings">
                    {d.endings.iter().map(|e| view! {
                        <dt>{e.kind.clone()}</dt>
                        <dd>{e.text.clone()}</dd>
                    }).collect_view()}
                </dl>
            </section>
            {(!lorebook.is_empty()).then(|| view! {
                <section data-testid="lorebook">
                    <h2>"Lorebook"</h2>
                    <p class="muted">"From the imported card: what the model is told when a key comes up in the chat."</p>
                    <dl class="lorebook">
                        {lorebook.into_iter().map(|e| {
                            let keys = if e.constant { "always".to_string() } else if e.keys.is_empty() { "no keys: never used".to_string() } else { e.keys.join(", ") };
                            view! {
                                <dt>{keys}{(!e.enabled).then_some(" (off)")}</dt>
                                <dd>{e.content}</dd>
                            }
                        }).collect_view()}
                    </dl>
                </section>
            })}
            <section class="labels" aria-labelledby="tags-heading">
                <h2 id="tags-heading">"Tags"</h2>
                {if tag_links.is_empty() {
                    view! { <p class="muted">"No tags yet: they are yours alone, to find characters on the dashboard."</p> }.into_any()
                } else {
                    view! {
                        <ul class="tags" data-testid="tags">
                            {tag_links.into_iter().map(|t| {
                                let href = format!("/dashboard?{}", form_urlencoded::Serializer::new(String::new()).append_pair("tag", &t).finish());
                                view! { <li><a href=href>{t}</a></li> }
                            }).collect_view()}
                        </ul>
                    }.into_any()
                }}
                <ActionForm action=tags attr:class="inline tags-form">
                    <input type="hidden" name="id" value=tags_id />
                    <label for="tags-input">"Tags, separated by commas"</label>
                    <input id="tags-input" name="tags" value=tag_list maxlength="400"
                        aria-describedby="tags-help" />
                    <span id="tags-help" class="muted">{format!("At most {} tags of up to {} characters.", crate::domain::Tags::MAX, crate::domain::TagName::MAX)}</span>
                    <button type="submit">"Save tags"</button>
                </ActionForm>
                {move || tags_failure().map(|m| view! { <p class="alert" role="alert">{m}</p> })}
            </section>
            <section class="picture" aria-labelledby="picture-heading">
                <h2 id="picture-heading">"Picture"</h2>
                {portrait.map(|src| view! { <img class="portrait" src=src alt=format!("{}'s picture", d.name) width="256" height="384" /> })}
                // A plain multipart form post: the same with JavaScript off.
                <form method="post" action=upload_path enctype="multipart/form-data"
                    class="picture-form" data-testid="picture-form">
                    <input type="hidden" name="id" value=picture_id />
                    <label for="picture-file">"Upload a picture"</label>
                    <input id="picture-file" type="file" name="picture" accept="image/png,image/jpeg,image/webp"
                        aria-describedby="picture-help" required />
                    <button type="submit">"Upload"</button>
                    <span id="picture-help" class="muted">"PNG, JPEG or WebP up to 5 MB. It is cropped to a 2:3 portrait; what the file says about itself (where and when it was taken) is not kept."</span>
                </form>
            </section>
        </article>
    }
}

/// The latest story played with this character, offered to resume when it is unfinished.
#[component]
fn ResumeStory(character_id: String) -> impl IntoView {
    let latest = Resource::new(
        move || character_id.clone(),
        |id| crate::play::list_runs(Some(id), Some(1)),
    );
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                latest.await.ok().and_then(|runs| runs.into_iter().next())
                    .filter(|r| r.status == crate::play::RunStatus::Playing)
                    .map(|r| view! {
                        <p class="notice" data-testid="resume-story">
                            {format!("Your story with {} stopped after {} of {} scenes. ", r.character_name, r.played, r.scenes)}
                            <a href=format!("/play/{}", r.id)>"Resume the story"</a>
                        </p>
                    })
            })}
        </Suspense>
    }
}

/// Text with blank lines between its paragraphs, as paragraphs.
#[component]
fn Paragraphs(text: String) -> impl IntoView {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| view! { <p>{p.to_string()}</p> })
        .collect_view()
}
