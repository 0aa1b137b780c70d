//! The generated Rust client against the real server binary: typed
//! creation, methods, properties, events, error mapping, release and
//! reconnection (spec §3.3).

mod support;

use std::time::Duration;

use kurento_client::events::{ElementConnected, ObjectCreated, ObjectDestroyed};
use kurento_client::prelude::*;
use kurento_client::{
    Client, ConnectionEvent, Error, MediaObject, MediaPipeline, MediaPipelineParams, MediaType, Operation, PassThrough,
    PassThroughParams, ServerType,
};
use serde_json::{Map, json};
use support::{Server, within};

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("KMS_TEST_LOG"))
        .with_test_writer()
        .try_init();
}

async fn connect(server: &Server) -> Client {
    init_tracing();
    Client::builder(server.url())
        .request_timeout(Duration::from_secs(10))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .connect()
        .await
        .expect("client connects")
}

async fn pipeline_with_two(client: &Client) -> (MediaPipeline, PassThrough, PassThrough) {
    let pipeline = client.create::<MediaPipeline>(MediaPipelineParams::new()).await.expect("create pipeline");
    let a = pipeline.create::<PassThrough>(PassThroughParams::new()).await.expect("create source");
    let b = pipeline.create::<PassThrough>(PassThroughParams::new()).await.expect("create sink");
    (pipeline, a, b)
}

fn server_code(e: &Error) -> (i64, Option<String>) {
    let s = e.server().unwrap_or_else(|| panic!("expected a server error, got {e:?}"));
    (s.code, s.error_type.clone())
}

