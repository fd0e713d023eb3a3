//! The orchestration: [`combine_staged`] prepares the data, runs the methods the settings ask
//! for, collects their warnings and fills in the leave-one-visit-out scores.

use rayon::prelude::*;

use super::caches::Caches;
use super::constrained;
use super::method::{Inputs, Method};
use super::prepare::prepare;
use super::quality::refresh_fit_quality;
use super::registry::METHODS;
use super::types::{
    Cancel, CombineError, Combined, FORWARD, MethodInfo, MethodResult, Prepared, VisitUsed,
};
use super::warning::Warning;
use crate::model::Dataset;
use crate::settings::Settings;

/// Run the methods the settings ask for, with fresh [`Caches`] (one-shot use: the command line,
/// tests); see [`combine_with`].
pub fn combine(
    data: &Dataset,
    settings: &Settings,
    cancel: &Cancel,
) -> Result<Combined, CombineError> {
    combine_with(data, settings, cancel, &Caches::new())
}

/// Run the methods the settings ask for, re-using `caches`.
///
/// Each method gives its own outcome: a method that fails leaves its result `None` and its error
/// in [`Combined::forward_error`] / [`Combined::standard_error`], and the other method's result
/// is kept. `Err` only when there is nothing to show: preparation failed, the request was
/// cancelled, or every method asked for failed (the single method's error; both errors in one
/// message when both failed).
pub fn combine_with(
    data: &Dataset,
    settings: &Settings,
    cancel: &Cancel,
    caches: &Caches,
) -> Result<Combined, CombineError> {
    combine_staged(data, settings, cancel, caches, &mut |_| {})
}

/// [`combine_with`] in two stages, for live use: `first` receives the combination as soon as
/// every method is done, with the leave-one-visit-out scores still to come
/// ([`Combined::loo_pending`]); the complete result (scores filled in) is then returned. The
/// scores cost one banded factorisation per visit, many times the fit itself with tens of visits,
/// so a window shows the fit at once and a newer request can cancel the scoring. `first` is not
/// called when there is nothing to score (no result of a method that scores visits,
/// [`Method::scores_visits`]: of the built-in ones, the forward model).
pub fn combine_staged(
    data: &Dataset,
    settings: &Settings,
    cancel: &Cancel,
    caches: &Caches,
    first: &mut dyn FnMut(&Combined),
) -> Result<Combined, CombineError> {
    combine_methods(data, settings, cancel, caches, first, METHODS)
}

