//! The view description that scripts screenshots (`FRIZZVIEW_VIEW`).

use super::{Compare, DrawFrame, ExposureLayout, FrizzApp, Tab};

impl FrizzApp {
    /// Apply a view description (used to script screenshots through `FRIZZVIEW_VIEW`):
    /// comma-separated `x=LO:HI` (Angstrom), `layout=stacked|overlaid|single`, `visit=N`
    /// (1-based), `frame=rest|observed`, `tab=spectra|noise|teaching`, `compare=overlay|difference`,
    /// `standard=on|off`, `dialog=fetch` (open the fetch dialog). Unknown items become a message.
    pub fn apply_view_spec(&mut self, spec: &str) {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let ok = match (key, value) {
                ("x", v) => v
                    .split_once(':')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .map(|r| self.jump_to = Some(r))
                    .is_some(),
                ("layout", "stacked") => set(&mut self.view.layout, ExposureLayout::Stacked),
                ("layout", "overlaid") => set(&mut self.view.layout, ExposureLayout::Overlaid),
                ("layout", "single") => set(&mut self.view.layout, ExposureLayout::Single),
                ("frame", "rest") => set(&mut self.view.frame, DrawFrame::Rest),
                ("frame", "observed") => set(&mut self.view.frame, DrawFrame::Observed),
                ("tab", "spectra") => set(&mut self.view.tab, Tab::Spectra),
                ("tab", "noise") => set(&mut self.view.tab, Tab::Noise),
                ("tab", "teaching") => set(&mut self.view.tab, Tab::Teaching),
                ("compare", "overlay") => set(&mut self.view.compare, Compare::Overlay),
                ("compare", "difference") => set(&mut self.view.compare, Compare::Difference),
                ("standard", "off") => set(&mut self.settings.standard, None),
                ("standard", "on") => set(
                    &mut self.settings.standard,
                    Some(crate::settings::StandardSettings::default()),
                ),
                ("dialog", "fetch") => set(&mut self.fetch_dialog.open, true),
                (
                    "mode" | "iview" | "scale" | "pixfrac" | "converge" | "sky" | "aperture"
                    | "exposure" | "stretch" | "pct",
                    v,
                ) => match self.images.apply_item(key, v) {
                    Ok(()) => true,
                    Err(e) => {
                        self.report_error(e);
                        true
                    }
                },
                ("visit", v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(|n| self.selected_visit = n - 1)
                    .is_some(),
                _ => false,
            };
            if !ok {
                self.report_error(format!("FRIZZVIEW_VIEW: cannot apply '{item}'"));
            }
        }
    }
}

fn set<T>(slot: &mut T, value: T) -> bool {
    *slot = value;
    true
}
