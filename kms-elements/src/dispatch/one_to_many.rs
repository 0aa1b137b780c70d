//! DispatcherOneToMany: `setSource(port)` sends that port's media to every
//! other port; `removeSource()` stops it (spec §10.10).

use std::sync::Arc;

use kms_core::api::core::HubPort;
use kms_core::error::Result;
use kms_core::hub::{HubCore, HubObject};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;

use super::router::Router;
use super::select::Selection;
use crate::api::elements::{DispatcherOneToMany, DispatcherOneToManyConstructor, DispatcherOneToManyFactory};

pub struct DispatcherOneToManyImpl {
    core: HubCore,
    router: Arc<Router>,
}

impl RemoteObject for DispatcherOneToManyImpl {
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

impl HubObject for DispatcherOneToManyImpl {
    fn hub_core(&self) -> &HubCore {
        &self.core
    }
}

impl DispatcherOneToMany for DispatcherOneToManyImpl {
    fn set_source(&self, _ctx: &Ctx, source: Arc<dyn HubPort>) -> Result<()> {
        let source = super::own_port(&self.core, &source, "source")?;
        self.router.update(self.core.bin(), |sel| *sel = Selection::Broadcast(Some(source)));
        Ok(())
    }

    fn remove_source(&self, _ctx: &Ctx) -> Result<()> {
        self.router.update(self.core.bin(), |sel| *sel = Selection::Broadcast(None));
        Ok(())
    }
}

impl DispatcherOneToManyFactory for DispatcherOneToManyImpl {
    fn construct(ctx: &Ctx, params: DispatcherOneToManyConstructor) -> Result<Arc<Self>> {
        let (core, router) = super::new_hub(ctx, &params.media_pipeline, Selection::broadcast())?;
        Ok(Arc::new(DispatcherOneToManyImpl { core, router }))
    }
}
