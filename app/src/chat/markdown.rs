//! Messages as Markdown: *actions* in emphasis, quotes, lists, code — what SillyTavern users
//! write and models answer in. Rendered once, on the server, by `pulldown-cmark` (CommonMark,
//! with strikethrough); the browser shows the HTML it is given, so the page, its hydration and
//! every reload agree, and no Markdown library is in the browser bundle.
//!
//! Nothing a message holds runs or loads anything: raw HTML is shown as text (escaped), a link
//! keeps only an `http`, `https` or `mailto` address (any other is shown as its text alone), and an
//! image is shown as its description, never fetched. A line break in a message is a line break.

use pulldown_cmark::{html, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// `text` (a message) as HTML that is safe to put in the page.
pub fn render(text: &str) -> String {
    let parser = Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH);
    // For each link open, whether it was kept (its end is dropped with it otherwise).
    let mut links: Vec<bool> = Vec::new();
    let events = parser.filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::SoftBreak => Some(Event::HardBreak),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            // An email autolink (`<a@example.org>`) carries its address without `mailto:`.
            let kept = safe_address(&dest_url) || link_type == LinkType::Email;
            links.push(kept);
            kept.then_some(Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        Event::End(TagEnd::Link) => links.pop().unwrap_or(false).then_some(event),
        // An image's description stays, as text; the picture is never loaded.
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        Event::InlineMath(m) | Event::DisplayMath(m) => Some(Event::Text(m)),
        Event::FootnoteReference(r) => Some(Event::Text(CowStr::from(format!("[^{r}]")))),
        other => Some(other),
    });
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    html::push_html(&mut out, events);
    // No newline after the last block: the message's text ends where its words do.
    out.truncate(out.trim_end().len());
    out
}

/// Whether a link may point at `url`: a web or mail address, nothing that runs or reads locally.
fn safe_address(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn actions_quotes_lists_and_code_are_formatted() {
        assert_eq!(
            render("*waves* Hello, **friend**."),
            "<p><em>waves</em> Hello, <strong>friend</strong>.</p>"
        );
        assert!(render("> the old song").contains("<blockquote>"));
        assert!(render("- one\n- two").contains("<ul>\n<li>one</li>"));
        assert!(render("```\nlet x = 1;\n```").contains("<pre><code>let x = 1;\n</code></pre>"));
        assert!(render("`code`").contains("<code>code</code>"));
        assert!(render("~~gone~~").contains("<del>gone</del>"));
    }

    #[test]
    fn a_line_break_is_a_line_break() {
        assert_eq!(render("one\ntwo"), "<p>one<br />\ntwo</p>");
    }

    #[test]
    fn raw_html_is_shown_not_run() {
        let out = render("<script>alert(1)</script> and <img src=x onerror=alert(1)>");
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        let out = render("<div onclick=\"x()\">\n\nblock\n</div>");
        assert!(!out.contains("<div"), "{out}");
    }

    #[test]
    fn only_web_and_mail_links_are_kept_and_images_are_never_loaded() {
        assert!(render("[site](https://example.org)")
            .contains("<a href=\"https://example.org\">site</a>"));
        assert!(render("[mail](mailto:a@example.org)").contains("href=\"mailto:a@example.org\""));
        for bad in [
            "[x](javascript:alert(1))",
            "[x](JAVASCRIPT:alert(1))",
            "[x]( javascript:alert(1))",
            "[x](data:text/html,<script>alert(1)</script>)",
            "[x](vbscript:msgbox)",
            "[x](/local/path)",
        ] {
            let out = render(bad);
            assert!(!out.contains("<a"), "{bad} → {out}");
            assert!(out.contains('x'), "{bad} → {out}");
        }
        let out = render("![a lighthouse](https://example.org/track.png)");
        assert!(!out.contains("<img"), "{out}");
        assert!(out.contains("a lighthouse"), "{out}");
        // An autolink is a link like any other.
        assert!(!render("<javascript:alert(1)>").contains("<a"));
        assert!(render("<a@example.org>").contains("href=\"mailto:a@example.org\""));
    }

    #[test]
    fn anything_renders_without_a_panic() {
        for text in [
            "",
            "*",
            "**",
            "[",
            "](",
            "> > >",
            "\u{0}",
            "`",
            "|a|b|\n|-|-|",
        ] {
            let _ = render(text);
        }
    }
}
