//! `frizzview fetch APOGEE_ID --release dr17`: find a star's SDSS files in a local mirror or the
//! cache, or download them, and print their local paths (one per line, for
//! `frizzview combine $(frizzview fetch ...)`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::fetch::templates::PLACEHOLDERS;
use crate::fetch::{
    self, Event, FetchConfig, Product, Release, StarQuery, Templates, Values, VisitRef,
};

/// Arguments of `frizzview fetch`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = long_help())]
pub struct FetchArgs {
    /// The star's APOGEE id (2MASS style, e.g. 2M00005143+5615568).
    pub apogee_id: Option<String>,
    /// Data release whose layout to use: dr13, dr17 or dr19.
    #[arg(long, default_value = "dr17")]
    pub release: String,
    /// Products to get, comma-separated: apStar, apVisit, allVisit, apCframe, specFull, mwmVisit.
    #[arg(long, short, value_delimiter = ',', default_value = "apStar,apVisit")]
    pub products: Vec<String>,
    /// A visit PLATE-MJD-FIBER (repeat). Without visits (and without --all-visit) the apVisit
    /// files are the ones the star's apStar lists (SFILEn).
    #[arg(long = "visit", value_name = "PLATE-MJD-FIBER")]
    pub visits: Vec<String>,
    /// An allVisit table: the star's rows give telescope, field, plate, MJD and fibre.
    #[arg(long, value_name = "FILE")]
    pub all_visit: Option<PathBuf>,
    /// Telescope (apo25m, lco25m, apo1m).
    #[arg(long)]
    pub telescope: Option<String>,
    /// Field name (DR17, DR19 paths), e.g. N7789.
    #[arg(long)]
    pub field: Option<String>,
    /// DR13 location id, e.g. 4264.
    #[arg(long)]
    pub location_id: Option<String>,
    /// Any other placeholder value NAME=VALUE (repeat), e.g. frame=12345678, sdss_id=..., apred=...
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Replace a path template: [RELEASE.]PRODUCT=TEMPLATE (repeat); see below.
    #[arg(long = "template", value_name = "[REL.]PRODUCT=TEMPLATE")]
    pub templates: Vec<String>,
    /// A file of templates, one [RELEASE.]PRODUCT = TEMPLATE per line (also $FRIZZVIEW_SAS_TEMPLATES).
    #[arg(long, value_name = "FILE")]
    pub templates_file: Option<PathBuf>,
    /// Download root (also $FRIZZVIEW_SAS_URL).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// A local SAS mirror, searched first and never written (default $SAS_BASE_DIR).
    #[arg(long, value_name = "DIR")]
    pub mirror: Option<PathBuf>,
    /// The download cache (default $FRIZZVIEW_CACHE, else $XDG_CACHE_HOME/frizzview/sas).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Use the mirror and the cache only; never connect.
    #[arg(long)]
    pub offline: bool,
    /// Print the SAS-relative paths and URLs without looking for the files.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the templates in force and exit.
    #[arg(long)]
    pub list_templates: bool,
    /// Seconds allowed to connect.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds a transfer may stall before it stops (it is resumed up to --retries times).
    #[arg(long, default_value_t = 60.0)]
    pub read_timeout: f64,
    /// Automatic resumes of an interrupted transfer.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
}

/// The `--help` text after the options: every template and placeholder.
fn long_help() -> String {
    let mut s = String::from(
        "Files are looked for under the local mirror ($SAS_BASE_DIR), then in the cache; missing \
         ones are downloaded from the base URL into the cache (resumable: a .part file is \
         continued with an HTTP Range request), checked to be FITS, then moved into place. A \
         file in the cache is never downloaded again.\n\nPath templates (relative to the SAS \
         root; replace with --template, --templates-file, $FRIZZVIEW_SAS_TEMPLATES or \
         $FRIZZVIEW_TEMPLATE_<PRODUCT>, e.g. FRIZZVIEW_TEMPLATE_APVISIT):\n",
    );
    for (r, p, t) in Templates::builtin().iter() {
        s += &format!("  {r}.{p}:\n      {t}\n");
    }
    s += "\nPlaceholders ({name}, {name:03} zero-pads to 3 digits):\n";
    for (k, h) in PLACEHOLDERS {
        s += &format!("  {k:<14} {h}\n");
    }
    s += "\nExamples:\n  frizzview fetch 2M00005143+5615568 --release dr13 --location-id 4264 \
          --visit 5094-55874-088\n  frizzview fetch 2M00005143+5615568 --release dr17 --all-visit \
          allVisit-dr17-synspec_rev1.fits\n  frizzview combine $(frizzview fetch ID --release \
          dr17 --field N7789 -p apVisit --all-visit allVisit.fits) -o star.fits\n";
    s
}

