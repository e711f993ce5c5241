//! Default avatars: a small generated picture per character instead of a flat swatch. The preset
//! the user picks sets the palette; the character's name seeds the composition (a horizon, a sun or
//! moon, and drifting shapes), so two characters on one preset still look different, and the same
//! character always looks the same — on the server and in the browser, which run this same code.
//! The picture is plain SVG geometry with presentation attributes (no inline styles, no scripts),
//! so it passes the Content-Security-Policy and needs no image request.

/// One preset's colours: sky from `top` to `bottom`, land, the light, and the shapes.
struct Palette {
    top: &'static str,
    bottom: &'static str,
    land: &'static str,
    light: &'static str,
    accent: &'static str,
}

fn palette(preset: &str) -> Palette {
    match preset {
        "ember" => Palette {
            top: "#5c0f0a",
            bottom: "#b3261e",
            land: "#2b0805",
            light: "#ffb38a",
            accent: "#ff7043",
        },
        "tide" => Palette {
            top: "#06284d",
            bottom: "#0b5cad",
            land: "#041a33",
            light: "#cfe8ff",
            accent: "#4fa3f7",
        },
        "moss" => Palette {
            top: "#123a0c",
            bottom: "#2e6b1f",
            land: "#0b2407",
            light: "#e4f5c4",
            accent: "#8bc34a",
        },
        "dusk" => Palette {
            top: "#24103a",
            bottom: "#5b2a86",
            land: "#170a26",
            light: "#ffd6f0",
            accent: "#c77dff",
        },
        "gold" => Palette {
            top: "#3d2800",
            bottom: "#8a5a00",
            land: "#261900",
            light: "#fff1b8",
            accent: "#ffc53d",
        },
        _ => Palette {
            top: "#1f1f26",
            bottom: "#4a4a55",
            land: "#131318",
            light: "#e8e8f0",
            accent: "#9e9eb3",
        },
    }
}

/// A shape of the picture, in a 64×64 box.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Circle {
        cx: f32,
        cy: f32,
        r: f32,
        fill: &'static str,
        opacity: f32,
    },
    /// A closed path (`d`), filled.
    Path {
        d: String,
        fill: &'static str,
        opacity: f32,
    },
}

/// A whole avatar picture.
#[derive(Debug, Clone, PartialEq)]
pub struct AvatarArt {
    /// The gradient's id, unique to the preset and the composition.
    pub gradient_id: String,
    pub top: &'static str,
    pub bottom: &'static str,
    pub shapes: Vec<Shape>,
}

impl AvatarArt {
    /// The picture's SVG content (inside `<svg viewBox="0 0 64 64">`), written in one string.
    /// Everything in it is a number, a palette colour or the hash-made gradient id — no text of
    /// the user's — so a page can place it as markup. One string per avatar instead of an element
    /// and an attribute string per shape, and no float formatting: a dashboard of avatars was a
    /// measurable share of a server render.
    pub fn svg_content(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(160 + 110 * self.shapes.len());
        let id = &self.gradient_id;
        let _ = write!(
            out,
            r#"<defs><linearGradient id="{id}" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="{}"/><stop offset="1" stop-color="{}"/></linearGradient></defs><rect width="64" height="64" fill="url(#{id})"/>"#,
            self.top, self.bottom
        );
        for shape in &self.shapes {
            let _ = match shape {
                Shape::Circle {
                    cx,
                    cy,
                    r,
                    fill,
                    opacity,
                } => write!(
                    out,
                    r#"<circle cx="{}" cy="{}" r="{}" fill="{fill}" opacity="{}"/>"#,
                    Fixed::<1>(*cx),
                    Fixed::<1>(*cy),
                    Fixed::<1>(*r),
                    Fixed::<2>(*opacity)
                ),
                Shape::Path { d, fill, opacity } => write!(
                    out,
                    r#"<path d="{d}" fill="{fill}" opacity="{}"/>"#,
                    Fixed::<2>(*opacity)
                ),
            };
        }
        out
    }
}

