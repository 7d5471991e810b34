//! The behaviour every [`VectorStore`] engine must show, as one suite run against each engine
//! (embedded always, a server when one is configured), so the two cannot drift apart.
//!
//! Each case leaves the store empty, so cases do not see each other's points.

use crate::filter::{Access, PointPayload, SearchFilter};
use crate::vector::{SparseVector, VectorPoint, VectorStore, DIM};
use crate::Error;

pub fn run_all(store: &dyn VectorStore) {
    ranking(store);
    scores_of_named_points(store);
    access_filtering(store);
    field_filters(store);
    delete_doc(store);
    keys_with_spaces_match_exactly(store);
    delete_ids(store);
    reupsert_replaces(store);
    ids_of_doc_pages(store);
    invalid_input(store);
    sparse_ranking(store);
    sparse_filtering_and_deletes(store);
    sparse_invalid_input(store);
}

/// Unit vector along `a` tilted towards `b` by `t` (0 = pure `a`), normalised.
pub fn tilted(a: usize, b: usize, t: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[a] = 1.0;
    v[b] += t;
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

pub fn payload(doc: &str, kind: &str, access: Access) -> PointPayload {
    PointPayload {
        doc: doc.into(),
        kind: kind.into(),
        law: None,
        access,
        date: None,
    }
}

pub fn point(id: u64, vector: Vec<f32>, payload: PointPayload) -> VectorPoint {
    VectorPoint {
        id,
        vector,
        sparse: None,
        payload,
    }
}

/// A point with sparse weights `terms` (dimension, weight) as well as a dense vector.
pub fn sparse_point(id: u64, terms: &[(u32, f32)], payload: PointPayload) -> VectorPoint {
    VectorPoint {
        sparse: Some(SparseVector::from_pairs(terms.to_vec())),
        ..point(id, tilted(0, 1, id as f32 * 0.1), payload)
    }
}

fn sparse_ids(
    store: &dyn VectorStore,
    terms: &[(u32, f32)],
    k: usize,
    filter: &SearchFilter,
) -> Vec<u64> {
    let hits = store
        .search_sparse(&SparseVector::from_pairs(terms.to_vec()), k, filter)
        .expect("sparse search");
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "hits not sorted by score: {hits:?}"
    );
    hits.iter().map(|h| h.id).collect()
}

pub fn everyone() -> SearchFilter {
    SearchFilter {
        access: vec![Access::Public, Access::Internal],
        ..SearchFilter::default()
    }
}

pub fn public() -> SearchFilter {
    SearchFilter {
        access: vec![Access::Public],
        ..SearchFilter::default()
    }
}

fn ids(store: &dyn VectorStore, query: &[f32], k: usize, filter: &SearchFilter) -> Vec<u64> {
    let hits = store.search(query, k, filter).expect("search");
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "hits not sorted by score: {hits:?}"
    );
    hits.iter().map(|h| h.id).collect()
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn assert_empty(store: &dyn VectorStore) {
    assert_eq!(
        store.count(&everyone()).expect("count"),
        0,
        "store not empty"
    );
}

fn ranking(store: &dyn VectorStore) {
    assert_empty(store);
    let p = || payload("rank.pdf", "pdf", Access::Public);
    store
        .upsert(vec![
            point(4, tilted(1, 0, 0.0), p()),
            point(2, tilted(0, 1, 0.5), p()),
            point(1, tilted(0, 1, 0.0), p()),
            point(3, tilted(0, 1, 2.0), p()),
        ])
        .expect("upsert");
    let q = tilted(0, 1, 0.0);
    assert_eq!(ids(store, &q, 10, &everyone()), vec![1, 2, 3, 4]);
    assert_eq!(ids(store, &q, 2, &everyone()), vec![1, 2]);
    let hits = store.search(&q, 1, &everyone()).expect("search");
    assert!(
        (hits[0].score - 1.0).abs() < 1e-4,
        "cosine of identical vectors: {hits:?}"
    );
    assert!(store.search(&q, 0, &everyone()).expect("k=0").is_empty());
    store.delete_doc("rank.pdf").expect("cleanup");
}

