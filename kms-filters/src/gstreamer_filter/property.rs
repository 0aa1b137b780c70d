//! `setElementProperty(name, value)`: the string is converted to the
//! property's type (spec §10.11: int, float, double, enum by nick,
//! string; booleans too), other types are 40006.

use gst::glib;
use gst::prelude::*;

/// Why a property could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    /// 40001
    #[error("No property named '{property}' in object '{object}'")]
    NoSuchProperty { property: String, object: String },
    /// 40001
    #[error("Cannot convert '{value}' to {type_name} for property '{property}'")]
    Convert { value: String, type_name: String, property: String },
    /// 40001
    #[error("Property '{property}' is not writable")]
    NotWritable { property: String },
    /// 40006
    #[error("Property '{property}' has type {type_name}, which setElementProperty cannot set")]
    UnsupportedType { property: String, type_name: String },
}

impl From<PropertyError> for kms_core::Error {
    fn from(e: PropertyError) -> Self {
        match e {
            PropertyError::UnsupportedType { .. } => kms_core::Error::NotImplemented(e.to_string()),
            _ => kms_core::Error::Marshall(e.to_string()),
        }
    }
}

/// The value `text` stands for, as the type of `element`'s `property`.
pub fn convert(element: &gst::Element, property: &str, text: &str) -> Result<glib::Value, PropertyError> {
    let pspec = element.find_property(property).ok_or_else(|| PropertyError::NoSuchProperty {
        property: property.to_string(),
        object: element.name().to_string(),
    })?;
    if !pspec.flags().contains(glib::ParamFlags::WRITABLE) {
        return Err(PropertyError::NotWritable { property: property.to_string() });
    }
    let ty = pspec.value_type();
    let bad = || PropertyError::Convert {
        value: text.to_string(),
        type_name: ty.name().to_string(),
        property: property.to_string(),
    };
    let t = text.trim();
    let value = if ty == String::static_type() {
        text.to_value()
    } else if ty == i32::static_type() {
        t.parse::<i32>().map_err(|_| bad())?.to_value()
    } else if ty == u32::static_type() {
        t.parse::<u32>().map_err(|_| bad())?.to_value()
    } else if ty == i64::static_type() {
        t.parse::<i64>().map_err(|_| bad())?.to_value()
    } else if ty == u64::static_type() {
        t.parse::<u64>().map_err(|_| bad())?.to_value()
    } else if ty == f32::static_type() {
        t.parse::<f32>().map_err(|_| bad())?.to_value()
    } else if ty == f64::static_type() {
        t.parse::<f64>().map_err(|_| bad())?.to_value()
    } else if ty == bool::static_type() {
        match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true.to_value(),
            "false" | "0" | "no" => false.to_value(),
            _ => return Err(bad()),
        }
    } else if ty.is_a(glib::Type::ENUM) {
        let class = glib::EnumClass::with_type(ty).ok_or_else(bad)?;
        // spec: by nick; the value's name and number are accepted too.
        let v = class
            .value_by_nick(t)
            .or_else(|| class.value_by_name(t))
            .or_else(|| t.parse::<i32>().ok().and_then(|n| class.value(n)))
            .ok_or_else(bad)?;
        v.to_value(&class)
    } else {
        return Err(PropertyError::UnsupportedType {
            property: property.to_string(),
            type_name: ty.name().to_string(),
        });
    };
    if !pspec_accepts(&pspec, &value) {
        return Err(bad());
    }
    Ok(value)
}

/// Range checks of numeric properties (GLib would only warn and ignore).
fn pspec_accepts(pspec: &glib::ParamSpec, value: &glib::Value) -> bool {
    macro_rules! range {
        ($spec:ty, $t:ty) => {
            if let Some(s) = pspec.downcast_ref::<$spec>() {
                let Ok(v) = value.get::<$t>() else { return false };
                return v >= s.minimum() && v <= s.maximum();
            }
        };
    }
    range!(glib::ParamSpecInt, i32);
    range!(glib::ParamSpecUInt, u32);
    range!(glib::ParamSpecInt64, i64);
    range!(glib::ParamSpecUInt64, u64);
    range!(glib::ParamSpecFloat, f32);
    range!(glib::ParamSpecDouble, f64);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(f: &str) -> gst::Element {
        gst::init().unwrap();
        gst::ElementFactory::make(f).name("e").build().unwrap()
    }

    #[test]
    fn converts_numbers_enums_booleans_and_strings() {
        let v = el("volume");
        assert_eq!(convert(&v, "volume", "0.5").unwrap().get::<f64>().unwrap(), 0.5);
        assert!(convert(&v, "mute", "true").unwrap().get::<bool>().unwrap());
        let f = el("videoflip");
        let dir = convert(&f, "video-direction", "horiz").unwrap();
        f.set_property_from_value("video-direction", &dir);
        assert_eq!(f.property_value("video-direction").serialize().unwrap(), "horiz");
        let q = el("queue");
        assert_eq!(convert(&q, "max-size-buffers", "7").unwrap().get::<u32>().unwrap(), 7);
        let q2 = el("queue2");
        assert_eq!(convert(&q2, "temp-template", "x").unwrap().get::<String>().unwrap(), "x");
    }

    #[test]
    fn refuses_unknown_properties_bad_values_and_other_types() {
        let v = el("volume");
        assert_eq!(convert(&v, "nope", "1").unwrap_err().to_string(), "No property named 'nope' in object 'e'");
        assert!(matches!(convert(&v, "volume", "loud"), Err(PropertyError::Convert { .. })));
        assert!(matches!(convert(&v, "volume", "1000"), Err(PropertyError::Convert { .. })), "out of range");
        let f = el("videoflip");
        assert!(matches!(convert(&f, "video-direction", "sideways"), Err(PropertyError::Convert { .. })));
        let c = el("capsfilter");
        let e: kms_core::Error = convert(&c, "caps", "video/x-raw").unwrap_err().into();
        assert_eq!(e.code(), 40006);
    }
}
