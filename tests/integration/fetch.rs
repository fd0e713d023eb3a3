//! `fetch`: SAS paths, the local mirror, the cache, and downloads from a local test server on
//! 127.0.0.1 (no test reaches an outside address).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use frizzview::fetch::{
    self, Event, FetchConfig, FetchError, FileRequest, Origin, Product, Release, StarQuery,
    Templates,
};

use super::real_star::{APSTAR, VISITS, real_star_dir};
use super::sas_server::{Logged, Reply, SasServer};

/// A FITS file from the Doppler wheel (committed in tests/fixtures).
fn fixture() -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/apVisit-r13-5095-55844-128.fits"),
    )
    .unwrap()
}

const REL: &str = "dr17/apogee/spectro/redux/dr17/visit/apo25m/120+12/5095/55844/apVisit-dr17-5095-55844-128.fits";

fn request() -> FileRequest {
    FileRequest {
        product: Product::ApVisit,
        rel: REL.to_owned(),
    }
}

/// A configuration that downloads from `base` into `cache`, with short timeouts.
fn config(base: &str, cache: &Path) -> FetchConfig {
    FetchConfig {
        base_url: base.to_owned(),
        mirror: None,
        cache_dir: cache.to_path_buf(),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        retries: 0,
        offline: false,
    }
}

fn serve(rel: &str, reply: Reply) -> SasServer {
    SasServer::start(HashMap::from([(rel.to_owned(), reply)]))
}

/// The bytes done and total of each progress event, in order.
type ByteEvents = Vec<(u64, Option<u64>)>;

/// Get one file, recording its progress events.
fn get_with_bytes(
    req: &FileRequest,
    cfg: &FetchConfig,
) -> (Result<fetch::Fetched, FetchError>, ByteEvents) {
    let mut seen = Vec::new();
    let r = fetch::get_file(req, cfg, &mut |e| {
        if let Event::Bytes { done, total } = e {
            seen.push((done, total));
        }
    });
    (r, seen)
}

#[test]
fn download_then_cache_without_a_request() {
    let body = fixture();
    let server = serve(REL, Reply::File(body.clone()));
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&server.base, cache.path());
    let (r, bytes) = get_with_bytes(&request(), &cfg);
    let got = r.unwrap();
    assert_eq!(
        got.origin,
        Origin::Downloaded {
            bytes: body.len() as u64,
            resumed_from: 0
        }
    );
    assert_eq!(got.path, cache.path().join(REL));
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
    assert_eq!(
        bytes.last(),
        Some(&(body.len() as u64, Some(body.len() as u64)))
    );
    assert!(!fetch::download::part_path(&got.path).exists());
    // The second time: from the cache, no request made.
    let again = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap();
    assert_eq!(again.origin, Origin::Cache);
    assert_eq!(again.path, got.path);
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
    // And it is read as an apVisit file.
    let d = frizzview::io::load_file(&got.path).unwrap();
    assert_eq!(d.visits.len(), 1);
}

#[test]
fn not_found_is_named_and_nothing_is_cached() {
    let server = serve(REL, Reply::NotFound);
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&server.base, cache.path());
    let e = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&e, FetchError::NotFound { url } if url.ends_with(REL)),
        "{e}"
    );
    assert!(e.to_string().contains("404"), "{e}");
    assert!(!cache.path().join(REL).exists());
    assert!(!fetch::download::part_path(&cache.path().join(REL)).exists());
}

#[test]
fn truncated_transfer_is_kept_and_resumed() {
    let body = fixture();
    let cut = 200_000;
    let server = serve(
        REL,
        Reply::TruncateFirst {
            body: body.clone(),
            cut,
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&server.base, cache.path());
    let target = cache.path().join(REL);
    let part = fetch::download::part_path(&target);
    // No automatic retry: the error says where the bytes are, and nothing is in place.
    let e = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&e, FetchError::Interrupted { got, total, .. } if *got == cut as u64 && *total == Some(body.len() as u64)),
        "{e}"
    );
    assert!(!target.exists());
    assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64);
    // Run again: only the rest is asked for (Range), and the file is whole.
    let got = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap();
    assert_eq!(
        got.origin,
        Origin::Downloaded {
            bytes: (body.len() - cut) as u64,
            resumed_from: cut as u64
        }
    );
    assert_eq!(std::fs::read(&target).unwrap(), body);
    assert!(!part.exists());
    assert_eq!(
        server.requests(),
        vec![
            Logged {
                path: REL.into(),
                range: None
            },
            Logged {
                path: REL.into(),
                range: Some(cut as u64)
            }
        ]
    );

    // With retries, one call resumes by itself.
    let cache2 = tempfile::tempdir().unwrap();
    let cfg2 = FetchConfig {
        retries: 1,
        ..config(&server.base, cache2.path())
    };
    let got = fetch::get_file(&request(), &cfg2, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
}

