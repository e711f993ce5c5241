//! The settings page for API keys (`/settings/keys`): make a key (its secret shown once), see
//! each key's prefix, access, dates and state, and revoke one.

use crate::keys::{list_api_keys, ApiKeyView, CreateApiKey, RevokeApiKey, MAX_EXPIRY_DAYS};
use crate::pages::layout::{date, error_view};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn KeysPage() -> impl IntoView {
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_api_keys(),
    );
    view! {
        <Title text="API keys" />
        <h1>"API keys"</h1>
        <p>
            "A key lets a script or tool use the PersonaFlux API as you ("
            <a href="/api/v1/docs" rel="external">"the API reference"</a>
            "): send it as " <code>"Authorization: Bearer pf_…"</code>
            ". A key cannot manage keys or sign in. Revoking one stops it at once."
        </p>
        <ActionForm action=create attr:class="key-form">
            <div class="field">
                <label for="key-name">"Name"</label>
                <input id="key-name" name="name" required maxlength="60" autocomplete="off"
                    placeholder="e.g. Build pipeline" />
            </div>
            <div class="field">
                <label>
                    <input type="checkbox" name="write" value="true" />
                    " May change data (otherwise read only)"
                </label>
            </div>
            <div class="field">
                <label for="key-expiry">"Expires"</label>
                <select id="key-expiry" name="expires_in_days">
                    <option value="0">"Never (until revoked)"</option>
                    <option value="7">"In 7 days"</option>
                    <option value="30">"In 30 days"</option>
                    <option value="90">"In 90 days"</option>
                    <option value=MAX_EXPIRY_DAYS.to_string()>"In a year"</option>
                </select>
            </div>
            <button type="submit" class="primary" data-testid="create-key">"Create key"</button>
        </ActionForm>
        {move || create.value().get().map(|r| match r {
            Ok(k) => view! {
                <div class="notice" role="status" data-testid="new-secret">
                    <p>{format!("Your new key “{}”. Copy it now: it is shown only this once.", k.key.name)}</p>
                    <p><code class="secret">{k.secret}</code></p>
                </div>
            }.into_any(),
            Err(e) => view! { <p class="alert" role="alert">{e.to_string()}</p> }.into_any(),
        })}
        {move || revoke.value().get().and_then(|r| r.err()).map(|e| view! {
            <p class="alert" role="alert">{e.to_string()}</p>
        })}
        <h2>"Your keys"</h2>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match keys.await {
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"No keys yet. Make one above when a script needs to reach your characters."</p>
                    }.into_any(),
                    Ok(list) => view! { <KeyTable list revoke /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}

#[component]
fn KeyTable(list: Vec<ApiKeyView>, revoke: ServerAction<RevokeApiKey>) -> impl IntoView {
    view! {
        <table class="keys" data-testid="key-list">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Key"</th>
                    <th scope="col">"Access"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col">"Last used"</th>
                    <th scope="col">"Expires"</th>
                    <th scope="col">"State"</th>
                </tr>
            </thead>
            <tbody>
                {list.into_iter().map(|k| {
                    let state = if k.revoked { "revoked" } else if k.expired { "expired" } else { "active" };
                    let id = k.id.clone();
                    let label = format!("Revoke {}", k.name);
                    view! {
                        <tr data-state=state>
                            <td>{k.name}</td>
                            <td><code>{format!("{}…", k.prefix)}</code></td>
                            <td>{if k.write { "read and write" } else { "read only" }}</td>
                            <td>{date(k.created_at)}</td>
                            <td>{k.last_used_at.map(date).unwrap_or_else(|| "never".into())}</td>
                            <td>{k.expires_at.map(date).unwrap_or_else(|| "never".into())}</td>
                            <td>
                                {state}
                                {(state == "active").then(|| view! {
                                    " "
                                    <ActionForm action=revoke attr:class="inline">
                                        <input type="hidden" name="id" value=id />
                                        <button type="submit" class="danger" aria-label=label>"Revoke"</button>
                                    </ActionForm>
                                })}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}
