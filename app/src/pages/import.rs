//! `/characters/import`: bring a character made elsewhere (SillyTavern, Agnai, RisuAI, a card
//! site) as a Character Card file. The card's draft opens in the wizard, where the user adds what
//! cards do not have (age, start options, endings) and saves.
//!
//! A plain form post (multipart) to the import server function: without JavaScript the server
//! redirects to the wizard, or back here with the error (`__err`); hydrated, the page sends the
//! same form itself and shows the error in place.

use crate::characters::{import_card, CardImport, ImportCard};
use crate::error::AppError;
use crate::pages::layout::{param, RequireSignIn};
use leptos::prelude::*;
use leptos::server_fn::error::ServerFnUrlError;
use leptos::server_fn::ServerFn;
use leptos::wasm_bindgen::JsCast;
use leptos::web_sys::{FormData, HtmlFormElement, SubmitEvent};
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};

#[component]
pub fn ImportPage() -> impl IntoView {
    let query = use_query_map();
    // The error of a form post sent without JavaScript, which the server redirected back here.
    let posted_error = move || {
        param(query, "__err").map(|e| ServerFnUrlError::<AppError>::decode_err(&e).to_string())
    };
    let upload = Action::new_local(|data: &FormData| import_card(data.clone().into()));
    let busy = upload.pending();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(CardImport { id, .. })) = upload.value().get() {
            navigate(&format!("/characters/new?import={id}"), Default::default());
        }
    });
    let error = move || match upload.value().get() {
        Some(Err(e)) => Some(e.to_string()),
        Some(Ok(_)) => None,
        None => posted_error(),
    };
    let submit = move |ev: SubmitEvent| {
        let Some(form) = ev
            .target()
            .and_then(|t| t.dyn_into::<HtmlFormElement>().ok())
        else {
            return;
        };
        if let Ok(data) = FormData::new_with_form(&form) {
            ev.prevent_default();
            upload.dispatch_local(data);
        }
    };
    view! {
        <RequireSignIn>
            <Title text="Import a character" />
            <div class="page-head">
                <h1>"Import a character"</h1>
                <a class="button" href="/dashboard">"Back to your characters"</a>
            </div>
            <p>
                "Bring a character from SillyTavern, Agnai, RisuAI or a card site: a Character Card "
                "(V1, V2 or V3) as a " <code>".json"</code> " file, a " <code>".png"</code>
                " with the card inside, or a " <code>".charx"</code> " file. Everything in the card is kept with the character; the wizard "
                "opens with its name, description, world and greeting, and asks for what cards do not "
                "have: the age, three start options and three endings."
            </p>
            {move || error().map(|e| view! { <p class="alert" role="alert" data-testid="import-error">{e}</p> })}
            <form class="import" method="post" action=ImportCard::PATH enctype="multipart/form-data"
                on:submit=submit>
                <div class="field">
                    <label for="card-file">"Card file"</label>
                    <input id="card-file" type="file" name="card" required
                        accept=".json,.png,.charx,application/json,image/png" />
                </div>
                <div class="actions">
                    <button type="submit" class="primary" disabled=move || busy.get()>
                        {move || if busy.get() { "Reading the card…" } else { "Import" }}
                    </button>
                </div>
            </form>
        </RequireSignIn>
    }
}
