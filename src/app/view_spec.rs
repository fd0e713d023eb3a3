//! The view description that scripts screenshots (`FRIZZVIEW_VIEW`).

use super::images::ImagesState;
use super::view::{Compare, DrawFrame, ExposureLayout, Tab, ViewOptions};
use crate::settings::Settings;

/// What a view description can change.
pub struct Targets<'a> {
    /// The view options.
    pub view: &'a mut ViewOptions,
    /// The settings (`standard=`).
    pub settings: &'a mut Settings,
    /// The plots' pending x-range (`x=`).
    pub jump_to: &'a mut Option<(f64, f64)>,
    /// The fetch dialog's visibility (`dialog=fetch`).
    pub fetch_open: &'a mut bool,
    /// The images mode (its items).
    pub images: &'a mut ImagesState,
    /// The selected visit (`visit=`).
    pub selected_visit: &'a mut usize,
}

/// Apply a view description (used to script screenshots through `FRIZZVIEW_VIEW`):
/// comma-separated `x=LO:HI` (Angstrom), `layout=stacked|overlaid|single`, `visit=N`
/// (1-based), `frame=rest|observed`, `tab=spectra|noise|teaching`, `compare=overlay|difference`,
/// `standard=on|off`, `dialog=fetch` (open the fetch dialog). Unknown items become a message.
/// Returns one message per item that could not be applied.
pub fn apply(spec: &str, t: &mut Targets<'_>) -> Vec<String> {
    let mut errors = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        let ok = match (key, value) {
            ("x", v) => v
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .map(|r| *t.jump_to = Some(r))
                .is_some(),
            ("layout", "stacked") => set(&mut t.view.layout, ExposureLayout::Stacked),
            ("layout", "overlaid") => set(&mut t.view.layout, ExposureLayout::Overlaid),
            ("layout", "single") => set(&mut t.view.layout, ExposureLayout::Single),
            ("frame", "rest") => set(&mut t.view.frame, DrawFrame::Rest),
            ("frame", "observed") => set(&mut t.view.frame, DrawFrame::Observed),
            ("tab", "spectra") => set(&mut t.view.tab, Tab::Spectra),
            ("tab", "noise") => set(&mut t.view.tab, Tab::Noise),
            ("tab", "teaching") => set(&mut t.view.tab, Tab::Teaching),
            ("compare", "overlay") => set(&mut t.view.compare, Compare::Overlay),
            ("compare", "difference") => set(&mut t.view.compare, Compare::Difference),
            ("standard", "off") => set(&mut t.settings.standard, None),
            ("standard", "on") => set(
                &mut t.settings.standard,
                Some(crate::settings::StandardSettings::default()),
            ),
            ("dialog", "fetch") => set(t.fetch_open, true),
            (
                "mode" | "iview" | "scale" | "pixfrac" | "converge" | "sky" | "aperture"
                | "exposure" | "stretch" | "pct",
                v,
            ) => match t.images.apply_item(key, v) {
                Ok(()) => true,
                Err(e) => {
                    errors.push(e);
                    true
                }
            },
            ("visit", v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .map(|n| *t.selected_visit = n - 1)
                .is_some(),
            _ => false,
        };
        if !ok {
            errors.push(format!("FRIZZVIEW_VIEW: cannot apply '{item}'"));
        }
    }
    errors
}

fn set<T>(slot: &mut T, value: T) -> bool {
    *slot = value;
    true
}
