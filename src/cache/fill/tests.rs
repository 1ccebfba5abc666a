//! The fill's guarantees, each forced deterministically.

use super::{
    table::FillKey,
    writer::{PIECE_BYTES, WINDOW_BYTES},
    *,
};
use crate::cache::{CacheKey, key::VaryValues};

fn fills(budget: u64) -> Arc<Fills<()>> {
    Arc::new(Fills::new(Arc::new(InflightBudget::new(budget))))
}

fn key(p: &str) -> FillKey {
    (CacheKey::new("s", "h", p), VaryValues::default())
}

fn head(shareable: bool) -> FillHead<()> {
    FillHead {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        shareable,
        meta: (),
    }
}

const T: Duration = Duration::from_secs(5);

/// Starts the fill for `p`, which must be new.
fn lead(f: &Arc<Fills<()>>, p: &str) -> FillWriter<()> {
    match f.join(key(p)) {
        Joined::Leader(w) => w,
        Joined::Follower(_) => panic!("{p} already has a fill"),
    }
}

/// Polls `fut` once: is it still waiting?
async fn pending<F: std::future::Future>(fut: &mut std::pin::Pin<&mut F>) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
}

#[tokio::test]
async fn a_held_back_fill_wakes_its_readers_once_with_one_buffer() {
    let f = fills(1 << 20);
    let mut w = lead(&f, "/a");
    let mut r = w.fill().reader(T).unwrap();
    let stored = {
        let mut waiting = std::pin::pin!(r.head(T));
        assert!(pending(&mut waiting).await);
        w.hold_back();
        w.set_head(head(true), Some(6));
        w.push(Bytes::from_static(b"abc"), T).await.unwrap();
        w.push(Bytes::from_static(b"def"), T).await.unwrap();
        // Head and body are in, but the waiting reader has not been woken for them.
        assert!(pending(&mut waiting).await);
        let stored = w.retained_body().unwrap();
        w.finish(Ok(()));
        assert!(!pending(&mut waiting).await);
        stored
    };
    // It answers with the very buffer that was stored, not the origin's two chunks.
    let whole = r.whole().expect("the fill ended with one buffer");
    assert_eq!(whole, "abcdef");
    assert_eq!(whole.as_ptr(), stored.as_ptr());
    // A fill that is not held back wakes readers as things arrive, and streams its chunks.
    let mut w = lead(&f, "/b");
    let mut r = w.fill().reader(T).unwrap();
    {
        let mut waiting = std::pin::pin!(r.head(T));
        assert!(pending(&mut waiting).await);
        w.set_head(head(true), Some(6));
        assert!(!pending(&mut waiting).await);
    }
    w.push(Bytes::from_static(b"abc"), T).await.unwrap();
    w.push(Bytes::from_static(b"def"), T).await.unwrap();
    w.retained_body().unwrap();
    w.finish(Ok(()));
    assert!(r.whole().is_none(), "two chunks are streamed, not joined");
    assert_eq!(r.next_chunk().await.unwrap().unwrap(), "abc");
}

/// The interleaving behind short bodies under load: a follower that finds the head of a
/// held-back fill already set reads the first chunk before the fill joins its chunks into
/// the stored buffer. It must still get every byte, then the end.
#[tokio::test]
async fn a_reader_that_read_from_a_held_back_fill_still_gets_every_byte() {
    let f = fills(1 << 20);
    let mut w = lead(&f, "/a");
    w.hold_back();
    w.set_head(head(true), Some(6));
    w.push(Bytes::from_static(b"abc"), T).await.unwrap();
    let Joined::Follower(fill) = f.join(key("/a")) else {
        panic!("the fill takes followers")
    };
    let mut late = fill.reader(T).unwrap();
    late.head(T).await.unwrap();
    assert!(late.whole().is_none(), "not ended yet");
    assert_eq!(late.next_chunk().await.unwrap().unwrap(), "abc");
    w.push(Bytes::from_static(b"def"), T).await.unwrap();
    assert_eq!(w.retained_body().unwrap(), "abcdef");
    w.finish(Ok(()));
    let mut rest = Vec::new();
    while let Some(c) = late.next_chunk().await {
        rest.extend_from_slice(&c.unwrap());
    }
    assert_eq!(rest, b"def", "the reader's body ended short");
}

#[tokio::test]
async fn an_unstored_fill_keeps_its_window_in_the_budget_or_one_piece_outside() {
    let f = fills(4 << 20);
    let mut w = lead(&f, "/a");
    let _reader = w.fill().reader(T).unwrap();
    w.set_max_object_size(10);
    w.set_head(head(true), None);
    w.push(Bytes::from(vec![0u8; 1000]), T).await.unwrap();
    assert!(!w.retaining());
    assert_eq!(
        f.budget().used(),
        WINDOW_BYTES as u64,
        "the window is budgeted"
    );
    w.finish(Ok(()));
    assert_eq!(f.budget().used(), 0);

    // No room in the budget: one piece at a time outside it, at the reader's pace, each an
    // exact-size copy rather than a slice pinning the origin's read buffer.
    let f = fills(1000);
    let mut w = lead(&f, "/b");
    let mut r = w.fill().reader(T).unwrap();
    w.set_max_object_size(10);
    w.set_head(head(true), Some(1 << 20));
    let chunk = Bytes::from(vec![0u8; 3 * PIECE_BYTES]);
    {
        let mut more = std::pin::pin!(w.push(chunk.clone(), T));
        assert!(
            pending(&mut more).await,
            "a piece ahead of the reader: the next waits"
        );
        assert_eq!(f.budget().used(), 0);
        r.head(T).await.unwrap();
        let first = r.next_chunk().await.unwrap().unwrap();
        assert_eq!(first.len(), PIECE_BYTES);
        assert_ne!(first.as_ptr(), chunk.as_ptr(), "a copy");
        assert!(pending(&mut more).await, "the third piece waits its turn");
        r.next_chunk().await.unwrap().unwrap();
        tokio::time::timeout(T, more).await.unwrap().unwrap();
    }
    w.finish(Ok(()));
}

