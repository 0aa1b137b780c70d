//! The route table without sockets: requests go straight to
//! [`HttpRoutes::serve`] with bodies built from streams.

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use axum::http::HeaderMap;

use super::*;

/// Hands every accepted body to the test.
struct Catch(std::sync::mpsc::Sender<BodyReader>);

impl RouteHandler for Catch {
    fn request(&self, _: &RequestHead, body: BodyReader) -> Result<(), Refusal> {
        self.0.send(body).map_err(|_| Refusal::Unavailable("test over".into()))
    }
}

fn routes_with_catch() -> (HttpRoutes, RouteGuard, std::sync::mpsc::Receiver<BodyReader>) {
    let routes = HttpRoutes::default();
    routes.set_listener("http", "127.0.0.1:8888".parse().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let guard = routes.register(Arc::new(Catch(tx)));
    (routes, guard, rx)
}

/// A chunked body of `n` chunks of `size` bytes; counts the chunks pulled.
fn counted_body(n: usize, size: usize) -> (Body, Arc<AtomicUsize>) {
    let pulled = Arc::new(AtomicUsize::new(0));
    let p = pulled.clone();
    let stream = futures_util::stream::iter(0..n).map(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from(vec![7u8; size]))
    });
    (Body::from_stream(stream), pulled)
}

async fn post(routes: &HttpRoutes, token: &str, body: Body) -> StatusCode {
    routes.serve(token, Method::POST, &HeaderMap::new(), body).await.status()
}

#[test]
fn tokens_are_long_random_hex() {
    let a = RouteToken::random();
    let b = RouteToken::random();
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), TOKEN_BYTES * 2);
    const { assert!(TOKEN_BYTES * 8 >= 128) };
    assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn url_prefers_the_announced_address_then_the_bound_one() {
    let (routes, guard, _rx) = routes_with_catch();
    let t = guard.token().clone();
    assert_eq!(routes.url(&t, None).unwrap(), format!("http://127.0.0.1:8888/kurento-http/{t}"));
    assert_eq!(
        routes.url(&t, Some("media.example.com")).unwrap(),
        format!("http://media.example.com:8888/kurento-http/{t}")
    );
    assert_eq!(routes.url(&t, Some("2001:db8::1")).unwrap(), format!("http://[2001:db8::1]:8888/kurento-http/{t}"));
    routes.set_listener("https", "0.0.0.0:4433".parse().unwrap());
    let any = routes.url(&t, None).unwrap();
    assert!(any.starts_with("https://") && any.ends_with(&format!(":4433/kurento-http/{t}")), "{any}");
    assert!(HttpRoutes::default().url(&t, None).is_none(), "no URL without a listener");
}

#[tokio::test]
async fn unknown_token_is_404_and_dropping_the_guard_unregisters() {
    let (routes, guard, _rx) = routes_with_catch();
    assert_eq!(post(&routes, "nope", Body::empty()).await, StatusCode::NOT_FOUND);
    let token = guard.token().as_str().to_owned();
    assert_eq!(routes.len(), 1);
    drop(guard);
    assert!(routes.is_empty());
    assert_eq!(post(&routes, &token, Body::from("x")).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_post_is_accepted() {
    let (routes, guard, _rx) = routes_with_catch();
    let r = routes.serve(guard.token().as_str(), Method::GET, &HeaderMap::new(), Body::empty()).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers().get(header::ALLOW).unwrap(), "POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_arrives_in_bounded_chunks_and_is_pulled_no_faster_than_read() {
    let (routes, guard, rx) = routes_with_catch();
    let token = guard.token().as_str().to_owned();
    // 200 chunks of 100 KiB: each is split into ≤ 64 KiB pieces.
    let (body, pulled) = counted_body(200, 100 * 1024);
    let r2 = routes.clone();
    let request = tokio::spawn(async move { post(&r2, &token, body).await });
    let mut reader = tokio::task::spawn_blocking(move || rx.recv().unwrap()).await.unwrap();
    // Nobody reads: the server stops pulling once the queue is full.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stalled = pulled.load(Ordering::SeqCst);
    assert!(stalled <= QUEUED_CHUNKS / 2 + 2, "pulled {stalled} chunks of 100 KiB with no reader progress");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pulled.load(Ordering::SeqCst), stalled, "still stalled");
    let total = tokio::task::spawn_blocking(move || {
        let mut total = 0;
        loop {
            match reader.blocking_next() {
                BodyEvent::Data(b) => {
                    assert!(b.len() <= CHUNK_BYTES);
                    total += b.len();
                }
                BodyEvent::End => break,
                BodyEvent::Aborted(why) => panic!("aborted: {why}"),
            }
        }
        reader.finish(Ok(()));
        total
    })
    .await
    .unwrap();
    assert_eq!(total, 200 * 100 * 1024);
    assert_eq!(request.await.unwrap(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_upload_while_one_is_active_is_409_and_then_accepted() {
    let (routes, guard, rx) = routes_with_catch();
    let token = guard.token().as_str().to_owned();
    let r2 = routes.clone();
    let t2 = token.clone();
    let first = tokio::spawn(async move { post(&r2, &t2, Body::from("first")).await });
    let mut reader = tokio::task::spawn_blocking(move || (rx.recv().unwrap(), rx)).await.unwrap();
    assert_eq!(post(&routes, &token, Body::from("second")).await, StatusCode::CONFLICT);
    let (r, rx) = reader;
    r.finish(Err("not media".into()));
    assert_eq!(first.await.unwrap(), StatusCode::BAD_REQUEST, "the endpoint's verdict reaches the client");
    // The route is free again.
    let r3 = routes.clone();
    let t3 = token.clone();
    let third = tokio::spawn(async move { post(&r3, &t3, Body::from("third")).await });
    reader = tokio::task::spawn_blocking(move || (rx.recv().unwrap(), rx)).await.unwrap();
    let (mut r, _rx) = reader;
    let r = tokio::task::spawn_blocking(move || {
        assert_eq!(r.blocking_next(), BodyEvent::Data(Bytes::from("third")));
        assert_eq!(r.blocking_next(), BodyEvent::End);
        r
    })
    .await
    .unwrap();
    r.finish(Ok(()));
    assert_eq!(third.await.unwrap(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_the_route_ends_an_upload_in_progress() {
    let (routes, guard, rx) = routes_with_catch();
    let token = guard.token().as_str().to_owned();
    let (body, _) = counted_body(10_000, 1024);
    let r2 = routes.clone();
    let request = tokio::spawn(async move { post(&r2, &token, body).await });
    let mut reader = tokio::task::spawn_blocking(move || rx.recv().unwrap()).await.unwrap();
    drop(guard);
    assert_eq!(request.await.unwrap(), StatusCode::NOT_FOUND);
    let last = tokio::task::spawn_blocking(move || {
        loop {
            match reader.blocking_next() {
                BodyEvent::Data(_) => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap();
    assert!(matches!(last, BodyEvent::Aborted(_)), "{last:?}");
}