/// Run `frizzview fetch`.
pub fn run(a: &FetchArgs) -> anyhow::Result<()> {
    let mut templates = Templates::from_env()?;
    if let Some(f) = &a.templates_file {
        templates.read_file(f)?;
    }
    for t in &a.templates {
        templates.set(t)?;
    }
    if a.list_templates {
        for (r, p, t) in templates.iter() {
            println!("{r}.{p} = {t}");
        }
        return Ok(());
    }
    let release = Release::parse(&a.release)?;
    let products = a
        .products
        .iter()
        .map(|p| Product::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut query = StarQuery {
        release,
        values: Values::new(),
        visits: Vec::new(),
        products,
    };
    if let Some(id) = &a.apogee_id {
        query.values.set("apogee_id", id);
    }
    for (k, v) in [
        ("telescope", &a.telescope),
        ("field", &a.field),
        ("location_id", &a.location_id),
    ] {
        if let Some(v) = v {
            query.values.set(k, v);
        }
    }
    for p in &a.params {
        query.values.set_pair(p)?;
    }
    for v in &a.visits {
        query.visits.push(VisitRef::parse(v)?);
    }
    if let Some(av) = &a.all_visit {
        let n = query.add_all_visit_rows(av)?;
        eprintln!("{n} visit(s) of the star in {}", av.display());
    }
    let mut cfg = FetchConfig::from_env();
    if let Some(u) = &a.base_url {
        cfg.base_url.clone_from(u);
    }
    if let Some(m) = &a.mirror {
        cfg.mirror = Some(m.clone());
    }
    if let Some(c) = &a.cache {
        cfg.cache_dir.clone_from(c);
    }
    cfg.offline = a.offline;
    cfg.connect_timeout = seconds(a.connect_timeout, "--connect-timeout")?;
    cfg.read_timeout = seconds(a.read_timeout, "--read-timeout")?;
    cfg.retries = a.retries;

    if a.dry_run {
        for p in &query.products {
            if *p == Product::ApVisit && query.visits.is_empty() {
                eprintln!("apVisit: the visits are read from the apStar (SFILEn) once it is there");
                continue;
            }
            for r in query.requests(*p, &templates)? {
                println!("{}\t{}", r.rel, cfg.url(&r.rel));
            }
        }
        return Ok(());
    }

    let mut bar: Option<indicatif::ProgressBar> = None;
    let style = indicatif::ProgressStyle::with_template(
        "{msg:40!} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let mut progress = |e: Event<'_>| match e {
        Event::Start { rel, index, count } => {
            let name = rel.rsplit('/').next().unwrap_or(rel).to_owned();
            let b = indicatif::ProgressBar::new(0).with_style(style.clone());
            b.set_message(format!("[{}/{count}] {name}", index + 1));
            bar = Some(b);
        }
        Event::Bytes { done, total } => {
            if let Some(b) = &bar {
                if let Some(t) = total {
                    b.set_length(t);
                }
                b.set_position(done);
            }
        }
        Event::Done { path, origin } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            eprintln!("{} ({origin})", path.display());
        }
    };
    let got =
        fetch::star::fetch_star(&query, &templates, &cfg, &mut progress).context("fetch failed")?;
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    for n in &got.notes {
        eprintln!("{n}");
    }
    for f in &got.files {
        println!("{}", f.path.display());
    }
    Ok(())
}

fn seconds(s: f64, what: &str) -> anyhow::Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s <= 86_400.0) {
        anyhow::bail!("{what} must be between 0 and 86400 seconds, not {s}");
    }
    Ok(Duration::from_secs_f64(s))
}