#[tokio::test]
async fn followers_stream_the_leaders_body() {
    let f = fills(1 << 20);
    let mut w = lead(&f, "/a");
    let Joined::Follower(fill) = f.join(key("/a")) else {
        panic!()
    };
    let mut r = fill.reader(T).unwrap();
    w.set_head(head(true), None);
    assert_eq!(r.head(T).await.unwrap().status, 200);
    w.push(Bytes::from_static(b"hel"), T).await.unwrap();
    assert_eq!(r.next_chunk().await.unwrap().unwrap(), "hel");
    w.push(Bytes::from_static(b"lo"), T).await.unwrap();
    assert_eq!(w.retained_body().unwrap(), "hello");
    w.finish(Ok(()));
    w.done();
    assert_eq!(r.next_chunk().await.unwrap().unwrap(), "lo");
    assert!(r.next_chunk().await.is_none());
    assert_eq!(f.in_progress(), 0);
    assert_eq!(f.budget().used(), 0);
}

#[tokio::test]
async fn an_abandoned_writer_fails_readers_and_frees_the_key() {
    let f = fills(1 << 20);
    let mut w = lead(&f, "/a");
    let mut r = w.fill().reader(T).unwrap();
    let mut late = w.fill().reader(T).unwrap();
    w.set_head(head(true), None);
    r.head(T).await.unwrap();
    w.push(Bytes::from_static(b"par"), T).await.unwrap();
    drop(w);
    // A reader already answering its client gets what came, then the error.
    assert_eq!(r.next_chunk().await.unwrap().unwrap(), "par");
    assert!(matches!(
        r.next_chunk().await,
        Some(Err(FillError::Abandoned))
    ));
    // One that had not sent its head yet gets the error instead of a head.
    assert!(matches!(late.head(T).await, Err(FillError::Abandoned)));
    assert!(matches!(f.join(key("/a")), Joined::Leader(_)));
}

#[tokio::test]
async fn a_full_budget_stops_retention_and_closes_the_door() {
    let f = fills(4);
    let mut w = lead(&f, "/a");
    let mut r = w.fill().reader(T).unwrap();
    w.set_head(head(true), None);
    w.push(Bytes::from_static(b"abc"), T).await.unwrap();
    assert!(w.retaining());
    w.push(Bytes::from_static(b"def"), T).await.unwrap();
    assert!(!w.retaining());
    assert_eq!(f.budget().used(), 0);
    assert!(
        matches!(f.join(key("/a")), Joined::Leader(_)),
        "door closed"
    );
    assert!(w.retained_body().is_none(), "not retained, not stored");
    w.finish(Ok(()));
    r.head(T).await.unwrap();
    assert_eq!(r.next_chunk().await.unwrap().unwrap(), "abc");
    assert_eq!(r.next_chunk().await.unwrap().unwrap(), "def");
    assert!(r.next_chunk().await.is_none());
}

#[tokio::test]
async fn window_mode_trims_and_gives_up_without_readers() {
    let f = fills(1 << 30);
    let mut w = lead(&f, "/big");
    w.set_max_object_size(10);
    let r = w.fill().reader(T).unwrap();
    w.set_head(head(true), Some(100));
    assert!(!w.retaining());
    w.push(Bytes::from_static(b"0123456789"), T).await.unwrap();
    drop(r);
    assert!(matches!(
        w.push(Bytes::from_static(b"x"), T).await,
        Err(FillError::Abandoned)
    ));
}

#[tokio::test]
async fn a_reader_that_stalls_a_windowed_fill_is_dropped_not_everyone() {
    let f = fills(1 << 30);
    let mut w = lead(&f, "/big");
    w.set_max_object_size(10);
    let mut fast = w.fill().reader(T).unwrap();
    let mut slow = w.fill().reader(T).unwrap();
    w.set_head(head(true), Some(4 << 20));
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some(c) = fast.next_chunk().await {
            n += c.unwrap().len();
        }
        n
    });
    let chunk = Bytes::from(vec![0u8; 64 << 10]);
    for _ in 0..64 {
        w.push(chunk.clone(), Duration::from_millis(100))
            .await
            .unwrap();
    }
    w.finish(Ok(()));
    assert_eq!(
        reader.await.unwrap(),
        4 << 20,
        "the fast reader got every byte"
    );
    slow.head(T).await.unwrap();
    let mut saw_error = false;
    while let Some(c) = slow.next_chunk().await {
        if let Err(e) = c {
            assert!(matches!(e, FillError::TooSlow));
            saw_error = true;
            break;
        }
    }
    assert!(
        saw_error,
        "the stalled reader's body ends in an error, never cleanly"
    );
}

#[tokio::test]
async fn unshareable_heads_close_the_door() {
    let f = fills(1 << 20);
    let mut w = lead(&f, "/p");
    w.set_head(head(false), None);
    assert!(matches!(f.join(key("/p")), Joined::Leader(_)));
}