fn scores_of_named_points(store: &dyn VectorStore) {
    assert_empty(store);
    let p = |access| payload("score.pdf", "pdf", access);
    store
        .upsert(vec![
            point(1, tilted(0, 1, 0.0), p(Access::Public)),
            point(2, tilted(0, 1, 0.5), p(Access::Public)),
            point(3, tilted(1, 0, 0.0), p(Access::Public)),
            point(4, tilted(0, 1, 0.2), p(Access::Internal)),
        ])
        .expect("upsert");
    let q = tilted(0, 1, 0.0);
    let searched = store.search(&q, 10, &everyone()).expect("search");
    let scored = store.score(&q, &[3, 2, 4, 99], &everyone()).expect("score");
    assert_eq!(
        scored.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![4, 2, 3],
        "the named points that exist, best first"
    );
    for hit in &scored {
        let same = searched.iter().find(|h| h.id == hit.id).expect("searched");
        assert!((same.score - hit.score).abs() < 1e-4, "{same:?} {hit:?}");
    }
    // a point the caller may not read is not scored
    let public = store.score(&q, &[2, 4], &public()).expect("score");
    assert_eq!(public.iter().map(|h| h.id).collect::<Vec<_>>(), vec![2]);
    assert!(store.score(&q, &[], &everyone()).expect("none").is_empty());
    store.delete_doc("score.pdf").expect("cleanup");
}

fn access_filtering(store: &dyn VectorStore) {
    assert_empty(store);
    // Internal points sit closest to the query, so any leak would rank first.
    let mut points: Vec<_> = (0..5)
        .map(|i| {
            point(
                100 + i,
                tilted(0, 1, 0.01 * i as f32),
                payload("secret.pdf", "pdf", Access::Internal),
            )
        })
        .collect();
    points.extend((0..10).map(|i| {
        point(
            200 + i,
            tilted(0, 1, 1.0 + 0.1 * i as f32),
            payload("open.pdf", "pdf", Access::Public),
        )
    }));
    store.upsert(points).expect("upsert");
    let q = tilted(0, 1, 0.0);

    let public_ids = ids(store, &q, 100, &public());
    assert_eq!(sorted(public_ids), (200..210).collect::<Vec<_>>());
    assert_eq!(store.count(&public()).expect("count"), 10);

    let internal = SearchFilter {
        access: vec![Access::Internal],
        ..SearchFilter::default()
    };
    assert_eq!(
        sorted(ids(store, &q, 100, &internal)),
        (100..105).collect::<Vec<_>>()
    );
    assert_eq!(store.count(&internal).expect("count"), 5);
    assert_eq!(store.count(&everyone()).expect("count"), 15);
    assert_eq!(ids(store, &q, 3, &everyone()), vec![100, 101, 102]);

    // A public caller naming an internal document still sees nothing of it.
    let probing = SearchFilter {
        doc: Some("secret.pdf".into()),
        ..public()
    };
    assert!(ids(store, &q, 10, &probing).is_empty());
    assert_eq!(store.count(&probing).expect("count"), 0);

    // No access level at all: fail closed, whatever else the filter says.
    let nobody = SearchFilter {
        access: vec![],
        kinds: vec!["pdf".into()],
        ..SearchFilter::default()
    };
    assert!(ids(store, &q, 10, &nobody).is_empty());
    assert_eq!(store.count(&nobody).expect("count"), 0);
    assert_eq!(store.count(&SearchFilter::default()).expect("count"), 0);

    store.delete_doc("secret.pdf").expect("cleanup");
    store.delete_doc("open.pdf").expect("cleanup");
}

