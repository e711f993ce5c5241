//! The usage page (`/usage?days=7|30|90`): the signed-in user's model calls per day by use, the
//! tokens they took, how long they took (median and 95th percentile) and what failed, by use,
//! provider and language. The charts are SVG drawn here (no script), each followed by its numbers
//! as a table, so the page reads the same with JavaScript off and to a screen reader.

use crate::pages::layout::{error_view, param};
use crate::usage::{get_usage, UsageFigures, UsageLine, UsageReport, UseGroup, PERIODS};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// The period shown unless the address names another.
const DEFAULT_DAYS: u16 = 30;

#[component]
pub fn UsagePage() -> impl IntoView {
    let query = use_query_map();
    let days = move || {
        param(query, "days")
            .and_then(|d| d.parse::<u16>().ok())
            .unwrap_or(DEFAULT_DAYS)
    };
    let report = Resource::new(days, get_usage);
    view! {
        <Title text="Usage" />
        <div class="page-head">
            <h1>"Your usage"</h1>
        </div>
        <nav class="filters" aria-label="Period">
            "Last "
            {PERIODS.into_iter().map(|d| view! {
                <a href=format!("/usage?days={d}") aria-current=move || (days() == d).then_some("page")>
                    {format!("{d} days")}
                </a> " "
            }).collect_view()}
        </nav>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match report.await {
                    Ok(r) => view! { <Report r /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Report(r: UsageReport) -> impl IntoView {
    let period = format!("{} to {} (UTC)", r.from, r.to);
    if r.totals.calls == 0 {
        return view! {
            <p class="empty" data-testid="usage-empty">
                {format!("No model calls from {period}. Every character written, chat reply, play scene and match counts here: ")}
                <a href="/characters/new">"create a character"</a> " to begin."
            </p>
        }
        .into_any();
    }
    let dates: Vec<String> = r.daily.iter().map(|d| d.date.clone()).collect();
    let calls: Vec<Series> = UseGroup::ALL
        .into_iter()
        .map(|g| Series {
            label: g.label(),
            class: g.as_str(),
            values: r.daily.iter().map(|d| d.calls_of(g)).collect(),
        })
        .collect();
    let tokens = vec![
        Series {
            label: "Tokens in",
            class: "tokens-in",
            values: r.daily.iter().map(|d| d.input_tokens).collect(),
        },
        Series {
            label: "Tokens out",
            class: "tokens-out",
            values: r.daily.iter().map(|d| d.output_tokens).collect(),
        },
    ];
    let t = r.totals.clone();
    view! {
        <p class="muted">{period}</p>
        <dl class="figures" data-testid="usage-totals">
            <div><dt>"Model calls"</dt><dd>{thousands(t.calls)}</dd></div>
            <div><dt>"Failed"</dt><dd>{thousands(t.failed)}</dd></div>
            <div><dt>"Tokens in"</dt><dd>{thousands(t.input_tokens)}</dd></div>
            <div><dt>"Tokens out"</dt><dd>{thousands(t.output_tokens)}</dd></div>
            <div><dt>"Median time"</dt><dd>{duration(t.p50_ms)}</dd></div>
            <div><dt>"95th percentile"</dt><dd>{duration(t.p95_ms)}</dd></div>
        </dl>
        <section aria-labelledby="calls-chart">
            <h2 id="calls-chart">"Calls per day"</h2>
            <BarChart id="calls" title="Model calls per day, by use" dates=dates.clone() series=calls />
        </section>
        <section aria-labelledby="tokens-chart">
            <h2 id="tokens-chart">"Tokens per day"</h2>
            <BarChart id="tokens" title="Tokens per day, in and out" dates series=tokens />
        </section>
        <section aria-labelledby="breakdowns">
            <h2 id="breakdowns">"Where it went"</h2>
            <Breakdown caption="By use" first="Use" lines=r.by_use testid="by-use" />
            <Breakdown caption="By provider" first="Provider" lines=r.by_provider testid="by-provider" />
            <Breakdown caption="By language" first="Language" lines=r.by_language testid="by-language" />
            {if r.failures.is_empty() {
                view! { <p data-testid="no-failures">"No call failed in this period."</p> }.into_any()
            } else {
                view! { <Breakdown caption="Failures by kind" first="What happened" lines=r.failures testid="failures" /> }.into_any()
            }}
        </section>
    }
    .into_any()
}

/// One stack of a bar chart: a label, its CSS class (its colour) and a value per day.
#[derive(Clone)]
struct Series {
    label: &'static str,
    class: &'static str,
    values: Vec<u64>,
}

const W: f64 = 720.0;
const H: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 10.0;

/// A stacked bar chart, one bar per day, drawn as SVG, with a legend, a `<title>` on each
/// segment, and the same numbers in a table after it.
#[component]
fn BarChart(
    id: &'static str,
    title: &'static str,
    dates: Vec<String>,
    series: Vec<Series>,
) -> impl IntoView {
    let n = dates.len().max(1);
    let stacks: Vec<u64> = (0..dates.len())
        .map(|i| series.iter().map(|s| s.values[i]).sum())
        .collect();
    let top = nice_ceiling(stacks.iter().copied().max().unwrap_or(0));
    let plot_w = W - LEFT - 4.0;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / n as f64;
    let bar = (slot * 0.7).max(1.0);
    let y = move |v: u64| TOP + plot_h - plot_h * v as f64 / top as f64;
    // The chart's shapes as one string of markup (numbers, dates and the series' own labels,
    // nothing a user typed), set as the SVG's content: far less code in the browser bundle than
    // a view per shape.
    use std::fmt::Write as _;
    let mut shapes = String::new();
    for v in [0, top / 2, top] {
        let gy = y(v);
        let _ = write!(
            shapes,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{gy:.1}" y2="{gy:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - 4.0,
            LEFT - 6.0,
            gy + 4.0,
            compact(v)
        );
    }
    // About eight date labels, whatever the period.
    let every = n.div_ceil(8);
    for (i, d) in dates.iter().enumerate() {
        // Counted back from today, so today is always labelled and no two labels crowd.
        if (n - 1 - i).is_multiple_of(every) {
            // Today's label ends at the chart's edge, so it is never cut off.
            let (x, anchor) = if i == n - 1 {
                (W - 4.0, "end")
            } else {
                (LEFT + slot * (i as f64 + 0.5), "middle")
            };
            let _ = write!(
                shapes,
                r#"<text class="axis" x="{x:.1}" y="{}" text-anchor="{anchor}">{}</text>"#,
                H - 6.0,
                escape(d.get(5..).unwrap_or(d))
            );
        }
    }
    for (i, date) in dates.iter().enumerate() {
        let mut base = 0u64;
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        for s in &series {
            let v = s.values[i];
            if v == 0 {
                continue;
            }
            let (y1, y0) = (y(base + v), y(base));
            base += v;
            let _ = write!(
                shapes,
                r#"<rect class="bar s-{}" x="{x:.1}" y="{y1:.1}" width="{bar:.1}" height="{:.1}"><title>{}: {} {}</title></rect>"#,
                escape(s.class),
                (y0 - y1).max(0.5),
                escape(date),
                thousands(v),
                escape(&s.label.to_lowercase())
            );
        }
    }
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    let desc = format!(
        "{} days from {} to {}; highest day {}. The numbers are in the table after the chart.",
        dates.len(),
        dates.first().cloned().unwrap_or_default(),
        dates.last().cloned().unwrap_or_default(),
        thousands(stacks.iter().copied().max().unwrap_or(0)),
    );
    let labelled = format!("{title_id} {desc_id}");
    view! {
        <figure class="chart" data-testid=format!("chart-{id}")>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-labelledby=labelled preserveAspectRatio="xMidYMid meet">
                <title id=title_id>{title}</title>
                <desc id=desc_id>{desc}</desc>
                <g inner_html=shapes></g>
            </svg>
            <figcaption>
                <ul class="legend">
                    {series.iter().map(|s| view! {
                        <li><span class=format!("swatch s-{}", s.class) aria-hidden="true"></span>{s.label}</li>
                    }).collect_view()}
                </ul>
            </figcaption>
        </figure>
        <details class="chart-table">
            <summary>{format!("{title}: the numbers")}</summary>
            // Focusable, so a table wider than a phone can be scrolled with the keyboard.
            <div class="table-scroll" tabindex="0" role="region" aria-label=title>
                <table data-testid=format!("table-{id}")>
                    <caption class="sr-only">{title}</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Day"</th>
                            {series.iter().map(|s| view! { <th scope="col">{s.label}</th> }).collect_view()}
                            <th scope="col">"Total"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {dates.iter().enumerate().map(|(i, d)| view! {
                            <tr>
                                <th scope="row">{d.clone()}</th>
                                {series.iter().map(|s| view! { <td>{thousands(s.values[i])}</td> }).collect_view()}
                                <td>{thousands(stacks[i])}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </details>
    }
}

/// A table of figures per use, provider, language or failure.
#[component]
fn Breakdown(
    caption: &'static str,
    first: &'static str,
    lines: Vec<UsageLine>,
    testid: &'static str,
) -> impl IntoView {
    view! {
        <div class="table-scroll" tabindex="0" role="region" aria-label=caption>
            <table class="usage" data-testid=testid>
                <caption>{caption}</caption>
                <thead>
                    <tr>
                        <th scope="col">{first}</th>
                        <th scope="col">"Calls"</th>
                        <th scope="col">"Failed"</th>
                        <th scope="col">"Tokens in"</th>
                        <th scope="col">"Tokens out"</th>
                        <th scope="col">"Median"</th>
                        <th scope="col">"95th pct."</th>
                    </tr>
                </thead>
                <tbody>
                    {lines.into_iter().map(|l| {
                        let UsageFigures { calls, failed, input_tokens, output_tokens, p50_ms, p95_ms } = l.figures;
                        view! {
                            <tr data-key=l.key>
                                <th scope="row">{l.label}</th>
                                <td>{thousands(calls)}</td>
                                <td>{thousands(failed)}</td>
                                <td>{thousands(input_tokens)}</td>
                                <td>{thousands(output_tokens)}</td>
                                <td>{duration(p50_ms)}</td>
                                <td>{duration(p95_ms)}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// Text made safe to put in markup.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An axis label: `950`, `12k`, `3.4M`.
fn compact(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => trim(n as f64 / 1e3, "k"),
        _ => trim(n as f64 / 1e6, "M"),
    }
}

fn trim(v: f64, unit: &str) -> String {
    let s = format!("{v:.1}");
    format!("{}{unit}", s.strip_suffix(".0").unwrap_or(&s))
}

/// A call time: `850 ms`, `1.2 s`; a dash where there is none.
fn duration(ms: Option<u32>) -> String {
    match ms {
        None => "—".into(),
        // The first bucket says only "this quick or quicker".
        Some(ms) if ms <= crate::usage::LATENCY_BOUNDS_MS[0] => {
            format!("≤ {} ms", crate::usage::LATENCY_BOUNDS_MS[0])
        }
        Some(ms) if ms < 1_000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", f64::from(ms) / 1000.0),
    }
}

/// The smallest even number of the form 1, 2 or 5 × a power of ten that is at least `max`: the top
/// of a chart's scale, so its middle line is a whole round number too.
fn nice_ceiling(max: u64) -> u64 {
    let mut power = 1u64;
    loop {
        for m in [1, 2, 5] {
            let v = power.saturating_mul(m);
            if v >= max && v.is_multiple_of(2) {
                return v;
            }
        }
        power = power.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(compact(950), "950");
        assert_eq!(compact(12_000), "12k");
        assert_eq!(compact(3_400_000), "3.4M");
        assert_eq!(duration(None), "—");
        assert_eq!(duration(Some(850)), "850 ms");
        assert_eq!(duration(Some(12)), "≤ 50 ms");
        assert_eq!(duration(Some(1_240)), "1.2 s");
    }

    #[test]
    fn scales_end_on_round_even_numbers() {
        assert_eq!(nice_ceiling(0), 2);
        assert_eq!(nice_ceiling(1), 2);
        assert_eq!(nice_ceiling(3), 10);
        for max in [7u64, 19, 140, 999, 1_001, 123_456] {
            let top = nice_ceiling(max);
            assert!(
                top >= max && top.is_multiple_of(2) && top <= max * 10,
                "{max} → {top}"
            );
        }
    }
}
