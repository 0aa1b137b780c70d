//! `MediaObject` (spec §10.1) for every object, from its [`ObjectBase`].

use crate::api::core::{MediaObject, Tag};
use crate::error::{Error, Result};
use crate::object::{ObjectId, RemoteObject};
use crate::rt::Ctx;

impl<T: RemoteObject> MediaObject for T {
    fn get_media_pipeline(&self, _ctx: &Ctx) -> Result<Option<ObjectId>> {
        Ok(self.object().pipeline().cloned())
    }

    fn get_parent(&self, _ctx: &Ctx) -> Result<Option<ObjectId>> {
        Ok(self.object().parent().cloned())
    }

    fn get_id(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.object().id().to_string())
    }

    fn get_children(&self, ctx: &Ctx) -> Result<Vec<ObjectId>> {
        Ok(ctx.registry().children(self.object().id()))
    }

    fn get_name(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.object().name())
    }

    fn set_name(&self, _ctx: &Ctx, value: String) -> Result<()> {
        self.object().set_name(value);
        Ok(())
    }

    fn get_send_tags_in_events(&self, _ctx: &Ctx) -> Result<bool> {
        Ok(self.object().send_tags_in_events())
    }

    fn set_send_tags_in_events(&self, _ctx: &Ctx, value: bool) -> Result<()> {
        self.object().set_send_tags_in_events(value);
        Ok(())
    }

    fn get_creation_time(&self, _ctx: &Ctx) -> Result<i32> {
        Ok(self.object().creation_time().clamp(0, i32::MAX as i64) as i32)
    }

    fn add_tag(&self, _ctx: &Ctx, key: String, value: String) -> Result<()> {
        self.object().add_tag(key, value)
    }

    fn remove_tag(&self, _ctx: &Ctx, key: String) -> Result<()> {
        self.object().remove_tag(&key);
        Ok(())
    }

    fn get_tag(&self, _ctx: &Ctx, key: String) -> Result<String> {
        self.object().tag(&key).ok_or(Error::TagKeyNotFound)
    }

    fn get_tags(&self, _ctx: &Ctx) -> Result<Vec<Tag>> {
        Ok(self.object().tags().into_iter().map(|(key, value)| Tag { key, value }).collect())
    }
}
