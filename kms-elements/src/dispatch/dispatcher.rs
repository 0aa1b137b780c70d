//! Dispatcher: `connect(source, sink)` routes every media type of one port
//! to another (spec §10.10).

use std::sync::Arc;

use kms_core::api::core::HubPort;
use kms_core::error::Result;
use kms_core::hub::{HubCore, HubObject};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;

use super::router::Router;
use super::select::Selection;
use crate::api::elements::{Dispatcher, DispatcherConstructor, DispatcherFactory};

pub struct DispatcherImpl {
    core: HubCore,
    router: Arc<Router>,
}

impl RemoteObject for DispatcherImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn hub(&self) -> Option<&HubCore> {
        Some(&self.core)
    }

    fn release(&self) {
        self.core.release();
    }
}

impl HubObject for DispatcherImpl {
    fn hub_core(&self) -> &HubCore {
        &self.core
    }
}

impl Dispatcher for DispatcherImpl {
    fn connect(&self, _ctx: &Ctx, source: Arc<dyn HubPort>, sink: Arc<dyn HubPort>) -> Result<()> {
        let source = super::own_port(&self.core, &source, "source")?;
        let sink = super::own_port(&self.core, &sink, "sink")?;
        self.router.update(self.core.bin(), |sel| {
            if let Selection::Routes(m) = sel {
                m.insert(sink, source);
            }
        });
        Ok(())
    }
}

impl DispatcherFactory for DispatcherImpl {
    fn construct(ctx: &Ctx, params: DispatcherConstructor) -> Result<Arc<Self>> {
        let (core, router) = super::new_hub(ctx, &params.media_pipeline, Selection::routes())?;
        Ok(Arc::new(DispatcherImpl { core, router }))
    }
}
