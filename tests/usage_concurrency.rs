//! Usage counting under concurrency: threads verifying the same keys with
//! two origins (so the in-entry counter and the usage table race for the
//! same key) while flushes run, lose and duplicate nothing.

mod common;

use common::fixture;
use keyward::{Actor, Label, NewKey, VerifyContext};

#[test]
fn concurrent_verifications_and_flushes_count_exactly() {
    const THREADS: usize = 4;
    const PER_THREAD: u64 = 20_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let f = rt.block_on(fixture());
    let keys: Vec<_> = (0..3)
        .map(|i| {
            rt.block_on(f.kw.issue_key(
                Actor::System,
                &f.account.id,
                NewKey::new(format!("shared {i}")),
            ))
            .expect("issued")
        })
        .collect();
    let wrong = f.admin.secret.expose().to_owned();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (kw, keys, wrong, rt) = (&f.kw, &keys, &wrong, &rt);
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let k = &keys[(i as usize + t) % keys.len()];
                    let origin = if (i + t as u64).is_multiple_of(3) {
                        Label::MCP
                    } else {
                        Label::API
                    };
                    let ctx = VerifyContext::new().origin(origin);
                    let id = k.key.id.as_str();
                    if i % 10 == 0 {
                        rt.block_on(kw.verify(id, wrong, ctx))
                            .expect_err("wrong secret");
                    } else {
                        rt.block_on(kw.verify(id, k.secret.expose(), ctx))
                            .expect("ok");
                    }
                }
            });
        }
        let kw = &f.kw;
        let rt = &rt;
        s.spawn(move || {
            for _ in 0..200 {
                rt.block_on(kw.flush()).expect("flush");
                std::thread::yield_now();
            }
        });
    });
    rt.block_on(f.kw.flush()).expect("final flush");
    let rows = rt
        .block_on(f.kw.usage(Actor::System, &f.account.id, common::around_now(&f.kw)))
        .expect("usage");
    let total = THREADS as u64 * PER_THREAD;
    let failures = THREADS as u64 * PER_THREAD.div_ceil(10);
    let sum = |origin: &str, pick: fn(&keyward::store::UsageRecord) -> u64| -> u64 {
        rows.iter().filter(|r| r.origin == origin).map(pick).sum()
    };
    let (s_api, s_mcp) = (sum("api", |r| r.successes), sum("mcp", |r| r.successes));
    let (f_api, f_mcp) = (sum("api", |r| r.failures), sum("mcp", |r| r.failures));
    assert_eq!(s_api + s_mcp + f_api + f_mcp, total, "{rows:?}");
    assert_eq!(f_api + f_mcp, failures, "{rows:?}");
    // Origins are attributed exactly: every third verification is `mcp`.
    let mcp_expected: u64 = (0..THREADS as u64)
        .map(|t| (0..PER_THREAD).filter(|i| (i + t) % 3 == 0).count() as u64)
        .sum();
    assert_eq!(s_mcp + f_mcp, mcp_expected, "{rows:?}");
}