/// A number written with `DIGITS` decimals through integer formatting (the float formatter was a
/// hot spot of server rendering).
struct Fixed<const DIGITS: u32>(f32);

impl<const DIGITS: u32> std::fmt::Display for Fixed<DIGITS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scale = 10i64.pow(DIGITS);
        let n = (f64::from(self.0) * scale as f64).round() as i64;
        let sign = if n < 0 { "-" } else { "" };
        let n = n.abs();
        write!(
            f,
            "{sign}{}.{:0width$}",
            n / scale,
            n % scale,
            width = DIGITS as usize
        )
    }
}

/// FNV-1a: a stable hash that is the same in the browser and on the server.
fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A small deterministic generator over the hash.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 10_000) as f32 / 10_000.0
    }
    fn between(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next()
    }
}

/// The picture's SVG content for `name` on `preset` (what [`AvatarArt::svg_content`] writes). On the
/// server the markup is kept in a bounded least-recently-used cache: a dashboard draws the same
/// few dozen avatars on every view, and drawing them was about a tenth of its render time. The key
/// is everything the picture depends on (the preset and the name's seed), so a hit is exact.
pub fn avatar_markup(preset: &str, name: &str) -> std::sync::Arc<str> {
    #[cfg(feature = "ssr")]
    {
        use std::sync::{LazyLock, Mutex};
        type Cache = hashlink::LruCache<(String, u64), std::sync::Arc<str>>;
        /// About 1 KB an entry: a few MB at most.
        const ENTRIES: usize = 4096;
        static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| Mutex::new(Cache::new(ENTRIES)));
        let key = (preset.to_owned(), seed(name));
        if let Some(hit) = CACHE.lock().ok().and_then(|mut c| c.get(&key).cloned()) {
            return hit;
        }
        let markup: std::sync::Arc<str> = avatar_art(preset, name).svg_content().into();
        if let Ok(mut c) = CACHE.lock() {
            c.insert(key, markup.clone());
        }
        markup
    }
    #[cfg(not(feature = "ssr"))]
    {
        avatar_art(preset, name).svg_content().into()
    }
}

/// The composition's seed: the name, trimmed, hashed.
fn seed(name: &str) -> u64 {
    hash(name.trim()) | 1
}

