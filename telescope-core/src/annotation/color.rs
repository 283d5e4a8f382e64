//! Colors: `#rrggbb`, `#rgb` (with optional alpha) and HTML names, a stable color per track.

use serde::{Deserialize, Serialize};

/// An RGBA color, 8 bits per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Color {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
    /// Alpha (255 opaque).
    pub a: u8,
}

/// Why a string is not a color.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a color: use #rrggbb, #rgb, #rrggbbaa, #rgba or an HTML color name")]
pub struct ColorError(pub String);

const NAMED: &[(&str, u32)] = &[
    ("black", 0x000000),
    ("white", 0xffffff),
    ("red", 0xff0000),
    ("lime", 0x00ff00),
    ("green", 0x008000),
    ("blue", 0x0000ff),
    ("yellow", 0xffff00),
    ("cyan", 0x00ffff),
    ("aqua", 0x00ffff),
    ("magenta", 0xff00ff),
    ("fuchsia", 0xff00ff),
    ("silver", 0xc0c0c0),
    ("gray", 0x808080),
    ("grey", 0x808080),
    ("maroon", 0x800000),
    ("olive", 0x808000),
    ("purple", 0x800080),
    ("teal", 0x008080),
    ("navy", 0x000080),
    ("orange", 0xffa500),
    ("pink", 0xffc0cb),
    ("brown", 0xa52a2a),
    ("gold", 0xffd700),
    ("coral", 0xff7f50),
    ("crimson", 0xdc143c),
    ("indigo", 0x4b0082),
    ("violet", 0xee82ee),
    ("turquoise", 0x40e0d0),
    ("salmon", 0xfa8072),
    ("khaki", 0xf0e68c),
    ("orchid", 0xda70d6),
    ("tomato", 0xff6347),
    ("chocolate", 0xd2691e),
    ("tan", 0xd2b48c),
    ("beige", 0xf5f5dc),
    ("lavender", 0xe6e6fa),
    ("plum", 0xdda0dd),
    ("skyblue", 0x87ceeb),
    ("steelblue", 0x4682b4),
    ("royalblue", 0x4169e1),
    ("dodgerblue", 0x1e90ff),
    ("deepskyblue", 0x00bfff),
    ("limegreen", 0x32cd32),
    ("forestgreen", 0x228b22),
    ("seagreen", 0x2e8b57),
    ("springgreen", 0x00ff7f),
    ("darkorange", 0xff8c00),
    ("orangered", 0xff4500),
    ("hotpink", 0xff69b4),
    ("deeppink", 0xff1493),
    ("darkred", 0x8b0000),
    ("darkgreen", 0x006400),
    ("darkblue", 0x00008b),
    ("darkgray", 0xa9a9a9),
    ("lightgray", 0xd3d3d3),
    ("slategray", 0x708090),
    ("whitesmoke", 0xf5f5f5),
    ("transparent", 0x000000),
];

impl Color {
    /// An opaque color.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Color {
        Color { r, g, b, a: 255 }
    }

    /// A color with opacity `a` (255 opaque).
    pub const fn rgba(r: u8, g: u8, b: u8, a: u8) -> Color {
        Color { r, g, b, a }
    }

    /// The same color with another alpha (0.0 transparent to 1.0 opaque).
    #[must_use]
    pub fn with_alpha(self, alpha: f64) -> Color {
        Color {
            a: (alpha.clamp(0.0, 1.0) * 255.0).round() as u8,
            ..self
        }
    }

    /// Perceived brightness in [0, 1] (ITU-R BT.601 luma).
    pub fn brightness(self) -> f64 {
        (0.299 * f64::from(self.r) + 0.587 * f64::from(self.g) + 0.114 * f64::from(self.b)) / 255.0
    }

    /// Black or white, whichever reads better on this color (for label text).
    pub fn contrasting(self) -> Color {
        if self.brightness() > 0.55 {
            Color::rgb(0, 0, 0)
        } else {
            Color::rgb(255, 255, 255)
        }
    }

    /// A stable, saturated color for a track id: the same id is always the same color, and
    /// neighbouring ids differ (golden-ratio hue steps).
    pub fn for_track(id: u64) -> Color {
        let hue = (id as f64 * 0.618_033_988_749_895).fract();
        let (s, v) = (0.75, 0.95);
        let h6 = hue * 6.0;
        let i = h6.floor() as u32 % 6;
        let f = h6 - h6.floor();
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let (r, g, b) = match i {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
        let c = |x: f64| (x * 255.0).round() as u8;
        Color::rgb(c(r), c(g), c(b))
    }

    /// `#rrggbb`, or `#rrggbbaa` when not opaque.
    pub fn to_hex(self) -> String {
        if self.a == 255 {
            format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
        } else {
            format!("#{:02x}{:02x}{:02x}{:02x}", self.r, self.g, self.b, self.a)
        }
    }
}

