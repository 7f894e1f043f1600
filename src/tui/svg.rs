//! A terminal buffer as an SVG picture, colours and all: the README's pictures of each tab
//! are rendered from the same fixtures as the snapshot tests (see `tests::pictures`), so they
//! never show an older dashboard than the code draws.

use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

const CELL_W: f32 = 8.4;
const CELL_H: f32 = 17.0;
const BG: &str = "#1e1e1e";
const FG: &str = "#d4d4d4";

/// The xterm colour of a named or indexed colour; `None` for the terminal's default.
fn hex(c: Color) -> Option<String> {
    let named = match c {
        Color::Reset => return None,
        Color::Black => "#000000",
        Color::Red => "#cd3131",
        Color::Green => "#0dbc79",
        Color::Yellow => "#e5e510",
        Color::Blue => "#2472c8",
        Color::Magenta => "#bc3fbc",
        Color::Cyan => "#11a8cd",
        Color::Gray => "#e5e5e5",
        Color::DarkGray => "#767676",
        Color::LightRed => "#f14c4c",
        Color::LightGreen => "#23d18b",
        Color::LightYellow => "#f5f543",
        Color::LightBlue => "#3b8eea",
        Color::LightMagenta => "#d670d6",
        Color::LightCyan => "#29b8db",
        Color::White => "#ffffff",
        Color::Rgb(r, g, b) => return Some(format!("#{r:02x}{g:02x}{b:02x}")),
        Color::Indexed(i) => return Some(format!("#{0:02x}{0:02x}{0:02x}", i)),
    };
    Some(named.to_string())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The picture of `buf`: one `<text>` per run of equally styled cells on a row.
pub fn render(buf: &Buffer) -> String {
    let (w, h) = (buf.area.width, buf.area.height);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{:.0}\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"14\">\n<rect width=\"100%\" height=\"100%\" fill=\"{BG}\"/>\n",
        f32::from(w) * CELL_W,
        f32::from(h) * CELL_H
    );
    for y in 0..h {
        let mut x = 0;
        while x < w {
            let cell = &buf[(x, y)];
            let reversed = cell.modifier.contains(Modifier::REVERSED);
            let (mut fg, mut bg) = (hex(cell.fg), hex(cell.bg));
            if reversed {
                (fg, bg) = (
                    Some(bg.unwrap_or_else(|| BG.into())),
                    Some(fg.unwrap_or_else(|| FG.into())),
                );
            }
            let bold = cell.modifier.contains(Modifier::BOLD);
            let crossed = cell.modifier.contains(Modifier::CROSSED_OUT);
            // The run: cells with the same look.
            let mut text = String::new();
            let start = x;
            while x < w {
                let c = &buf[(x, y)];
                if c.fg != cell.fg || c.bg != cell.bg || c.modifier != cell.modifier {
                    break;
                }
                text.push_str(c.symbol());
                x += 1;
            }
            let px = f32::from(start) * CELL_W;
            let py = f32::from(y) * CELL_H;
            if let Some(bg) = &bg {
                out.push_str(&format!(
                    "<rect x=\"{px:.1}\" y=\"{py:.1}\" width=\"{:.1}\" height=\"{CELL_H:.1}\" fill=\"{bg}\"/>\n",
                    f32::from(x - start) * CELL_W
                ));
            }
            if text.trim().is_empty() {
                continue;
            }
            // textLength keeps every run on the cell grid whatever the viewer's font.
            out.push_str(&format!(
                "<text x=\"{px:.1}\" y=\"{:.1}\" textLength=\"{:.1}\" lengthAdjust=\"spacingAndGlyphs\" fill=\"{}\"{}{} xml:space=\"preserve\">{}</text>\n",
                py + CELL_H * 0.75,
                f32::from(x - start) * CELL_W,
                fg.unwrap_or_else(|| FG.into()),
                if bold { " font-weight=\"bold\"" } else { "" },
                if crossed {
                    " text-decoration=\"line-through\""
                } else {
                    ""
                },
                escape(&text)
            ));
        }
    }
    out.push_str("</svg>\n");
    out
}