fn field_filters(store: &dyn VectorStore) {
    assert_empty(store);
    let with = |doc: &str, kind: &str, law: Option<&str>, date: Option<i64>| PointPayload {
        doc: doc.into(),
        kind: kind.into(),
        law: law.map(Into::into),
        access: Access::Public,
        date,
    };
    store
        .upsert(vec![
            point(
                1,
                tilted(0, 1, 0.1),
                with("a.xml", "statute", Some("식품위생법"), Some(20200101)),
            ),
            point(
                2,
                tilted(0, 1, 0.2),
                with("a.xml", "statute", Some("식품위생법"), Some(20231231)),
            ),
            point(
                3,
                tilted(0, 1, 0.3),
                with("b.xml", "statute", Some("약사법"), Some(20240101)),
            ),
            point(
                4,
                tilted(0, 1, 0.4),
                with("c.pdf", "pdf", None, Some(20240615)),
            ),
            point(
                5,
                tilted(0, 1, 0.5),
                with("d.hwp", "safety_letter", None, None),
            ),
        ])
        .expect("upsert");
    let q = tilted(0, 1, 0.0);
    let check = |filter: SearchFilter, expected: &[u64]| {
        assert_eq!(
            sorted(ids(store, &q, 10, &filter)),
            expected,
            "search {filter:?}"
        );
        assert_eq!(
            store.count(&filter).expect("count"),
            expected.len() as u64,
            "count {filter:?}"
        );
    };

    check(public(), &[1, 2, 3, 4, 5]);
    check(
        SearchFilter {
            kinds: vec!["statute".into()],
            ..public()
        },
        &[1, 2, 3],
    );
    check(
        SearchFilter {
            kinds: vec!["pdf".into(), "safety_letter".into()],
            ..public()
        },
        &[4, 5],
    );
    check(
        SearchFilter {
            kinds: vec!["nothing".into()],
            ..public()
        },
        &[],
    );
    check(
        SearchFilter {
            law: Some("식품위생법".into()),
            ..public()
        },
        &[1, 2],
    );
    check(
        SearchFilter {
            law: Some("약사법".into()),
            ..public()
        },
        &[3],
    );
    check(
        SearchFilter {
            doc: Some("c.pdf".into()),
            ..public()
        },
        &[4],
    );
    // Date bounds are inclusive; a point without a date fails any bound.
    check(
        SearchFilter {
            date_from: Some(20231231),
            ..public()
        },
        &[2, 3, 4],
    );
    check(
        SearchFilter {
            date_to: Some(20231231),
            ..public()
        },
        &[1, 2],
    );
    check(
        SearchFilter {
            date_from: Some(20210101),
            date_to: Some(20240101),
            ..public()
        },
        &[2, 3],
    );
    check(
        SearchFilter {
            kinds: vec!["statute".into()],
            law: Some("식품위생법".into()),
            date_from: Some(20230101),
            ..public()
        },
        &[2],
    );

    for doc in ["a.xml", "b.xml", "c.pdf", "d.hwp"] {
        store.delete_doc(doc).expect("cleanup");
    }
}

fn delete_doc(store: &dyn VectorStore) {
    assert_empty(store);
    let mut points: Vec<_> = (0..20)
        .map(|i| {
            point(
                i,
                tilted(0, 1, i as f32),
                payload("gone.pdf", "pdf", Access::Public),
            )
        })
        .collect();
    points.extend((20..25).map(|i| {
        point(
            i,
            tilted(0, 1, i as f32),
            payload("kept.pdf", "pdf", Access::Public),
        )
    }));
    store.upsert(points).expect("upsert");
    assert_eq!(
        sorted(store.ids_of_doc("gone.pdf").expect("ids")),
        (0..20).collect::<Vec<_>>()
    );

    store.delete_doc("gone.pdf").expect("delete_doc");
    assert!(store.ids_of_doc("gone.pdf").expect("ids").is_empty());
    assert_eq!(store.count(&everyone()).expect("count"), 5);
    let q = tilted(0, 1, 0.0);
    assert_eq!(
        sorted(ids(store, &q, 100, &everyone())),
        (20..25).collect::<Vec<_>>()
    );
    // Deleting an unknown document is not an error.
    store
        .delete_doc("never-existed.pdf")
        .expect("delete unknown");

    store.delete_doc("kept.pdf").expect("cleanup");
}

/// Document keys and law names are matched whole, spaces and all: a key that is the start of
/// another ("… ff.hwp" and "… ff.hwpx") or a law name inside a longer one never matches it.
fn keys_with_spaces_match_exactly(store: &dyn VectorStore) {
    assert_empty(store);
    let (short, long) = ("hwp/2024년 보도자료 ff.hwp", "hwp/2024년 보도자료 ff.hwpx");
    let law = |doc: &str, law: &str| PointPayload {
        law: Some(law.into()),
        ..payload(doc, "statute", Access::Public)
    };
    store
        .upsert(vec![
            point(
                1,
                tilted(0, 1, 0.0),
                law(short, "식품 등의 표시ㆍ광고에 관한 법률"),
            ),
            point(
                2,
                tilted(0, 1, 0.1),
                law(long, "식품 등의 표시ㆍ광고에 관한 법률 시행령"),
            ),
        ])
        .expect("upsert");
    assert_eq!(store.ids_of_doc(short).expect("ids"), vec![1]);
    let q = tilted(0, 1, 0.0);
    let by_doc = SearchFilter {
        doc: Some(short.into()),
        ..everyone()
    };
    assert_eq!(ids(store, &q, 10, &by_doc), vec![1]);
    let by_law = SearchFilter {
        law: Some("식품 등의 표시ㆍ광고에 관한 법률".into()),
        ..everyone()
    };
    assert_eq!(ids(store, &q, 10, &by_law), vec![1]);
    assert_eq!(store.count(&by_law).expect("count"), 1);
    store.delete_doc(short).expect("delete_doc");
    assert_eq!(
        store.ids_of_doc(long).expect("ids"),
        vec![2],
        "the other document stays"
    );
    store.delete_doc(long).expect("cleanup");
}

