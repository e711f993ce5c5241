use crate::auth::{get_sign_in_options, LocalSignIn};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;

#[component]
pub fn SignInPage() -> impl IntoView {
    let options = Resource::new(|| (), |_| get_sign_in_options());
    let query = leptos_router::hooks::use_query_map();
    let flow_error = move || {
        crate::pages::layout::param(query, "error").map(|code| {
            view! { <p class="alert" role="alert">{crate::auth::flow_error_message(&code)}</p> }
        })
    };
    view! {
        <Title text="Sign in" />
        <section class="card narrow">
            <h1>"Sign in"</h1>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match options.await {
                        Ok(o) if !o.local && o.providers.is_empty() => {
                            view! { <p>"No sign-in method is configured on this server."</p> }.into_any()
                        }
                        Ok(o) => view! {
                            <ul class="providers">
                                {o.providers.into_iter().map(|(id, label)| view! {
                                    // A server route, not a page: rel="external" keeps the client-side router out of it.
                                    <li><a class="button" rel="external" href=format!("/auth/{id}/start")>{format!("Continue with {label}")}</a></li>
                                }).collect_view()}
                            </ul>
                            {o.local.then(|| view! {
                                <p>"This server runs on your own machine, so you can use it without an account."</p>
                                // A plain form: signing in ends in a full page load.
                                <form method="post" action=LocalSignIn::url()>
                                    <button type="submit" class="primary">"Continue as local user"</button>
                                </form>
                            })}
                        }.into_any(),
                        Err(e) => crate::pages::layout::error_view(e),
                    }
                })}
            </Suspense>
            {flow_error}
        </section>
    }
}
