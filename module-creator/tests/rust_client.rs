//! Rust client generation over the fixture descriptors (core, elements,
//! filters and the plugins chroma, crowddetector, platedetector,
//! pointerdetector). That the built-in output compiles and talks to the
//! server is tested in `crates/kurento-client`; these pin the mapping rules.

use std::path::Path;

use module_creator::rust_client::{ClientPaths, generate_client};
use module_creator::{ModuleSet, load_modules};

fn fixture_set() -> ModuleSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kmd");
    ModuleSet::new(load_modules(&[dir]).expect("fixtures load")).expect("fixtures validate")
}

fn generated(module: &str) -> String {
    generate_client(&fixture_set(), module, &ClientPaths::default())
}

#[test]
fn every_module_generates_deterministically() {
    let set = fixture_set();
    for m in &set.modules {
        let a = generate_client(&set, &m.name, &ClientPaths::default());
        let b = generate_client(&set, &m.name, &ClientPaths::default());
        assert_eq!(a, b, "{} output is not deterministic", m.name);
        assert!(a.contains(&format!("pub mod {} {{", m.name)), "{}", m.name);
        for c in &m.remote_classes {
            assert!(a.contains(&format!("pub struct {} {{", c.name)), "{}.{} has no proxy", m.name, c.name);
            assert!(a.contains(&format!("impl __rt::RemoteClass for {} {{", c.name)));
        }
        for e in m.events.iter().filter(|e| e.name != "RaiseBase" && e.name != "Media") {
            assert!(a.contains(&format!("impl __rt::Event for {} {{", e.name)), "event {}", e.name);
        }
    }
}

#[test]
fn proxies_deref_to_their_parent_class() {
    let core = generated("core");
    assert!(core.contains("pub struct MediaObject {\n    remote: __rt::RemoteObject,\n}"));
    assert!(core.contains("impl ::std::ops::Deref for MediaElement {\n    type Target = MediaObject;"));
    let elements = generated("elements");
    assert!(elements.contains(
        "impl ::std::ops::Deref for WebRtcEndpoint {\n    type Target = ::kurento_client::core::BaseRtpEndpoint;"
    ));
    // Upcasts to every ancestor.
    assert!(elements.contains("impl ::std::convert::From<&WebRtcEndpoint> for ::kurento_client::core::MediaElement {"));
}

#[test]
fn wire_names_are_kept_for_operations_fields_and_values() {
    let core = generated("core");
    assert!(core.contains("remote.invoke(\"getSinkConnections\", params)"));
    assert!(core.contains("pub async fn get_encoder_bitrate(&self) -> __rt::Result<i32>"));
    assert!(core.contains("remote.invoke(\"getEncoderBitrate\""));
    assert!(core.contains("#[serde(rename = \"NOT_FLOWING\")]\n    NotFlowing,"));
    assert!(core.contains("m.serialize_entry(\"__module__\", \"kurento\")?;"));
    let elements = generated("elements");
    assert!(elements.contains("#[serde(rename = \"sdpMLineIndex\")]\n    pub sdp_m_line_index: i32,"));
    // Capitalised accessor names as on the wire (spec §5.5).
    assert!(elements.contains("remote.invoke(\"getICECandidatePairs\""));
    assert!(elements.contains("pub async fn get_external_ipv4(&self)"), "acronyms stay one word");
    assert!(elements.contains("remote.invoke(\"getExternalIPv4\""));
}

#[test]
fn optional_parameters_make_a_builder_and_required_ones_a_plain_method() {
    let core = generated("core");
    assert!(core.contains("pub fn connect<'a>(&'a self, sink: &'a MediaElement) -> MediaElementConnect<'a> {"));
    assert!(core.contains("impl<'a> ::std::future::IntoFuture for MediaElementConnect<'a> {"));
    assert!(core.contains("pub fn media_type(mut self, value: MediaType) -> Self {"));
    let core_sdp = core.contains("pub async fn process_offer(&self, offer: &str) -> __rt::Result<String> {");
    assert!(core_sdp, "required-only methods are plain async fns");
}

#[test]
fn parents_create_children_and_constructor_params_omit_the_parent() {
    let core = generated("core");
    assert!(core.contains("impl __rt::Creatable for PassThrough {\n    type Params = PassThroughParams;\n    type Parent = MediaPipeline;\n    const PARENT_PARAM: Option<&'static str> = Some(\"mediaPipeline\");"));
    assert!(
        core.contains("impl __rt::Creatable for HubPort {\n    type Params = HubPortParams;\n    type Parent = Hub;")
    );
    assert!(core.contains("impl __rt::Creatable for MediaPipeline {\n    type Params = MediaPipelineParams;\n    type Parent = __rt::NoParent;"));
    assert!(core.contains("pub async fn create<T: __rt::Creatable<Parent = MediaPipeline>>"));
    assert!(core.contains("pub async fn create<T: __rt::Creatable<Parent = Hub>>"));
    assert!(!core.contains("Creatable<Parent = MediaElement>"), "only parent classes get create");
    let elements = generated("elements");
    let player = elements.split("pub struct PlayerEndpointParams {").nth(1).unwrap().split("\n}\n").next().unwrap();
    assert!(!player.contains("media_pipeline"), "{player}");
    assert!(player.contains("pub uri: String,"));
    assert!(player.contains("pub network_cache: Option<i32>,"));
}

#[test]
fn events_are_only_subscribable_where_declared() {
    let core = generated("core");
    assert!(core.contains("impl __rt::Emits<events::ElementConnected> for PassThrough {}"));
    assert!(!core.contains("impl __rt::Emits<events::ElementConnected> for MediaPipeline {}"));
    let elements = generated("elements");
    assert!(elements.contains("impl __rt::Emits<events::IceCandidateFound> for WebRtcEndpoint {}"));
    // Inherited from core classes.
    assert!(
        elements.contains("impl __rt::Emits<::kurento_client::core::events::MediaStateChanged> for WebRtcEndpoint {}")
    );
}

#[test]
fn values_with_subtypes_are_polymorphic_and_objects_in_values_are_ids() {
    let core = generated("core");
    assert!(core.contains("BTreeMap<String, __rt::Polymorphic<Stats>>"));
    let ecd = core.split("pub struct ElementConnectionData {").nth(1).unwrap().split("\n}\n").next().unwrap();
    assert!(ecd.contains("pub source: __rt::ObjectId,"), "{ecd}");
    assert!(core.contains("pub async fn get_media_pipeline(&self) -> __rt::Result<Option<MediaPipeline>>"));
    assert!(core.contains("pub async fn get_children(&self) -> __rt::Result<Vec<MediaObject>>"));
}

#[test]
fn plugins_name_builtin_items_through_the_configured_paths() {
    let set = fixture_set();
    let mut paths = ClientPaths { runtime: "::my_rt".into(), ..Default::default() };
    paths.modules.insert("core".into(), "::my_core".into());
    paths.modules.insert("elements".into(), "::my_elements".into());
    paths.modules.insert("filters".into(), "::my_filters".into());
    for plugin in ["chroma", "crowddetector", "platedetector", "pointerdetector"] {
        let code = generate_client(&set, plugin, &paths);
        assert!(code.contains("use ::my_rt as __rt;"), "{plugin}");
        assert!(code.contains("type Parent = ::my_core::MediaPipeline;"), "{plugin}");
        assert!(
            code.contains("#[serde(crate = \"::my_rt::serde\")]") || !code.contains("serde::Deserialize"),
            "{plugin}"
        );
        assert!(!code.contains("::kurento_client::"), "{plugin} ignores the configured paths");
    }
}