/// [`combine_staged`] with an explicit list of methods instead of the registered [`METHODS`]
/// (each run when the settings ask for it).
pub fn combine_methods(
    data: &Dataset,
    settings: &Settings,
    cancel: &Cancel,
    caches: &Caches,
    first: &mut dyn FnMut(&Combined),
    methods: &[&dyn Method],
) -> Result<Combined, CombineError> {
    let prep = prepare(data, settings)?;
    if prep.included().all(|v| v.n_used() == 0) {
        return Err(CombineError::NoUsablePixels);
    }
    let mut warnings = prep.warnings.clone();
    // The methods run side by side: each is parallel inside, but each has serial parts (the
    // banded factorisation, the spline solves) that the others can overlap.
    let outcomes: Vec<Option<Ran>> = methods
        .par_iter()
        .map(|m| -> Result<Option<Ran>, CombineError> {
            if !m.wanted(settings) {
                return Ok(None);
            }
            let mut w = Vec::new();
            let inputs = Inputs {
                prep: &prep,
                settings,
                cancel,
                caches,
            };
            let outcome = match m.run(inputs, &mut w) {
                Ok(mut r) => {
                    constrained::apply(&mut r);
                    (Some(r), None)
                }
                Err(CombineError::Cancelled) => return Err(CombineError::Cancelled),
                Err(e) => (None, Some(e)),
            };
            Ok(Some((m.info(), outcome, w)))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<_, _>>()?;
    let outcomes: Vec<Ran> = outcomes.into_iter().flatten().collect();
    for (_, _, w) in &outcomes {
        warnings.extend(w.iter().cloned());
    }
    cancel.check()?;
    if !outcomes.is_empty() && outcomes.iter().all(|(_, (r, _), _)| r.is_none()) {
        let errors: Vec<(MethodInfo, &CombineError)> = outcomes
            .iter()
            .filter_map(|(i, (_, e), _)| e.as_ref().map(|e| (*i, e)))
            .collect();
        return Err(match errors.as_slice() {
            [] => CombineError::Other("no method produced a result".into()),
            [(_, e)] => (*e).clone(),
            many => CombineError::Other(
                many.iter()
                    .map(|(i, e)| format!("{}: {e}", i.label))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        });
    }
    let visits = prep
        .visits
        .iter()
        .map(|v| VisitUsed {
            name: v.visit.meta.name.clone(),
            v_kms: v.v_kms,
            v_source: v.v_source.clone(),
            included: v.included,
            weight: settings.visit(v.index).weight,
            n_used: v.n_used(),
            n_bad: v.masked.iter().filter(|&&m| m).count(),
        })
        .collect();
    let mut combined = Combined {
        grid: prep.grid.clone(),
        forward: None,
        forward_error: None,
        standard: None,
        standard_error: None,
        others: Vec::new(),
        visits,
        warnings,
        settings: settings.clone(),
        loo_pending: false,
        velocity: prep.velocity.clone(),
    };
    for (info, (mut result, error), _) in outcomes {
        // Fitted shifts start from the checked velocities, whose zero point the check fixed
        // (and whose error it knows): the fit's own estimate assumes it started from the headers.
        if let (Some(r), Some(vc)) = (result.as_mut(), prep.velocity.as_ref())
            && let Some(z) = r.velocity_zero_point.as_mut()
        {
            z.err_kms = vc.zero_point.err_kms;
            z.name = format!("{}; zero point: {}", z.name, vc.zero_point.how);
        }
        combined.set_outcome(info, result, error);
    }
    if scoring(&combined, methods) {
        combined.loo_pending = true;
        refresh_fit_quality(&mut combined);
        first(&combined);
        fill_leave_one_out(&prep, &mut combined, cancel, caches, methods)?;
    }
    refresh_fit_quality(&mut combined);
    Ok(combined)
}

/// A method that ran: which, its result or why it failed (the other methods' results are kept
/// either way), and its warnings.
type Ran = (
    MethodInfo,
    (Option<MethodResult>, Option<CombineError>),
    Vec<Warning>,
);

/// Fill in the leave-one-visit-out scores of a result delivered with
/// [`Combined::loo_pending`] (e.g. exported before the second stage arrived): the same scores
/// [`combine_with`] computes, from its own dataset and settings. Does nothing when none are
/// pending.
pub fn complete_leave_one_out(
    data: &Dataset,
    combined: &mut Combined,
    cancel: &Cancel,
    caches: &Caches,
) -> Result<(), CombineError> {
    complete_leave_one_out_methods(data, combined, cancel, caches, METHODS)
}

/// [`complete_leave_one_out`] of a result [`combine_methods`] made with an explicit list of
/// methods (the same list).
pub fn complete_leave_one_out_methods(
    data: &Dataset,
    combined: &mut Combined,
    cancel: &Cancel,
    caches: &Caches,
    methods: &[&dyn Method],
) -> Result<(), CombineError> {
    if !combined.loo_pending {
        return Ok(());
    }
    let prep = prepare(data, &combined.settings)?;
    fill_leave_one_out(&prep, combined, cancel, caches, methods)?;
    refresh_fit_quality(combined);
    Ok(())
}

/// The second stage: each scoring method's ([`Method::scores_visits`]) leave-one-out scores into
/// its result. Their failure is a warning, never the loss of the fit itself; only cancellation
/// is an error.
fn fill_leave_one_out(
    prep: &Prepared,
    combined: &mut Combined,
    cancel: &Cancel,
    caches: &Caches,
    methods: &[&dyn Method],
) -> Result<(), CombineError> {
    for m in methods.iter().filter(|m| m.scores_visits()) {
        let info = m.info();
        let Some(slot) = combined.result_mut(info.name) else {
            continue;
        };
        let mut r = std::mem::take(slot);
        let inputs = Inputs {
            prep,
            settings: &combined.settings,
            cancel,
            caches,
        };
        let outcome = m.leave_one_out(inputs, &mut r);
        if let Some(slot) = combined.result_mut(info.name) {
            *slot = r;
        }
        match outcome {
            Ok(()) => {}
            Err(CombineError::Cancelled) => return Err(CombineError::Cancelled),
            Err(e) if info == FORWARD => combined
                .warnings
                .push(Warning::Other(format!("leave-one-out scores: {e}"))),
            Err(e) => combined.warnings.push(Warning::Other(format!(
                "leave-one-out scores of the {}: {e}",
                info.label
            ))),
        }
    }
    combined.loo_pending = false;
    Ok(())
}

/// Whether a method in `methods` will score the visits of `c` (it scores and has a result).
fn scoring(c: &Combined, methods: &[&dyn Method]) -> bool {
    methods
        .iter()
        .any(|m| m.scores_visits() && c.result(m.info().name).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::combine::types::{SpectrumModel, visit_fits};
    use std::sync::Arc;

    /// A toy third method, to show that a method is a module and one entry in the list: each
    /// output pixel gets the weighted mean of the pixels whose rest-frame position is nearest to it.
    #[derive(Debug)]
    struct Nearest;

    #[derive(Debug)]
    struct Steps(Vec<f64>, Vec<f64>);

    impl SpectrumModel for Steps {
        fn eval(&self, x: &[f64]) -> Vec<f64> {
            x.iter()
                .map(|&x| {
                    let l = self.0.partition_point(|&g| g < x).min(self.0.len() - 1);
                    self.1[l]
                })
                .collect()
        }
        fn eval_deriv(&self, x: &[f64]) -> Vec<f64> {
            vec![0.0; x.len()]
        }
    }

    impl Method for Nearest {
        fn info(&self) -> MethodInfo {
            MethodInfo {
                name: "nearest",
                label: "nearest pixel",
                export_prefix: "nearest_",
            }
        }
        fn wanted(&self, _settings: &Settings) -> bool {
            true
        }
        fn run(&self, x: Inputs<'_>, _w: &mut Vec<Warning>) -> Result<MethodResult, CombineError> {
            let prep = x.prep;
            let g = &prep.grid.ln_wave;
            let (mut sw, mut swy) = (vec![0.0; g.len()], vec![0.0; g.len()]);
            for v in prep.included() {
                for (k, &x) in v.x_rest.iter().enumerate() {
                    let l = g.partition_point(|&gx| gx < x).min(g.len() - 1);
                    sw[l] += v.w[k];
                    swy[l] += v.w[k] * v.y[k];
                }
            }
            let no_data: Vec<bool> = sw.iter().map(|&w| w <= 0.0).collect();
            let flux: Vec<f64> = (0..g.len())
                .map(|l| if no_data[l] { f64::NAN } else { swy[l] / sw[l] })
                .collect();
            let var = sw.iter().map(|&w| 1.0 / w).collect();
            let model = Steps(g.clone(), flux.clone());
            Ok(MethodResult {
                visits: visit_fits(prep, &model),
                flux,
                var,
                flags: vec![0; g.len()],
                no_data,
                model: Some(Arc::new(model)),
                ..MethodResult::default()
            })
        }
    }

    /// A third method in the list runs beside the registered ones, its result is stored under
    /// its name, and the exports write it with its prefix, with no other code changed; the
    /// built-in methods' results stay bit for bit what they are without it.
    #[test]
    fn a_third_method_is_one_entry_in_the_list() {
        let p = crate::synth::paper::PaperParams {
            n_visits: 4,
            ..crate::synth::paper::PaperParams::default()
        };
        let data = crate::synth::paper::generate(&p).expect("synthetic data");
        let settings = Settings::default();
        let cancel = Cancel::new();
        let plain = combine(&data, &settings, &cancel).expect("combines");
        let mut list: Vec<&dyn Method> = METHODS.to_vec();
        list.push(&Nearest);
        let c = combine_methods(
            &data,
            &settings,
            &cancel,
            &Caches::new(),
            &mut |_| {},
            &list,
        )
        .expect("combines");

        let names: Vec<&str> = c.results().iter().map(|(i, _)| i.name).collect();
        assert_eq!(names, ["forward", "standard", "nearest"]);
        let toy = c.result("nearest").expect("the toy's result");
        assert_eq!(toy.flux.len(), c.grid.len());
        assert!(toy.flux.iter().any(|f| f.is_finite()));
        assert_eq!(toy.visits.len(), data.visits.len());
        for (a, b) in [(&c.forward, &plain.forward), (&c.standard, &plain.standard)] {
            let (a, b) = (a.as_ref().expect("a"), b.as_ref().expect("b"));
            assert_eq!(
                a.flux.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.flux.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(
                a.var.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.var.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }

        let dir = tempfile::tempdir().expect("temp dir");
        let csv = dir.path().join("c.csv");
        crate::export::write_csv(&csv, &c, &[]).expect("csv");
        let header = std::fs::read_to_string(&csv).expect("read csv");
        let header = header.lines().next().expect("a header");
        assert!(header.contains(",standard_flux,"), "{header}");
        assert!(header.contains(",nearest_flux,"), "{header}");
        let npz = dir.path().join("c.npz");
        crate::export::write_npz(&npz, &c, &[]).expect("npz");
        let mut z =
            ndarray_npy::NpzReader::new(std::fs::File::open(&npz).expect("open")).expect("npz");
        let names = z.names().expect("names");
        for k in ["y_star", "standard_y_star", "nearest_y_star"] {
            assert!(names.iter().any(|n| n == k), "{k} in {names:?}");
        }
    }
}
