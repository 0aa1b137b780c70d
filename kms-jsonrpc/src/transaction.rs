//! The `transaction` method (spec §5.9): several requests executed in
//! order inside one message, with `newref:<k>` substitution.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::backend::MediaBackend;
use crate::call::{Call, Outcome, SESSION_ID, Started};
use crate::codec;
use crate::error::RpcError;
use crate::tenant::Caller;

const NEW_REF: &str = "newref:";

/// Up-front checks, before anything executes: the operation count (a
/// resource limit), `id == index` for every operation and no nesting.
/// Upstream checks ids lazily; failing before the first side effect is
/// the same error with fewer surprises.
pub(crate) fn validate(operations: &[Value], max_operations: usize) -> Result<(), RpcError> {
    if operations.len() > max_operations {
        return Err(RpcError::malformed_transaction(format!(
            "Transaction has {} operations, more than the limit of {max_operations}",
            operations.len()
        )));
    }
    for (i, op) in operations.iter().enumerate() {
        let id_ok = matches!(op.get("id"), Some(Value::Number(n))
            if n.as_u64() == Some(i as u64) || n.as_f64() == Some(i as f64));
        if !id_ok {
            return Err(RpcError::malformed_transaction(format!("Id of request '{i}' should be '{i}'")));
        }
        if op.get("method").and_then(Value::as_str) == Some("transaction") {
            return Err(RpcError::malformed_transaction(format!(
                "Nested transactions are not allowed (request '{i}')"
            )));
        }
    }
    Ok(())
}

/// Executes validated operations in `session`, stopping at the first
/// failing one. Errors in `newref` substitution fail the whole transaction
/// (as upstream); the operations already executed keep their effects.
pub(crate) fn execute(
    operations: Vec<Value>,
    caller: &dyn Caller,
    backend: &dyn MediaBackend,
    server_id: &str,
    max_wait: Duration,
) -> Outcome {
    let session = caller.session();
    let mut waits = WaitBudget { left: max_wait, max: max_wait };
    let mut responses: Vec<Value> = Vec::with_capacity(operations.len());
    let mut forget_session = false;
    for (i, op) in operations.into_iter().enumerate() {
        let Value::Object(mut op) = op else {
            // `validate` guarantees objects (they have an id).
            return Outcome::of(Err(RpcError::malformed_transaction(format!("Id of request '{i}' should be '{i}'"))));
        };
        let mut params = match op.remove("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                let e = Err(RpcError::params_not_object());
                responses.push(codec::response_value(json!(i), &e));
                break;
            }
        };
        for v in params.values_mut() {
            if let Err(e) = inject_refs(v, &responses) {
                return Outcome::of(Err(e));
            }
        }
        // §5.9: the transaction's sessionId is forced into each operation.
        params.insert(SESSION_ID.to_owned(), Value::String(session.as_str().to_owned()));
        op.insert("params".to_owned(), Value::Object(params));
        let result = match codec::decode_value(op) {
            Err(e) => Err(e),
            Ok(req) => {
                let params = match req.params {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                let outcome = execute_one(&req.method, params, caller, backend, server_id, &mut waits);
                forget_session |= outcome.forget_session;
                outcome.result
            }
        };
        let failed = result.is_err();
        responses.push(codec::response_value(json!(i), &result));
        if failed {
            break;
        }
    }
    Outcome { result: Ok(json!({ SESSION_ID: session.as_str(), "value": responses })), forget_session }
}

/// What is left of a transaction's `maxTransactionWaitMs`.
struct WaitBudget {
    left: Duration,
    max: Duration,
}

