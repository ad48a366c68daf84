//! A clinic's branding: the name patients see, its colours, logo and support line — set at
//! runtime, checked for WCAG 2.1 AA contrast when saved.
//!
//! The portal uses both colours as text on white and as the background of white text
//! (buttons, the header), so each must reach 4.5:1 against white — the AA minimum for body
//! text (success criterion 1.4.3), which also covers the 3:1 asked of UI components (1.4.11).
//! A colour that falls short is refused with its ratio and the nearest darker shade that
//! passes.

use std::fmt;
use std::str::FromStr;

/// The contrast every brand colour must reach against white.
pub const MIN_CONTRAST: f64 = 4.5;
/// The largest logo accepted, in bytes.
pub const MAX_LOGO_BYTES: usize = 256 * 1024;

/// An sRGB colour, `#RRGGBB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color {
    rgb: [u8; 3],
}

impl Color {
    /// White.
    pub const WHITE: Self = Self {
        rgb: [255, 255, 255],
    };

    /// A colour from its channels.
    pub const fn new(r: u8, g: u8, b: u8) -> Self {
        Self { rgb: [r, g, b] }
    }

    /// WCAG 2.1 relative luminance, 0 (black) to 1 (white).
    pub fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let [r, g, b] = self.rgb;
        0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    }

    /// The WCAG contrast ratio between two colours, 1 to 21.
    pub fn contrast(self, other: Self) -> f64 {
        let (a, b) = (self.luminance(), other.luminance());
        let (light, dark) = if a > b { (a, b) } else { (b, a) };
        (light + 0.05) / (dark + 0.05)
    }

    /// The same hue scaled darker, step by step, until it reaches `ratio` against white.
    pub fn darkened_to(self, ratio: f64) -> Self {
        let mut shade = self;
        for step in 1..=100u16 {
            if shade.contrast(Self::WHITE) >= ratio {
                break;
            }
            let keep = f64::from(100 - step) / 100.0;
            let scale = |c: u8| {
                // Whole channel values, rounded down: the ratio only grows.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let scaled = (f64::from(c) * keep).floor() as u8;
                scaled
            };
            let [r, g, b] = self.rgb;
            shade = Self::new(scale(r), scale(g), scale(b));
        }
        shade
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.rgb;
        write!(f, "#{r:02X}{g:02X}{b:02X}")
    }
}

impl FromStr for Color {
    type Err = BrandingProblem;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex = text.trim().strip_prefix('#').unwrap_or(text.trim());
        let parse = |i: usize| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        };
        match (hex.len(), parse(0), parse(2), parse(4)) {
            (6, Some(r), Some(g), Some(b)) => Ok(Self::new(r, g, b)),
            _ => Err(BrandingProblem {
                field: "color",
                problem: format!("{text:?} is not a colour: write it as #RRGGBB, e.g. #1F5FAD"),
            }),
        }
    }
}

/// A logo: PNG, JPEG or WebP (checked by its first bytes, not its name).
#[derive(Clone, PartialEq, Eq)]
pub struct Logo {
    /// Its media type.
    pub content_type: &'static str,
    /// The image.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Logo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logo")
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Logo {
    /// Reads an uploaded image. SVG is refused: it can carry script.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, BrandingProblem> {
        let problem = |text: &str| BrandingProblem {
            field: "logo",
            problem: text.to_owned(),
        };
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(problem("the logo may be at most 256 KB"));
        }
        let content_type = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            "image/png"
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            "image/jpeg"
        } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            "image/webp"
        } else {
            return Err(problem("the logo must be a PNG, JPEG or WebP image"));
        };
        Ok(Self {
            content_type,
            bytes,
        })
    }
}

/// How a clinic's portal looks and whom patients call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    /// The main colour: the header, buttons (with white text), headings.
    pub primary: Color,
    /// The second colour: links, focus rings, highlights.
    pub accent: Color,
    /// The support phone number patients see.
    pub support_phone: Option<String>,
    /// When support answers ("Mon–Fri 8am–5pm").
    pub support_hours: Option<String>,
    /// The logo, if one was uploaded.
    pub logo: Option<Logo>,
}

impl Default for Branding {
    /// Portico's own: a blue and a teal that pass AA on white.
    fn default() -> Self {
        Self {
            primary: Color::new(0x1F, 0x4E, 0x8C),
            accent: Color::new(0x0B, 0x6E, 0x69),
            support_phone: None,
            support_hours: None,
            logo: None,
        }
    }
}