fn delete_ids(store: &dyn VectorStore) {
    assert_empty(store);
    let points = (0..10)
        .map(|i| {
            point(
                i,
                tilted(0, 1, i as f32),
                payload("ids.pdf", "pdf", Access::Public),
            )
        })
        .collect();
    store.upsert(points).expect("upsert");
    store.delete_ids(&[0, 3, 9, 12345]).expect("delete_ids");
    store.delete_ids(&[]).expect("delete nothing");
    assert_eq!(
        sorted(store.ids_of_doc("ids.pdf").expect("ids")),
        vec![1, 2, 4, 5, 6, 7, 8]
    );
    assert_eq!(store.count(&everyone()).expect("count"), 7);
    let q = tilted(0, 1, 0.0);
    assert_eq!(ids(store, &q, 1, &everyone()), vec![1]);
    store.delete_doc("ids.pdf").expect("cleanup");
}

fn reupsert_replaces(store: &dyn VectorStore) {
    assert_empty(store);
    let q = tilted(0, 1, 0.0);
    store
        .upsert(vec![
            point(
                7,
                tilted(0, 1, 0.0),
                payload("v1.pdf", "pdf", Access::Public),
            ),
            point(
                8,
                tilted(0, 1, 1.0),
                payload("v1.pdf", "pdf", Access::Public),
            ),
        ])
        .expect("upsert");
    assert_eq!(ids(store, &q, 10, &public()), vec![7, 8]);

    // Same id, new vector (now far from the query) and new payload (now internal).
    store
        .upsert(vec![point(
            7,
            tilted(1, 0, 0.0),
            payload("v2.pdf", "pdf", Access::Internal),
        )])
        .expect("re-upsert");
    assert_eq!(store.count(&everyone()).expect("count"), 2);
    assert_eq!(ids(store, &q, 10, &public()), vec![8]);
    assert_eq!(ids(store, &q, 10, &everyone()), vec![8, 7]);
    assert_eq!(store.ids_of_doc("v1.pdf").expect("ids"), vec![8]);
    assert_eq!(store.ids_of_doc("v2.pdf").expect("ids"), vec![7]);

    store.delete_doc("v1.pdf").expect("cleanup");
    store.delete_doc("v2.pdf").expect("cleanup");
}

fn ids_of_doc_pages(store: &dyn VectorStore) {
    assert_empty(store);
    // More than one scroll page, split over two calls as the ingest batches them.
    let n = 2_500u64;
    let make = |range: std::ops::Range<u64>| {
        range
            .map(|i| {
                point(
                    i,
                    tilted(i as usize % DIM, 0, 0.5),
                    payload("big.xml", "statute", Access::Public),
                )
            })
            .collect::<Vec<_>>()
    };
    store.upsert(make(0..1_200)).expect("upsert");
    store.upsert(make(1_200..n)).expect("upsert");
    assert_eq!(
        sorted(store.ids_of_doc("big.xml").expect("ids")),
        (0..n).collect::<Vec<_>>()
    );
    store.delete_doc("big.xml").expect("cleanup");
    assert_empty(store);
}

