//! Pages of the app as hash routes: `#/` (catalog), `#/experiments`, `#/experiments/e3`,
//! `#/workers`, `#/models`, `#/datasets`, `#/products/<id>` (the viewer of one product, with
//! `?overlay=<classified product id>` to draw classes over it).
//!
//! What it is: [`Route`], its parsing from `location.hash` and its `href`. Hash routes need no
//! server support: `albedo serve` hands out one `index.html` and the fragment never reaches it.
//!
//! What it is not: no history handling beyond the browser's own (`hashchange`).

use albedo_shared::catalog::ProductId;
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
    /// Registered models, registering one, classifying a product (`#/models`).
    Models,
    /// Training datasets and their versions (`#/datasets`).
    Datasets,
    /// The viewer of one product (`#/products/<id>`), with a classified product's classes
    /// drawn over it (`?overlay=<id>`).
    Product {
        /// The product shown (a classified product is shown over its source).
        id: ProductId,
        /// The classified product drawn over it.
        overlay: Option<ProductId>,
    },
    /// A hash the app does not know (shown as such, with links back).
    Unknown(String),
}

impl Route {
    /// Reads a `location.hash` (with or without its `#`). Parameters after `?` are ignored,
    /// but for a product's `overlay`. Path segments and values are percent-decoded.
    pub fn parse(hash: &str) -> Route {
        let h = hash.strip_prefix('#').unwrap_or(hash);
        let query = h.split_once('?').map(|(_, q)| q).unwrap_or("");
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
            ["models"] => Route::Models,
            ["datasets"] => Route::Datasets,
            ["products", id] if !id.is_empty() => Route::Product {
                id: ProductId(percent_decode(id)),
                overlay: query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("overlay="))
                    .filter(|v| !v.is_empty())
                    .map(|v| ProductId(percent_decode(v))),
            },
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
            Route::Models => "#/models".to_string(),
            Route::Datasets => "#/datasets".to_string(),
            Route::Product { id, overlay } => match overlay {
                Some(o) => format!(
                    "#/products/{}?overlay={}",
                    percent_encode(&id.0),
                    percent_encode(&o.0)
                ),
                None => format!("#/products/{}", percent_encode(&id.0)),
            },
            Route::Unknown(h) => format!("#{h}"),
        }
    }

    /// Which entry of the navigation bar this page belongs to.
    pub fn section(&self) -> &'static str {
        match self {
            Route::Catalog => "catalog",
            Route::Experiments | Route::Experiment(_) => "experiments",
            Route::Workers => "workers",
            Route::Models => "models",
            Route::Datasets => "datasets",
            Route::Product { .. } => "catalog",
            Route::Unknown(_) => "",
        }
    }
}

/// `%XX` escapes decoded (invalid ones and non-UTF-8 results kept as they are).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// Escapes every byte but letters, digits and `-._~` as `%XX`.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
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
        assert_eq!(Route::parse("#/models"), Route::Models);
        assert_eq!(Route::parse("#/datasets/"), Route::Datasets);
        assert_eq!(
            Route::parse("#/products/S2A_X?overlay=cls%2D1"),
            Route::Product {
                id: ProductId("S2A_X".into()),
                overlay: Some(ProductId("cls-1".into()))
            }
        );
        assert_eq!(
            Route::parse("#/products/a%20b"),
            Route::Product {
                id: ProductId("a b".into()),
                overlay: None
            }
        );
        for r in [
            Route::Models,
            Route::Datasets,
            Route::Product {
                id: ProductId("S1A x/y".into()),
                overlay: Some(ProductId("c-1_v2".into())),
            },
        ] {
            assert_eq!(Route::parse(&r.href()), r);
        }
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
