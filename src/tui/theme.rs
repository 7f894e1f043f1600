//! Colour themes: TOML files in `assets/themes/`, embedded at build time and chosen with
//! `ui.theme`. `NO_COLOR` still wins (the view then keeps only bold, reversed and the like).

use std::str::FromStr;

use ratatui::style::Color;
use serde::Deserialize;

/// The embedded theme files, by name.
const FILES: &[(&str, &str)] = &[
    ("default", include_str!("../../assets/themes/default.toml")),
    ("light", include_str!("../../assets/themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../assets/themes/high-contrast.toml"),
    ),
];

/// The names `ui.theme` accepts.
pub fn names() -> Vec<&'static str> {
    FILES.iter().map(|(n, _)| *n).collect()
}

/// The colours the views use, by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Palette {
    pub name: String,
    pub ok: Color,
    pub bad: Color,
    pub busy: Color,
    pub dim: Color,
    pub title: Color,
    /// The DEMO badge's background.
    pub badge: Color,
}

impl Default for Palette {
    fn default() -> Self {
        named("default").unwrap_or(Palette {
            name: "default".into(),
            ok: Color::Green,
            bad: Color::Red,
            busy: Color::Yellow,
            dim: Color::DarkGray,
            title: Color::Cyan,
            badge: Color::Magenta,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    ok: String,
    bad: String,
    busy: String,
    dim: String,
    title: String,
    badge: String,
}

/// Parses a theme file; the error names the key and the value it could not read.
pub fn parse(text: &str) -> Result<Palette, String> {
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let color = |key: &str, v: &str| {
        Color::from_str(v).map_err(|_| format!("`{key} = \"{v}\"` is not a colour"))
    };
    Ok(Palette {
        ok: color("ok", &f.ok)?,
        bad: color("bad", &f.bad)?,
        busy: color("busy", &f.busy)?,
        dim: color("dim", &f.dim)?,
        title: color("title", &f.title)?,
        badge: color("badge", &f.badge)?,
        name: f.name,
    })
}

/// The embedded theme `name`.
pub fn named(name: &str) -> Option<Palette> {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, text)| parse(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_theme_parses_under_its_own_name_and_they_differ() {
        let all: Vec<Palette> = names()
            .into_iter()
            .map(|n| {
                let p = named(n).unwrap_or_else(|| panic!("theme {n} does not parse"));
                assert_eq!(p.name, n);
                p
            })
            .collect();
        assert_eq!(all.len(), 3);
        assert_ne!(all[0].ok, all[1].ok);
        assert_ne!(all[0].dim, all[2].dim);
        assert_eq!(Palette::default(), all[0]);
    }

    #[test]
    fn a_bad_colour_is_named() {
        let e = parse(
            "name = \"x\"\nok = \"greenish\"\nbad = \"red\"\nbusy = \"red\"\ndim = \"red\"\ntitle = \"red\"\nbadge = \"red\"\n",
        )
        .unwrap_err();
        assert!(e.contains("`ok = \"greenish\"` is not a colour"), "{e}");
    }
}