/// One operation. Its session is the transaction's, which exists, so the
/// session-only methods are answered here. Deferred waits (`getUsedCpu`)
/// happen on this (blocking) thread, within the transaction's budget.
fn execute_one(
    method: &str,
    mut params: Map<String, Value>,
    caller: &dyn Caller,
    backend: &dyn MediaBackend,
    server_id: &str,
    waits: &mut WaitBudget,
) -> Outcome {
    let sid = caller.session().as_str();
    match method {
        "ping" => Outcome::of(Ok(json!({ "value": "pong", SESSION_ID: sid }))),
        "connect" => Outcome::of(Ok(json!({ SESSION_ID: sid, "serverId": server_id }))),
        "keepAlive" => Outcome::of(Ok(json!({ SESSION_ID: sid }))),
        "transaction" => Outcome::of(Err(RpcError::malformed_transaction("Nested transactions are not allowed"))),
        m if Call::is_backend_method(m) => match Call::parse(m, &mut params) {
            Ok(call) => match call.start(caller, backend, server_id) {
                Started::Done(outcome) => outcome,
                Started::Later(later) => match waits.left.checked_sub(later.wait()) {
                    Some(left) => {
                        waits.left = left;
                        later.finish_here()
                    }
                    None => Outcome::of(Err(RpcError::not_enough_resources(format!(
                        "Operations of one transaction may wait {} ms in total (maxTransactionWaitMs)",
                        waits.max.as_millis()
                    )))),
                },
            },
            Err(e) => Outcome::of(Err(e)),
        },
        _ => Outcome::of(Err(RpcError::method_not_found())),
    }
}

/// Replaces every string `newref:<k>` (anywhere in `v`) by `result.value`
/// of operation `k` (§5.9).
fn inject_refs(v: &mut Value, responses: &[Value]) -> Result<(), RpcError> {
    match v {
        Value::Object(m) => m.values_mut().try_for_each(|x| inject_refs(x, responses)),
        Value::Array(a) => a.iter_mut().try_for_each(|x| inject_refs(x, responses)),
        Value::String(s) => {
            let Some(index) = s.strip_prefix(NEW_REF).filter(|r| !r.is_empty()) else {
                return Ok(());
            };
            let k: usize = index
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| index.parse().ok())
                .flatten()
                .ok_or_else(|| RpcError::malformed_transaction(format!("Invalid index of newref '{index}'")))?;
            let value = responses
                .get(k)
                .and_then(|r| r.get("result"))
                .map(|r| r.get("value").cloned().unwrap_or(Value::Null))
                .ok_or_else(|| RpcError::malformed_transaction(format!("Result not found on request {k}")))?;
            *v = value;
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::codes;

    #[test]
    fn validate_rejects_id_mismatch_nesting_and_too_many_ops() {
        let ok = vec![json!({"id":0,"method":"x"}), json!({"id":1.0,"method":"y"})];
        validate(&ok, 10).unwrap();
        let e = validate(&[json!({"id":0}), json!({"id":"1"})], 10).unwrap_err();
        assert_eq!(e.code, codes::MALFORMED_TRANSACTION);
        assert_eq!(e.message, "Id of request '1' should be '1'");
        let e = validate(&[json!(5)], 10).unwrap_err();
        assert_eq!(e.message, "Id of request '0' should be '0'");
        let e = validate(&[json!({"id":0,"method":"transaction"})], 10).unwrap_err();
        assert_eq!(e.code, codes::MALFORMED_TRANSACTION);
        let e = validate(&vec![json!({"id":0}); 11], 10).unwrap_err();
        assert_eq!(e.code, codes::MALFORMED_TRANSACTION);
        assert!(e.message.contains("limit of 10"), "{}", e.message);
    }

    #[test]
    fn newref_substitution_anywhere() {
        let responses = vec![
            json!({"jsonrpc":"2.0","id":0,"result":{"value":"P","sessionId":"s"}}),
            json!({"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}),
        ];
        let mut v = json!({"a":"newref:0","b":[{"c":"newref:0"}],"d":"newref:","e":"xnewref:0"});
        inject_refs(&mut v, &responses).unwrap();
        assert_eq!(v, json!({"a":"P","b":[{"c":"P"}],"d":"newref:","e":"xnewref:0"}));
        let e = inject_refs(&mut json!("newref:1"), &responses).unwrap_err();
        assert_eq!(e.message, "Result not found on request 1");
        let e = inject_refs(&mut json!(["newref:7"]), &responses).unwrap_err();
        assert_eq!(e.message, "Result not found on request 7");
        let e = inject_refs(&mut json!({"x":"newref:abc"}), &responses).unwrap_err();
        assert_eq!(e.message, "Invalid index of newref 'abc'");
        assert_eq!(e.code, codes::MALFORMED_TRANSACTION);
    }
}