/// The picture for `name` on `preset`.
pub fn avatar_art(preset: &str, name: &str) -> AvatarArt {
    let p = palette(preset);
    let seed = seed(name);
    let mut d = Dice(seed);
    let mut shapes = Vec::new();
    // The light: a sun or moon somewhere in the upper sky, with a soft halo.
    let (cx, cy, r) = (
        d.between(16.0, 48.0),
        d.between(14.0, 28.0),
        d.between(6.0, 10.0),
    );
    shapes.push(Shape::Circle {
        cx,
        cy,
        r: r * 1.8,
        fill: p.light,
        opacity: 0.18,
    });
    shapes.push(Shape::Circle {
        cx,
        cy,
        r,
        fill: p.light,
        opacity: 0.95,
    });
    // Drifting shapes: two or three soft accents.
    for _ in 0..(2 + (seed % 2) as usize) {
        shapes.push(Shape::Circle {
            cx: d.between(4.0, 60.0),
            cy: d.between(6.0, 40.0),
            r: d.between(2.0, 5.0),
            fill: p.accent,
            opacity: d.between(0.35, 0.7),
        });
    }
    // Two horizons: a far ridge in the accent colour, the near land dark.
    for (i, (fill, opacity)) in [(p.accent, 0.45f32), (p.land, 1.0)].into_iter().enumerate() {
        let base = 40.0 + 8.0 * i as f32;
        let (a, b, c) = (
            d.between(-6.0, 6.0),
            d.between(-8.0, 8.0),
            d.between(-6.0, 6.0),
        );
        let path = format!(
            "M0 {} C16 {} 32 {} 48 {} S64 {} 64 {} L64 64 L0 64 Z",
            Fixed::<1>(base + a),
            Fixed::<1>(base + b),
            Fixed::<1>(base - b),
            Fixed::<1>(base + c),
            Fixed::<1>(base - c),
            Fixed::<1>(base + a / 2.0)
        );
        shapes.push(Shape::Path {
            d: path,
            fill,
            opacity,
        });
    }
    AvatarArt {
        // Hashes only: the id goes into markup, and the preset is whatever was stored.
        gradient_id: format!("av-{:x}-{:x}", hash(preset) & 0xffff, seed & 0xff_ffff),
        top: p.top,
        bottom: p.bottom,
        shapes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_name_draws_the_same_picture_and_others_differ() {
        assert_eq!(avatar_art("tide", "Mira"), avatar_art("tide", "Mira"));
        assert_ne!(
            avatar_art("tide", "Mira").shapes,
            avatar_art("tide", "Ilse").shapes
        );
        assert_ne!(
            avatar_art("tide", "Mira").top,
            avatar_art("ember", "Mira").top
        );
    }

    #[test]
    fn fixed_point_numbers_are_the_value_to_their_last_digit() {
        for v in [0.0f32, 0.04, 0.05, 1.25, 9.99, 12.345, -3.21, -0.04, 63.96] {
            for (text, unit) in [
                (Fixed::<1>(v).to_string(), 0.1),
                (Fixed::<2>(v).to_string(), 0.01),
            ] {
                let digits = text.split('.').nth(1).unwrap().len();
                assert_eq!(digits, if unit == 0.1 { 1 } else { 2 }, "{text}");
                let back: f64 = text.parse().unwrap();
                assert!(
                    (back - f64::from(v)).abs() <= unit / 2.0 + 1e-6,
                    "{v} → {text}"
                );
            }
        }
        assert_eq!(Fixed::<1>(40.0).to_string(), "40.0");
        assert_eq!(Fixed::<2>(0.45).to_string(), "0.45");
        assert_eq!(Fixed::<1>(-5.96).to_string(), "-6.0");
    }

    #[test]
    fn the_svg_is_numbers_colours_and_the_hashed_id_only() {
        let art = avatar_art("\"><script>", "<b>Mira</b>");
        let svg = art.svg_content();
        assert!(!svg.contains("script") && !svg.contains("<b>"), "{svg}");
        assert_eq!(
            svg.matches("<circle").count() + svg.matches("<path").count(),
            art.shapes.len()
        );
        assert!(svg.contains(&format!("url(#{})", art.gradient_id)));
    }

    #[test]
    fn the_cached_markup_is_the_picture_drawn_fresh() {
        for (preset, name) in [
            ("tide", "Mira"),
            ("ember", "Mira"),
            ("tide", " Mira "),
            ("nope", "Ilse"),
        ] {
            let first = avatar_markup(preset, name);
            assert_eq!(
                &*first,
                avatar_art(preset, name).svg_content(),
                "{preset} {name}"
            );
            // A second call gives the same picture (on the server, the very same cached string).
            let again = avatar_markup(preset, name);
            assert_eq!(first, again);
            #[cfg(feature = "ssr")]
            assert!(std::sync::Arc::ptr_eq(&first, &again));
        }
        assert_ne!(
            avatar_markup("tide", "Mira"),
            avatar_markup("ember", "Mira")
        );
        assert_ne!(avatar_markup("tide", "Mira"), avatar_markup("tide", "Ilse"));
    }

    #[test]
    fn every_shape_stays_in_the_box() {
        for preset in crate::domain::Avatar::PRESETS {
            for name in ["", "A", "Mira Voss", "日本語の名前", &"x".repeat(60)] {
                for s in avatar_art(preset, name).shapes {
                    if let Shape::Circle { cx, cy, r, .. } = s {
                        assert!((0.0..=64.0).contains(&cx) && (0.0..=64.0).contains(&cy));
                        assert!(r > 0.0 && r < 32.0);
                    }
                }
            }
        }
    }
}