/// What is wrong with a branding. Names the field, says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct BrandingProblem {
    /// The field.
    pub field: &'static str,
    /// What is wrong, and how to fix it.
    pub problem: String,
}

impl Branding {
    /// Checks every field: contrast first, then the support line.
    pub fn validate(&self) -> Result<(), BrandingProblem> {
        for (field, color) in [
            ("primary_color", self.primary),
            ("accent_color", self.accent),
        ] {
            let ratio = color.contrast(Color::WHITE);
            if ratio < MIN_CONTRAST {
                return Err(BrandingProblem {
                    field,
                    problem: format!(
                        "{color} against white has a contrast ratio of {ratio:.2}:1; WCAG 2.1 AA \
                         needs at least {MIN_CONTRAST}:1 for text (the portal puts this colour \
                         behind white text and uses it as text on white). The nearest darker \
                         shade that passes is {}.",
                        color.darkened_to(MIN_CONTRAST)
                    ),
                });
            }
        }
        if let Some(phone) = &self.support_phone {
            let digits = phone.chars().filter(char::is_ascii_digit).count();
            if !(7..=15).contains(&digits)
                || phone.len() > 32
                || !phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            {
                return Err(BrandingProblem {
                    field: "support_phone",
                    problem: "a phone number: 7 to 15 digits, with spaces, +, -, ( ) or ."
                        .to_owned(),
                });
            }
        }
        if let Some(hours) = &self.support_hours
            && (hours.trim().is_empty()
                || hours.chars().count() > 120
                || hours.chars().any(char::is_control))
        {
            return Err(BrandingProblem {
                field: "support_hours",
                problem: "1 to 120 characters on one line".to_owned(),
            });
        }
        Ok(())
    }

    /// The portal's CSS custom properties for this branding.
    pub fn css(&self) -> String {
        format!(
            ":root {{\n  --portico-primary: {};\n  --portico-accent: {};\n  --portico-on-primary: #FFFFFF;\n}}\n",
            self.primary, self.accent
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.01
    }

    #[test]
    fn contrast_matches_the_wcag_reference_values() {
        assert!(close(Color::new(0, 0, 0).contrast(Color::WHITE), 21.0));
        assert!(close(Color::WHITE.contrast(Color::WHITE), 1.0));
        // #767676 is the lightest grey that passes 4.5:1 on white; #777777 fails.
        assert!(close(
            Color::new(0x76, 0x76, 0x76).contrast(Color::WHITE),
            4.54
        ));
        assert!(close(
            Color::new(0x77, 0x77, 0x77).contrast(Color::WHITE),
            4.48
        ));
    }

    #[test]
    fn a_failing_colour_is_refused_with_its_ratio_and_a_shade_that_passes() {
        let branding = Branding {
            primary: "#FFD700".parse().unwrap(),
            ..Branding::default()
        };
        let problem = branding.validate().unwrap_err();
        assert_eq!(problem.field, "primary_color");
        assert!(problem.problem.contains("1.40:1"), "{}", problem.problem);
        let suggested: Color = problem
            .problem
            .split("passes is ")
            .nth(1)
            .unwrap()
            .trim_end_matches('.')
            .parse()
            .unwrap();
        assert!(suggested.contrast(Color::WHITE) >= MIN_CONTRAST);
        Branding::default().validate().unwrap();
    }

    #[test]
    fn colours_logos_and_support_lines_are_checked() {
        assert_eq!("#1f5fad".parse::<Color>().unwrap().to_string(), "#1F5FAD");
        assert!("blue".parse::<Color>().is_err());
        assert!("#12345".parse::<Color>().is_err());
        assert!(Logo::from_bytes(b"<svg onload=alert(1)>".to_vec()).is_err());
        assert_eq!(
            Logo::from_bytes(b"\x89PNG\r\n\x1a\n....".to_vec())
                .unwrap()
                .content_type,
            "image/png"
        );
        assert!(Logo::from_bytes(vec![0x89; MAX_LOGO_BYTES + 1]).is_err());
        let phone = |p: &str| Branding {
            support_phone: Some(p.to_owned()),
            ..Branding::default()
        };
        assert!(phone("+1 (503) 555-0100").validate().is_ok());
        assert!(phone("call us").validate().is_err());
        assert!(
            Branding::default()
                .css()
                .contains("--portico-primary: #1F4E8C;")
        );
    }
}