fn invalid_input(store: &dyn VectorStore) {
    let short = point(
        1,
        vec![1.0; DIM - 1],
        payload("bad.pdf", "pdf", Access::Public),
    );
    assert!(matches!(
        store.upsert(vec![short]),
        Err(Error::InvalidInput(_))
    ));
    let mut nan = tilted(0, 1, 0.0);
    nan[5] = f32::NAN;
    assert!(matches!(
        store.upsert(vec![point(
            1,
            nan.clone(),
            payload("bad.pdf", "pdf", Access::Public)
        )]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        store.search(&nan, 5, &everyone()),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        store.search(&vec![0.0; DIM], 5, &everyone()),
        Err(Error::InvalidInput(_))
    ));
    assert_empty(store);
}

/// Sparse scores are Σ query weight × stored weight × IDF: a rare dimension outweighs a
/// common one, a larger stored weight wins among equals, and points without a sparse vector
/// are never sparse hits.
fn sparse_ranking(store: &dyn VectorStore) {
    assert_empty(store);
    let p = || payload("sparse.md", "statute", Access::Public);
    // dimension 7 is in every sparse point (IDF ≈ 0.1), dimension 9 only in point 3 (≈ 1.0)
    store
        .upsert(vec![
            sparse_point(1, &[(7, 2.0)], p()),
            sparse_point(2, &[(7, 1.0), (8, 1.0)], p()),
            sparse_point(3, &[(7, 0.5), (9, 0.5)], p()),
            sparse_point(4, &[(7, 1.5), (8, 0.5)], p()),
            point(5, tilted(0, 1, 0.0), p()),
        ])
        .expect("upsert");
    assert_eq!(
        sparse_ids(store, &[(7, 1.0), (9, 1.0)], 10, &everyone()),
        vec![3, 1, 4, 2],
        "the rare dimension first, then by stored weight"
    );
    assert_eq!(sparse_ids(store, &[(8, 1.0)], 10, &everyone()), vec![2, 4]);
    assert_eq!(
        sparse_ids(store, &[(7, 1.0), (9, 1.0)], 2, &everyone()),
        vec![3, 1]
    );
    assert!(sparse_ids(store, &[(11, 1.0)], 10, &everyone()).is_empty());
    assert!(sparse_ids(store, &[], 10, &everyone()).is_empty());
    assert!(sparse_ids(store, &[(7, 1.0)], 0, &everyone()).is_empty());
    // dense search still sees every point, with or without a sparse vector
    assert_eq!(
        sorted(ids(store, &tilted(0, 1, 0.0), 10, &everyone())),
        vec![1, 2, 3, 4, 5]
    );
    store.delete_doc("sparse.md").expect("cleanup");
    assert_empty(store);
}

/// The caller's filter applies inside the sparse query too, and deleted or replaced points
/// leave it.
fn sparse_filtering_and_deletes(store: &dyn VectorStore) {
    assert_empty(store);
    store
        .upsert(vec![
            sparse_point(1, &[(3, 1.0)], payload("a.md", "statute", Access::Public)),
            // the internal point matches best, so a leak would rank it first
            sparse_point(
                2,
                &[(3, 5.0), (4, 5.0)],
                payload("secret.md", "statute", Access::Internal),
            ),
            sparse_point(3, &[(4, 1.0)], payload("b.pdf", "pdf", Access::Public)),
        ])
        .expect("upsert");
    let q = [(3, 1.0), (4, 1.0)];
    assert_eq!(sorted(sparse_ids(store, &q, 10, &public())), vec![1, 3]);
    assert_eq!(sparse_ids(store, &q, 10, &everyone())[0], 2);
    let statutes = SearchFilter {
        kinds: vec!["statute".into()],
        ..public()
    };
    assert_eq!(sparse_ids(store, &q, 10, &statutes), vec![1]);
    let nobody = SearchFilter::default();
    assert!(
        sparse_ids(store, &q, 10, &nobody).is_empty(),
        "fails closed"
    );
    // replacing a point replaces its sparse vector; deleting removes it
    store
        .upsert(vec![sparse_point(
            1,
            &[(6, 1.0)],
            payload("a.md", "statute", Access::Public),
        )])
        .expect("re-upsert");
    assert_eq!(sparse_ids(store, &q, 10, &public()), vec![3]);
    assert_eq!(sparse_ids(store, &[(6, 1.0)], 10, &public()), vec![1]);
    store.delete_ids(&[3]).expect("delete id");
    assert!(sparse_ids(store, &q, 10, &public()).is_empty());
    store.delete_doc("a.md").expect("cleanup");
    store.delete_doc("secret.md").expect("cleanup");
    assert_empty(store);
}

fn sparse_invalid_input(store: &dyn VectorStore) {
    let p = || payload("bad.md", "statute", Access::Public);
    let bad = [
        SparseVector {
            indices: vec![2, 1],
            values: vec![1.0, 1.0],
        },
        SparseVector {
            indices: vec![1, 2],
            values: vec![1.0],
        },
        SparseVector {
            indices: vec![1],
            values: vec![f32::NAN],
        },
        SparseVector {
            indices: vec![1],
            values: vec![-1.0],
        },
    ];
    for v in bad {
        let mut point = sparse_point(1, &[], p());
        point.sparse = Some(v.clone());
        assert!(
            matches!(store.upsert(vec![point]), Err(Error::InvalidInput(_))),
            "{v:?} stored"
        );
        assert!(
            matches!(
                store.search_sparse(&v, 5, &everyone()),
                Err(Error::InvalidInput(_))
            ),
            "{v:?} searched"
        );
    }
    assert_empty(store);
}
