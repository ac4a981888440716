//! Pages of the app as hash routes: `#/` (catalog), `#/experiments`, `#/experiments/e3`,
//! `#/workers`.
//!
//! What it is: [`Route`], its parsing from `location.hash` and its `href`. Hash routes need no
//! server support: `albedo serve` hands out one `index.html` and the fragment never reaches it.
//!
//! What it is not: no history handling beyond the browser's own (`hashchange`).

use albedo_shared::experiment::ExperimentId;

/// One page of the app.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Route {
    /// The catalog search, map and viewer (`#/`, or no hash).
    #[default]
    Catalog,
    /// The experiment list and the form to launch one (`#/experiments`).
    Experiments,
    /// The live view of one experiment (`#/experiments/e3`).
    Experiment(ExperimentId),
    /// Connected workers (`#/workers`).
    Workers,
    /// A hash the app does not know (shown as such, with links back).
    Unknown(String),
}

impl Route {
    /// Reads a `location.hash` (with or without its `#`). Parameters after `?` are ignored.
    pub fn parse(hash: &str) -> Route {
        let h = hash.strip_prefix('#').unwrap_or(hash);
        let h = h.split(['?', '&']).next().unwrap_or("");
        let path = h.trim_matches('/');
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match parts.as_slice() {
            [] | ["catalog"] => Route::Catalog,
            ["experiments"] => Route::Experiments,
            ["experiments", id] if is_experiment_id(id) => {
                Route::Experiment(ExperimentId((*id).to_string()))
            }
            ["workers"] => Route::Workers,
            _ => Route::Unknown(h.to_string()),
        }
    }

    /// The `href` of this page.
    pub fn href(&self) -> String {
        match self {
            Route::Catalog => "#/".to_string(),
            Route::Experiments => "#/experiments".to_string(),
            Route::Experiment(id) => format!("#/experiments/{}", id.0),
            Route::Workers => "#/workers".to_string(),
            Route::Unknown(h) => format!("#{h}"),
        }
    }

    /// Which entry of the navigation bar this page belongs to.
    pub fn section(&self) -> &'static str {
        match self {
            Route::Catalog => "catalog",
            Route::Experiments | Route::Experiment(_) => "experiments",
            Route::Workers => "workers",
            Route::Unknown(_) => "",
        }
    }
}

/// Whether `s` looks like an experiment id the server hands out (`e` and digits).
fn is_experiment_id(s: &str) -> bool {
    s.len() > 1 && s.starts_with('e') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_map_to_pages_and_back() {
        assert_eq!(Route::parse(""), Route::Catalog);
        assert_eq!(Route::parse("#"), Route::Catalog);
        assert_eq!(Route::parse("#/"), Route::Catalog);
        assert_eq!(Route::parse("#/experiments"), Route::Experiments);
        assert_eq!(Route::parse("#/experiments/"), Route::Experiments);
        assert_eq!(
            Route::parse("#/experiments/e12"),
            Route::Experiment(ExperimentId("e12".into()))
        );
        assert_eq!(Route::parse("#/workers?x=1"), Route::Workers);
        assert_eq!(
            Route::parse("#/experiments/drop"),
            Route::Unknown("/experiments/drop".into())
        );
        for r in [
            Route::Catalog,
            Route::Experiments,
            Route::Experiment(ExperimentId("e3".into())),
            Route::Workers,
        ] {
            assert_eq!(Route::parse(&r.href()), r);
        }
        assert_eq!(
            Route::Experiment(ExperimentId("e3".into())).section(),
            "experiments"
        );
    }
}
