//! One point of the scaling series (what the runner measures and the plot draws).

/// One point of the scaling series.
#[derive(Clone, Debug)]
pub struct ScalingPoint {
    /// "visits" (30..1000 visits of 3 x 4096 px) or "pixels" (30 visits, chip size varies).
    pub series: &'static str,
    /// Visits.
    pub visits: usize,
    /// Pixels per visit.
    pub pixels_per_visit: usize,
    /// First call (kernel evaluations included), seconds.
    pub first_s: f64,
    /// CPU seconds (all threads) of the median recompute.
    pub live_cpu_s: f64,
    /// Median recompute with the cache, seconds.
    pub live_s: f64,
}

impl ScalingPoint {
    /// Total input pixels.
    #[must_use]
    pub fn m(&self) -> usize {
        self.visits * self.pixels_per_visit
    }

    /// The JSON line of this point.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "series": self.series,
            "visits": self.visits,
            "pixels_per_visit": self.pixels_per_visit,
            "m": self.m(),
            "first_seconds": self.first_s,
            "live_seconds": self.live_s,
            "live_cpu_seconds": self.live_cpu_s,
            "threads": rayon::current_num_threads(),
        })
    }
}
