use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text="" />
        <section class="hero">
            <h1>"Create characters. Talk to them."</h1>
            <p>
                "PersonaFlux writes a character's backstory, world, opening line and endings from a few traits, "
                "then lets you talk to them, with replies streamed as they are written."
            </p>
            <p>
                <a class="button primary" href="/dashboard">"Go to your dashboard"</a>
                " "
                <a class="button" href="/signin">"Sign in"</a>
            </p>
        </section>
    }
}