#[tokio::test]
async fn connect_raises_a_typed_element_connected_on_the_source() {
    let server = Server::start();
    let client = connect(&server).await;
    let (pipeline, source, sink) = pipeline_with_two(&client).await;
    assert!(source.id().as_str().starts_with(pipeline.id().as_str()), "child ids start with the pipeline's");
    assert!(source.id().as_str().ends_with("_kurento.PassThrough"));

    let mut connected = source.on::<ElementConnected>().await.expect("subscribe");
    assert!(!connected.subscription_id().is_empty());
    source.connect(&sink).media_type(MediaType::Video).await.expect("connect");

    let ev = within(5, "ElementConnected", connected.next()).await.expect("stream open");
    assert_eq!(ev.source, *source.id());
    assert_eq!(ev.sink, *sink.id());
    assert_eq!(ev.media_type, MediaType::Video);
    assert_eq!(ev.r#type, "ElementConnected");
    assert!(ev.timestamp_millis.parse::<u64>().is_ok_and(|t| t > 1_600_000_000_000), "{}", ev.timestamp_millis);
    assert!(ev.tags.is_empty());
    // Only VIDEO was connected: one event per connected media type.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), connected.next()).await.is_err(),
        "no second ElementConnected for a VIDEO-only connect"
    );

    // A complex type holding object ids comes back typed.
    let links = source.get_sink_connections().media_type(MediaType::Video).await.expect("getSinkConnections");
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!((&links[0].source, &links[0].sink, links[0].r#type), (source.id(), sink.id(), MediaType::Video));

    pipeline.release().await.expect("release");
}

#[tokio::test]
async fn server_manager_info_lists_the_builtin_modules() {
    let server = Server::start();
    let client = connect(&server).await;
    let info = client.server_manager().get_info().await.expect("getInfo");
    let names: Vec<&str> = info.modules.iter().map(|m| m.name.as_str()).collect();
    for m in ["core", "elements", "filters"] {
        assert!(names.contains(&m), "module {m} missing from {names:?}");
    }
    assert_eq!(info.r#type, ServerType::Kms);
    assert!(info.capabilities.iter().any(|c| c == "transactions"), "{:?}", info.capabilities);
    let core = info.modules.iter().find(|m| m.name == "core").unwrap();
    assert!(core.factories.iter().any(|f| f == "PassThrough"), "{:?}", core.factories);
    assert!(client.server_manager().get_cpu_count().await.expect("getCpuCount") >= 1);
}

#[tokio::test]
async fn server_errors_keep_code_and_type() {
    let server = Server::start();
    let client = connect(&server).await;
    let pipeline = client.create::<MediaPipeline>(MediaPipelineParams::new()).await.unwrap();
    pipeline.release().await.unwrap();

    let err = pipeline.get_name().await.expect_err("invoke on a released object");
    assert_eq!(server_code(&err), (40101, Some("MEDIA_OBJECT_NOT_FOUND".into())));
    assert_eq!(err.code(), Some(40101));

    // Releasing again is not an error (spec §4.4).
    pipeline.release().await.expect("second release");

    // The typed API cannot subscribe to undeclared events; the raw one can.
    let live = client.create::<MediaPipeline>(MediaPipelineParams::new()).await.unwrap();
    let err = live.subscribe_raw("NoSuchEvent").await.expect_err("undeclared event");
    assert_eq!(server_code(&err), (40106, Some("MEDIA_OBJECT_EVENT_NOT_SUPPORTED".into())));

    let err = live.invoke("noSuchOperation", Map::new()).await.expect_err("unknown operation");
    assert_eq!(err.code(), Some(40008));
    live.release().await.unwrap();
}

#[tokio::test]
async fn properties_and_object_results_are_typed() {
    let server = Server::start();
    let client = connect(&server).await;
    let (pipeline, source, _sink) = pipeline_with_two(&client).await;

    assert_eq!(pipeline.get_name().await.unwrap(), pipeline.id().as_str(), "name defaults to the id");
    pipeline.set_name("room-1").await.unwrap();
    assert_eq!(pipeline.get_name().await.unwrap(), "room-1");

    let parent_pipeline = source.get_media_pipeline().await.unwrap().expect("element has a pipeline");
    assert_eq!(parent_pipeline, pipeline);
    assert_eq!(pipeline.get_parent().await.unwrap(), None, "a pipeline has no parent");

    let children: Vec<MediaObject> = pipeline.get_children().await.unwrap();
    assert_eq!(children.len(), 2);
    let child = children.iter().find(|c| c.id() == source.id()).expect("source is a child");
    let as_pass: PassThrough = child.cast::<PassThrough>().await.expect("child is a PassThrough");
    assert_eq!(as_pass, source);
    let err = child.cast::<MediaPipeline>().await.expect_err("a PassThrough is no MediaPipeline");
    assert!(matches!(err, Error::WrongType { .. }), "{err:?}");

    let pipelines = client.server_manager().get_pipelines().await.unwrap();
    assert!(pipelines.contains(&pipeline));
    pipeline.release().await.unwrap();
}

#[tokio::test]
async fn release_cascades_to_children_and_ends_their_streams() {
    let server = Server::start();
    let client = connect(&server).await;
    let manager = client.server_manager();
    let mut destroyed = manager.on::<ObjectDestroyed>().await.unwrap();
    let mut created = manager.on::<ObjectCreated>().await.unwrap();

    let (pipeline, source, sink) = pipeline_with_two(&client).await;
    let ev = within(5, "ObjectCreated", created.next()).await.unwrap();
    assert_eq!(ev.object, *pipeline.id());
    assert_eq!(ev.source, "manager_ServerManager");

    let mut connected = source.on::<ElementConnected>().await.unwrap();
    pipeline.release().await.unwrap();

    assert!(within(2, "stream end", connected.next()).await.is_none(), "streams of released children end");
    let err = source.get_name().await.expect_err("child released with its pipeline");
    assert_eq!(err.code(), Some(40101));

    let mut gone = vec![];
    while gone.len() < 3 {
        gone.push(within(5, "ObjectDestroyed", destroyed.next()).await.unwrap().object_id);
    }
    for o in [&pipeline.id(), &source.id(), &sink.id()] {
        assert!(gone.iter().any(|g| g == o.as_str()), "{o} not destroyed: {gone:?}");
    }
}

#[tokio::test]
async fn release_on_drop_releases_the_object() {
    let server = Server::start();
    let client = connect(&server).await;
    let guard = client.create::<MediaPipeline>(MediaPipelineParams::new()).await.unwrap().release_on_drop();
    let pipeline: MediaPipeline = (*guard).clone();
    pipeline.get_name().await.expect("alive while guarded");
    drop(guard);
    within(5, "release on drop", async {
        loop {
            match pipeline.get_name().await {
                Err(e) if e.code() == Some(40101) => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;

    let kept = client.create::<MediaPipeline>(MediaPipelineParams::new()).await.unwrap().release_on_drop();
    let kept = kept.into_inner();
    tokio::time::sleep(Duration::from_millis(200)).await;
    kept.get_name().await.expect("disarmed guard keeps the object");
    kept.release().await.unwrap();
}

#[tokio::test]
async fn transaction_resolves_newrefs() {
    let server = Server::start();
    let client = connect(&server).await;
    let ctor = |v: serde_json::Value| v.as_object().cloned().unwrap();
    let results = client
        .transaction(vec![
            Operation::create("MediaPipeline", Map::new()),
            Operation::create("PassThrough", ctor(json!({"mediaPipeline": "newref:0"}))),
            Operation::invoke("newref:1", "getName", Map::new()),
        ])
        .await
        .expect("transaction");
    assert_eq!(results.len(), 3, "{results:?}");
    let pipeline_id = results[0].as_ref().unwrap().as_str().unwrap().to_string();
    let pass_id = results[1].as_ref().unwrap().as_str().unwrap();
    assert!(pass_id.starts_with(&pipeline_id));
    assert_eq!(results[2].as_ref().unwrap(), pass_id);
    client.object::<MediaPipeline>(pipeline_id.as_str()).release().await.unwrap();
}

#[tokio::test]
async fn session_and_subscriptions_survive_a_dropped_socket() {
    let server = Server::start();
    let client = connect(&server).await;
    let session = client.session_id().expect("session after connect");
    let (pipeline, source, sink) = pipeline_with_two(&client).await;
    let mut connected = source.on::<ElementConnected>().await.unwrap();
    let mut status = client.connection_events();

    client.reconnect();
    // Sent while the socket is down: queued, then written after `connect`.
    let name = within(10, "request across reconnection", pipeline.get_name()).await.expect("replayed");
    assert_eq!(name, pipeline.id().as_str());

    let mut seen = vec![];
    loop {
        let e = within(5, "Reconnected", status.recv()).await.unwrap();
        seen.push(e.clone());
        if matches!(e, ConnectionEvent::Reconnected { .. }) {
            break;
        }
    }
    assert!(matches!(seen[0], ConnectionEvent::Disconnected { .. }), "{seen:?}");
    assert_eq!(seen.last(), Some(&ConnectionEvent::Reconnected { session_id: session.clone() }));
    assert_eq!(client.session_id().as_deref(), Some(session.as_str()), "same session");

    // The server-side subscription survived and events reach the old stream.
    source.connect(&sink).media_type(MediaType::Audio).await.unwrap();
    let ev = within(5, "ElementConnected after reconnect", connected.next()).await.unwrap();
    assert_eq!((ev.sink, ev.media_type), (sink.id().clone(), MediaType::Audio));

    // A second client can resume the same session (e.g. after a restart of
    // the application) and sees its objects.
    let other = Client::builder(server.url()).session_id(session.clone()).connect().await.expect("resume");
    assert_eq!(other.session_id().as_deref(), Some(session.as_str()));
    let same = other.object::<MediaPipeline>(pipeline.id().as_str());
    assert_eq!(same.get_name().await.unwrap(), pipeline.id().as_str());
    let err = Client::builder(server.url()).session_id("not-a-session").connect().await.expect_err("unknown");
    assert_eq!(server_code(&err), (40007, Some("INVALID_SESSION".into())));
    pipeline.release().await.unwrap();
}

#[tokio::test]
async fn a_restarted_server_is_reported_as_new() {
    let mut server = Server::start();
    let port = server.port;
    let client = connect(&server).await;
    let old_session = client.session_id().unwrap();
    let old_server = client.server_id();
    let (_pipeline, source, _sink) = pipeline_with_two(&client).await;
    let mut connected = source.on::<ElementConnected>().await.unwrap();
    let mut status = client.connection_events();

    server.kill();
    let server = Server::start_on(port);
    let (session_id, server_id) = loop {
        match within(20, "NewServer", status.recv()).await.unwrap() {
            ConnectionEvent::NewServer { session_id, server_id } => break (session_id, server_id),
            ConnectionEvent::Closed => panic!("client gave up:\n{}", server.log()),
            _ => {}
        }
    };
    assert_ne!(session_id, old_session);
    assert_ne!(server_id, old_server, "a new process has a new serverId");
    assert_eq!(client.session_id(), Some(session_id));
    assert!(within(2, "stream end", connected.next()).await.is_none(), "old subscriptions end");
    // The client is usable in the new session.
    let p = client.create::<MediaPipeline>(MediaPipelineParams::new()).await.expect("create after restart");
    p.release().await.unwrap();
}

#[tokio::test]
async fn close_fails_later_requests() {
    let server = Server::start();
    let client = connect(&server).await;
    client.ping().await.expect("ping");
    let mut status = client.connection_events();
    client.close();
    assert_eq!(within(5, "Closed", status.recv()).await.unwrap(), ConnectionEvent::Closed);
    assert!(matches!(client.ping().await, Err(Error::Closed)));
}
