//! The window's automatic y ranges are robust: on the real APOGEE star (whose chip-gap edges the
//! local basis leaves unconstrained) and on a synthetic star with one wild pixel, the combined
//! plot's y axis stays within a few times the continuum.

use egui_kittest::Harness;
use frizzview::app::{FrizzApp, plot_ui};
use frizzview::model::Dataset;

use super::real_star;

/// The combined plot's y bounds after the window has drawn `data` with default settings, and
/// the median combined flux (the continuum level).
fn combined_y_range(data: Dataset) -> ((f64, f64), f64) {
    let app = FrizzApp::inline(data);
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    h.run_steps(4);
    let r = h.state().result.clone().expect("a result");
    let f = r.forward.as_ref().expect("forward model");
    let mut v: Vec<f64> = f.flux.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let continuum = v[v.len() / 2];
    let mem = egui_plot::PlotMemory::load(&h.ctx, plot_ui::combined_plot_id())
        .expect("the combined plot was drawn");
    let b = mem.bounds();
    ((b.min()[1], b.max()[1]), continuum)
}

fn assert_within_a_few_continua(label: &str, (lo, hi): (f64, f64), continuum: f64) {
    eprintln!(
        "{label}: combined plot y range [{lo:.4}, {hi:.4}] on a continuum of {continuum:.4} \
         ({:.2} to {:.2} continua)",
        lo / continuum,
        hi / continuum
    );
    assert!(continuum > 0.0);
    assert!(lo > -continuum, "{label}: y from {lo}");
    assert!(hi < 3.0 * continuum, "{label}: y to {hi}");
    // And the spectrum is not a flat line: the range is not absurdly wider than the data.
    assert!(hi - lo > 0.1 * continuum, "{label}: [{lo}, {hi}]");
}

#[test]
fn ui_real_star_combined_y_range_is_a_few_continua() {
    let Some(data) = real_star::dataset() else {
        return;
    };
    let (range, continuum) = combined_y_range(data);
    assert_within_a_few_continua("real star", range, continuum);
}

#[test]
fn ui_one_wild_pixel_does_not_flatten_the_spectrum() {
    let mut data = frizzview::app::demo::apogee_demo(3).expect("demo");
    // One pixel of visit 1 at 1e6 times the continuum with a tiny error: the combined spectrum
    // gets a spike that the automatic range must not follow.
    let v = &data.visits[1];
    let mut a = frizzview::model::VisitArrays {
        wavelength_aa: v.wavelength_aa().to_vec(),
        flux: v.flux().to_vec(),
        ivar: v.ivar().to_vec(),
        flags: v.flags().to_vec(),
        bad: v.bad().to_vec(),
        selection: v.selection().map(<[f64]>::to_vec),
        flux_divided_by_selection: v.flux_divided_by_selection(),
        segments: v.segments().to_vec(),
    };
    let k = a.flux.len() / 2;
    a.flux[k] = 1e6;
    a.ivar[k] = 1e8;
    data.visits[1] =
        std::sync::Arc::new(frizzview::model::Visit::new(v.meta.clone(), a).expect("visit"));
    let (range, continuum) = combined_y_range(data);
    assert_within_a_few_continua("one wild pixel", range, continuum);
}