impl Default for Color {
    /// Lime green: visible on most footage.
    fn default() -> Self {
        Color::rgb(0, 255, 0)
    }
}

impl std::str::FromStr for Color {
    type Err = ColorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ColorError(s.to_owned());
        let t = s.trim();
        if let Some(hex) = t.strip_prefix('#') {
            if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(err());
            }
            let digit = |i: usize| u8::from_str_radix(&hex[i..i + 1], 16).map_err(|_| err());
            let pair = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| err());
            return match hex.len() {
                3 | 4 => {
                    let short = |i| digit(i).map(|v| v * 17);
                    let a = if hex.len() == 4 { short(3)? } else { 255 };
                    Ok(Color {
                        r: short(0)?,
                        g: short(1)?,
                        b: short(2)?,
                        a,
                    })
                }
                6 | 8 => {
                    let a = if hex.len() == 8 { pair(6)? } else { 255 };
                    Ok(Color {
                        r: pair(0)?,
                        g: pair(2)?,
                        b: pair(4)?,
                        a,
                    })
                }
                _ => Err(err()),
            };
        }
        let lower = t.to_ascii_lowercase();
        let (_, v) = NAMED.iter().find(|(n, _)| *n == lower).ok_or_else(err)?;
        let a = if lower == "transparent" { 0 } else { 255 };
        Ok(Color {
            r: (v >> 16) as u8,
            g: (v >> 8) as u8,
            b: *v as u8,
            a,
        })
    }
}

impl TryFrom<String> for Color {
    type Error = ColorError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Color> for String {
    fn from(c: Color) -> String {
        c.to_hex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms_and_names_parse() {
        assert_eq!("#ff8000".parse::<Color>().unwrap(), Color::rgb(255, 128, 0));
        assert_eq!("#f80".parse::<Color>().unwrap(), Color::rgb(255, 136, 0));
        assert_eq!("#ff800080".parse::<Color>().unwrap().a, 128);
        assert_eq!("#f808".parse::<Color>().unwrap().a, 136);
        assert_eq!("Orange".parse::<Color>().unwrap(), Color::rgb(255, 165, 0));
        for bad in ["#ff800", "#gg0000", "ff0000", "#", "notacolor", "#ff00001"] {
            assert!(bad.parse::<Color>().is_err(), "{bad}");
        }
        assert_eq!(Color::rgb(1, 2, 3).with_alpha(0.5).to_hex(), "#01020380");
    }

    #[test]
    fn track_colors_are_stable_and_distinct() {
        assert_eq!(Color::for_track(7), Color::for_track(7));
        let colors: std::collections::HashSet<Color> = (0..50).map(Color::for_track).collect();
        assert_eq!(colors.len(), 50);
        assert_eq!(Color::rgb(255, 255, 255).contrasting(), Color::rgb(0, 0, 0));
        assert!(Color::rgb(0, 0, 0).brightness() < 0.01);
    }
}