#[test]
fn non_fits_body_is_refused_and_not_cached() {
    let server = serve(REL, Reply::Html);
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&server.base, cache.path());
    let e = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap_err();
    assert!(matches!(&e, FetchError::NotFits { .. }), "{e}");
    assert!(e.to_string().contains("SIMPLE"), "{e}");
    let target = cache.path().join(REL);
    assert!(!target.exists());
    assert!(!fetch::download::part_path(&target).exists());
    // A file truncated on the server itself (complete transfer, incomplete FITS) is refused too.
    let body = fixture();
    let server = serve(REL, Reply::File(body[..100_000].to_vec()));
    let cfg = config(&server.base, cache.path());
    let e = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&e, FetchError::NotFits { reason, .. } if reason.contains("declares")),
        "{e}"
    );
    assert!(!target.exists());
}

#[test]
fn slow_server_reports_progress() {
    let body = fixture();
    let server = serve(
        REL,
        Reply::Slow {
            body: body.clone(),
            chunk: 32 * 1024,
            delay: Duration::from_millis(10),
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&server.base, cache.path());
    let (r, bytes) = get_with_bytes(&request(), &cfg);
    r.unwrap();
    // 16 pieces of 32 KiB: progress comes in many steps, increasing, ending at the size.
    assert!(bytes.len() >= 10, "{} progress events", bytes.len());
    assert!(bytes.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(bytes.last().map(|b| b.0), Some(body.len() as u64));
}

#[test]
fn stalled_server_times_out_and_resumes() {
    let body = fixture();
    let after = 150_000;
    let server = serve(
        REL,
        Reply::StallFirst {
            body: body.clone(),
            after,
            stall: Duration::from_secs(3),
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let cfg = FetchConfig {
        read_timeout: Duration::from_millis(400),
        ..config(&server.base, cache.path())
    };
    let t0 = Instant::now();
    let e = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap_err();
    let waited = t0.elapsed();
    assert!(
        matches!(&e, FetchError::Interrupted { got, .. } if *got == after as u64),
        "{e}"
    );
    eprintln!(
        "stalled transfer stopped after {:.2} s: {e}",
        waited.as_secs_f64()
    );
    let got = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap();
    assert_eq!(
        got.origin,
        Origin::Downloaded {
            bytes: (body.len() - after) as u64,
            resumed_from: after as u64
        }
    );
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
}

#[test]
fn unreachable_server_fails_with_a_message() {
    // Port 1 on the loopback interface: nothing listens there.
    let cache = tempfile::tempdir().unwrap();
    let cfg = config("http://127.0.0.1:1", cache.path());
    let t0 = Instant::now();
    let e = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap_err();
    eprintln!("unreachable after {:.3} s: {e}", t0.elapsed().as_secs_f64());
    assert!(matches!(&e, FetchError::Unreachable { .. }), "{e}");
    assert!(!cache.path().join(REL).exists());
    // Offline: no connection at all, and the message names the mirror and the cache.
    let cfg = FetchConfig {
        offline: true,
        ..cfg
    };
    let e = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap_err();
    assert!(matches!(&e, FetchError::NotLocal { .. }), "{e}");
}

#[test]
fn mirror_is_read_first_and_never_written() {
    let body = fixture();
    let mirror = tempfile::tempdir().unwrap();
    let in_mirror = mirror.path().join(REL);
    std::fs::create_dir_all(in_mirror.parent().unwrap()).unwrap();
    std::fs::write(&in_mirror, &body).unwrap();
    let server = serve(REL, Reply::File(body.clone()));
    let cache = tempfile::tempdir().unwrap();
    let cfg = FetchConfig {
        mirror: Some(mirror.path().to_path_buf()),
        ..config(&server.base, cache.path())
    };
    let got = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap();
    assert_eq!(got.origin, Origin::Mirror);
    assert_eq!(got.path, in_mirror);
    assert!(server.requests().is_empty());
    assert!(!cache.path().join(REL).exists());
    // A damaged mirror file is passed over (and left alone): the file is downloaded instead.
    std::fs::write(&in_mirror, &body[..50_000]).unwrap();
    let got = fetch::get_file(&request(), &cfg, &mut |_| {}).unwrap();
    assert!(matches!(got.origin, Origin::Downloaded { .. }));
    assert_eq!(std::fs::metadata(&in_mirror).unwrap().len(), 50_000);
}

/// A tiny allVisit table (DR17 column names) with two visits of the star and one of another.
fn write_all_visit(path: &Path) {
    use fitsio::FitsFile;
    use fitsio::tables::{ColumnDataType, ColumnDescription};
    let mut f = FitsFile::create(path).open().unwrap();
    let text = |n: &str| {
        ColumnDescription::new(n)
            .with_type(ColumnDataType::String)
            .that_repeats(24)
            .create()
            .unwrap()
    };
    let int = |n: &str| {
        ColumnDescription::new(n)
            .with_type(ColumnDataType::Int)
            .create()
            .unwrap()
    };
    let cols = [
        text("APOGEE_ID"),
        text("TELESCOPE"),
        text("FIELD"),
        text("PLATE"),
        int("MJD"),
        int("FIBERID"),
    ];
    let h = f.create_table("ALLVISIT", &cols).unwrap();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
    h.write_col(
        &mut f,
        "APOGEE_ID",
        &s(&[
            "2M00005143+5615568",
            "2M00000000+0000000",
            "2M00005143+5615568",
        ]),
    )
    .unwrap();
    h.write_col(&mut f, "TELESCOPE", &s(&["apo25m", "lco25m", "apo25m"]))
        .unwrap();
    h.write_col(&mut f, "FIELD", &s(&["N7789", "X", "N7789"]))
        .unwrap();
    h.write_col(&mut f, "PLATE", &s(&["5094", "1", "5094"]))
        .unwrap();
    h.write_col(&mut f, "MJD", &[55874i32, 1, 56651]).unwrap();
    h.write_col(&mut f, "FIBERID", &[88i32, 1, 82]).unwrap();
}

#[test]
fn all_visit_rows_select_the_star_s_visits() {
    let dir = tempfile::tempdir().unwrap();
    let av = dir.path().join("allVisit-dr17-synspec_rev1.fits");
    write_all_visit(&av);
    let mut q = StarQuery::new(Release::Dr17, "2M00005143+5615568");
    assert_eq!(q.add_all_visit_rows(&av).unwrap(), 2);
    let reqs = q.requests(Product::ApVisit, &Templates::builtin()).unwrap();
    let rels: Vec<&str> = reqs.iter().map(|r| r.rel.as_str()).collect();
    assert_eq!(
        rels,
        [
            "dr17/apogee/spectro/redux/dr17/visit/apo25m/N7789/5094/55874/apVisit-dr17-5094-55874-088.fits",
            "dr17/apogee/spectro/redux/dr17/visit/apo25m/N7789/5094/56651/apVisit-dr17-5094-56651-082.fits",
        ]
    );
    let star = q.requests(Product::ApStar, &Templates::builtin()).unwrap();
    assert_eq!(
        star[0].rel,
        "dr17/apogee/spectro/redux/dr17/stars/apo25m/N7789/apStar-dr17-2M00005143+5615568.fits"
    );
    let mut other = StarQuery::new(Release::Dr17, "2M99999999+9999999");
    assert!(other.add_all_visit_rows(&av).is_err());
}

/// The real star's four files in the SAS layout under `root` (copied at test time).
fn real_star_sas(src: &Path, root: &Path) -> Vec<(String, Vec<u8>)> {
    let q = fetch::star::real_demo_query();
    let t = Templates::builtin();
    let mut reqs = q.requests(Product::ApStar, &t).unwrap();
    reqs.extend(q.requests(Product::ApVisit, &t).unwrap());
    let names = std::iter::once(APSTAR).chain(VISITS);
    let mut out = Vec::new();
    for (r, name) in reqs.iter().zip(names) {
        assert!(r.rel.ends_with(name), "{} vs {name}", r.rel);
        let bytes = std::fs::read(src.join(name)).unwrap();
        let p = root.join(&r.rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &bytes).unwrap();
        out.push((r.rel.clone(), bytes));
    }
    out
}

#[test]
fn real_star_from_a_mirror_lists_its_visits_in_the_apstar() {
    let Some(src) = real_star_dir("fetch::real_star_from_a_mirror") else {
        return;
    };
    let mirror = tempfile::tempdir().unwrap();
    real_star_sas(&src, mirror.path());
    let cache = tempfile::tempdir().unwrap();
    let cfg = FetchConfig {
        mirror: Some(mirror.path().to_path_buf()),
        offline: true,
        ..config("http://127.0.0.1:1", cache.path())
    };
    // No visits given: the apStar's SFILEn cards name them (its LOCID and FIELD cards fill in).
    let mut q = StarQuery::new(Release::Dr13, "2M00005143+5615568");
    q.values.set("location_id", 4264);
    let got = fetch::star::fetch_star(&q, &Templates::builtin(), &cfg, &mut |_| {}).unwrap();
    let names: Vec<String> = got
        .files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names[0], APSTAR);
    assert_eq!(&names[1..], VISITS);
    assert!(got.files.iter().all(|f| f.origin == Origin::Mirror));
    assert!(
        got.notes.iter().any(|n| n.contains("3 visit(s)")),
        "{:?}",
        got.notes
    );
    let (data, files, notes) = fetch::star::load_star(&got).unwrap();
    assert_eq!(data.visits.len(), 3);
    eprintln!(
        "loaded {} visits from {} files; notes {notes:?}",
        data.visits.len(),
        files.len()
    );
}

#[test]
fn real_star_over_http_then_from_the_cache() {
    let Some(src) = real_star_dir("fetch::real_star_over_http") else {
        return;
    };
    let staging = tempfile::tempdir().unwrap();
    let files = real_star_sas(&src, staging.path());
    let routes = files
        .iter()
        .map(|(rel, bytes)| (rel.clone(), Reply::File(bytes.clone())))
        .collect();
    let server = SasServer::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&server.base, cache.path());
    let q = fetch::star::real_demo_query();
    let mut starts = 0;
    let got = fetch::star::fetch_star(&q, &Templates::builtin(), &cfg, &mut |e| {
        if matches!(e, Event::Start { .. }) {
            starts += 1;
        }
    })
    .unwrap();
    assert_eq!(starts, 4);
    assert_eq!(got.files.len(), 4);
    for (f, (_, bytes)) in got.files.iter().zip(&files) {
        assert!(matches!(f.origin, Origin::Downloaded { .. }));
        assert_eq!(&std::fs::read(&f.path).unwrap(), bytes);
    }
    let again = fetch::star::fetch_star(&q, &Templates::builtin(), &cfg, &mut |_| {}).unwrap();
    assert!(again.files.iter().all(|f| f.origin == Origin::Cache));
    assert_eq!(server.requests().len(), 4);
    let (data, _, _) = fetch::star::load_star(&got).unwrap();
    assert_eq!(data.visits.len(), 3);
}

#[test]
fn fetch_cli_prints_the_local_paths() {
    let body = fixture();
    let rel = "dr13/apogee/spectro/redux/r6/apo25m/5095/55844/apVisit-r6-5095-55844-128.fits";
    let server = serve(rel, Reply::File(body));
    let cache = tempfile::tempdir().unwrap();
    let out = super::shared::frizzview()
        .args([
            "fetch",
            "2M01183798+8403419",
            "--release",
            "dr13",
            "-p",
            "apVisit",
            "--visit",
            "5095-55844-128",
            "--base-url",
            &server.base,
            "--cache",
        ])
        .arg(cache.path())
        .env_remove("SAS_BASE_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.trim(),
        cache.path().join(rel).display().to_string(),
        "{stderr}"
    );
    // --help documents every template and placeholder.
    let help = super::shared::frizzview()
        .args(["fetch", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for (r, p, t) in Templates::builtin().iter() {
        assert!(
            help.contains(&format!("{r}.{p}")) && help.contains(t),
            "{r}.{p} missing"
        );
    }
    for (k, _) in fetch::templates::PLACEHOLDERS {
        assert!(help.contains(k), "{k} missing from --help");
    }
    // A 404 exits non-zero with the URL in the message.
    let out = super::shared::frizzview()
        .args([
            "fetch",
            "2M01183798+8403419",
            "--release",
            "dr13",
            "-p",
            "apVisit",
        ])
        .args(["--visit", "1-2-3", "--base-url", &server.base, "--cache"])
        .arg(cache.path())
        .env_remove("SAS_BASE_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("404") && stderr.contains("apVisit-r6-1-2-003.fits"),
        "{stderr}"
    );
}
