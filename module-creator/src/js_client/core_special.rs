//! Hand-written JavaScript that only the `core` module's client carries:
//! the object model the official `kurento-client` runtime expects from
//! `MediaObject` (id resolution, event subscription, `_invoke`, `release`,
//! thenable), `MediaPipeline` (object creation and transactions),
//! `MediaElement.connect` (chained connects) and `Hub.createHubPort`.
//!
//! The code must stay behaviourally identical to the official
//! `kurento-client-core` 7.3.0 package; `tests/js-modules` compares the two
//! token by token.

/// Constructor body of `MediaObject`, after the `super_` call.
pub const MEDIA_OBJECT_CTOR: &str = r#"

  var self = this;


  // The server-assigned id arrives as an '_id' event after 'create'.
  this.once('_id', function(error, id)
  {
    if(error)
      return Object.defineProperties(this,
      {
        '_createError': {value: error},
        'id': {value: null, enumerable: true}
      });

    Object.defineProperty(this, 'id',
    {
      configurable: true,
      enumerable: true,
      value: id
    });
  })

  // Adding the first listener of an event subscribes on the server; removing
  // the last one unsubscribes (spec §7).
  var subscriptions = {};

  this.on('removeListener', function(event, listener)
  {
    // Internal events are never subscribed
    if(event[0] == '_'
    || event == 'release'
    || event == 'newListener')
      return;

    var count = EventEmitter.listenerCount(this, event);
    if(count) return;

    if (!subscriptions.hasOwnProperty(event)) return;
    var token = subscriptions[event];

    var params =
    {
      object: this,
      subscription: token.value,
      sessionId: token.sessionId
    };

    this.emit('_rpc', undefined, 'unsubscribe', params, function(error)
    {
      if(error) return self.emit('error', error);

      delete subscriptions[event];
    });
  });

  this.on('newListener', function(event, listener)
  {
    // Internal events are never subscribed
    if(event[0] == '_'
    || event == 'release')
      return;

    var constructor = this.constructor;

    if(constructor.events.indexOf(event) < 0)
      throw new SyntaxError(constructor.name+" doesn't accept events of type '"+event+"'")

    var count = EventEmitter.listenerCount(this, event);
    if(count) return;

    var params =
    {
      object: this,
      type: event
    };

    this.emit('_rpc', undefined, 'subscribe', params, function(error, token)
    {
      if(error) return self.emit('error', error);

      subscriptions[event] = token;
    });
  });
"#;

/// Prototype members of `MediaObject` beyond the descriptor: `_invoke`,
/// `release` and the thenable interface. Expects `transaction` handling
/// identical to generated methods.
pub const MEDIA_OBJECT_PROTOTYPE: &str = r#"
function throwRpcNotReady()
{
  throw new SyntaxError('RPC result is not ready, use .then() method instead');
};

// Every generated method ends up here: one 'invoke' request.
Object.defineProperty(MediaObject.prototype, '_invoke',
{
  enumerable: true,
  value: function(transaction, method, params, callback){
    var self = this;

    // params may be omitted
    if(params instanceof Function)
    {
      if(callback)
        throw new SyntaxError("Nothing can be defined after the callback");

      callback = params;
      params = undefined;
    };

    var promise;
    var error = this._createError;
    if(error)
      promise = Promise.reject(error)
    else
    {
      promise = new Promise(function(resolve, reject)
      {
        var params2 =
        {
          object: self,
          operation: method
        };

        if(params)
          params2.operationParams = params;

        function callback(error, result)
        {
          if(error) return reject(error);

          var value = result.value;
          if(value === undefined)
            value = self

          resolve(value);
        }

        self.emit('_rpc', transaction, 'invoke', params2, callback);
      });
    }

    return promiseCallback(promise, callback, this)
  }
})

// Releases the object (and, on the server, its children).
MediaObject.prototype.release = function(callback){
  var transaction = (arguments[0] instanceof Transaction)
                  ? Array.prototype.shift.apply(arguments)
                  : undefined;

  var usePromise = false;

  if (callback == undefined) {
    usePromise = true;
  }

  if(!arguments.length) callback = undefined;

  callback = (callback || noop).bind(this)

  var self = this;

  var promise;
  var error = this._createError;
  if(error)
    promise = Promise.reject(error)
  else
    promise = new Promise(function(resolve, reject)
    {
      var params =
      {
        object: self
      };

      function callback(error)
      {
        if(error) return reject(error);

        // Released on the server: drop every user listener
        Object.keys(self._events).forEach(function(event)
        {
          if(event[0] == '_'
          || event == 'newListener'
          || event == 'removeListener'
          || event == 'release')
            return;

          self.removeAllListeners(event);
        })
        self.emit('release');

        resolve();
      }

      self.emit('_rpc', transaction, 'release', params, callback);
    });

  return disguise(promiseCallback(promise, callback), this)
};


// Thenable: resolves once the server has assigned the id.
MediaObject.prototype.then = function(onFulfilled, onRejected){
  if(this.id != null)
    var promise = Promise.resolve(disguise.unthenable(this))
  else if(this.id === null)
    var promise = Promise.reject()
  else {
    var self = this

    var promise = new Promise(function(resolve, reject) {
      return self.once('_id', function(error, id) {
        if(error) return reject(error);

        resolve(disguise.unthenable(self));
      })
    })
  }

  promise = promise.then(onFulfilled ? onFulfilled.bind(this) :
function(result){return Promise.resolve(result)},
                         onRejected  ? onRejected .bind(this) :
function(error) {return Promise.reject(error)});

  return disguise(promise, this);
}

MediaObject.prototype.catch = function(onRejected)
{
  this.then(null, onRejected);
}

Object.defineProperty(MediaObject.prototype, 'commited',
{
  get: function(){return this.id !== undefined;}
});
"#;

/// Extra `require`s of `MediaPipeline`, before its parent's.
pub const MEDIA_PIPELINE_REQUIRES: &str = r#"var MediaObjectCreator  = kurentoClient.MediaObjectCreator;
var TransactionsManager = kurentoClient.TransactionsManager;

var transactionOperation = TransactionsManager.transactionOperation;
"#;

/// Constructor body of `MediaPipeline(strict)`, after the `super_` call:
/// transactions and `create` for the objects of this pipeline.
pub const MEDIA_PIPELINE_CTOR: &str = r#"

  var self = this;


  // Transactional API

  var transactionsManager = new TransactionsManager(this, encodeTransaction);

  this.beginTransaction = transactionsManager.beginTransaction.bind(transactionsManager);
  this.endTransaction   = transactionsManager.endTransaction.bind(transactionsManager);
  this.transaction      = transactionsManager.transaction.bind(transactionsManager);


  // Requests go into the open transaction, if any

  function encodeCreate(transaction, params, callback)
  {
    if(transaction)
      return transactionOperation.call(transaction, 'create', params, callback);

    if(transactionsManager.length)
      return transactionOperation.call(transactionsManager, 'create', params, callback);

    self.emit('_create', undefined, params, callback)
  }

  function encodeRpc(transaction, method, params, callback)
  {
    if(transaction)
      return transactionOperation.call(transaction, method, params, callback);

    if(transactionsManager.length)
      return transactionOperation.call(transactionsManager, method, params, callback);

    self.emit('_rpc', undefined, method, params, callback)
  }

  function encodeTransaction(operations, callback)
  {
    var params =
    {
      operations: operations
    };

    if(transactionsManager.length)
      return transactionOperation.call(transactionsManager, 'transaction', params, callback);

    self.emit('_transaction', params, callback);
  }

  var describe = this.emit.bind(this, '_describe');


  var mediaObjectCreator = new MediaObjectCreator(this, encodeCreate, encodeRpc,
    encodeTransaction, describe, strict);

  // create(type, [params], [callback]): a new object in this pipeline
  this.create = mediaObjectCreator.create.bind(mediaObjectCreator);
"#;

/// `MediaPipeline.connect(a, b, c, ...)`: connects a chain of elements.
pub const MEDIA_PIPELINE_PROTOTYPE: &str = r#"
// connect(e1, e2, ..., [callback]) or connect([e1, e2, ...], [callback])
MediaPipeline.prototype.connect = function(media, callback){
  if(!(media instanceof Array))
  {
    media = Array.prototype.slice.call(arguments, 0);
    callback = (typeof media[media.length - 1] === 'function')
             ? media.pop()
             : undefined;
  }

  callback = (callback || noop).bind(this)

  if(media.length < 2)
    throw new SyntaxError('Need at least two media elements to connect');

  return media[0].connect(media.slice(1), callback)
};
"#;

/// Extra `require`s of `MediaElement`, after `Transaction`.
pub const MEDIA_ELEMENT_REQUIRES: &str = r#"var each = require('async').each

var promiseCallback = require('promisecallback');
"#;

/// Start of `MediaElement.connect`: an array argument connects a chain.
/// The generated single-sink body follows, then [`MEDIA_ELEMENT_CONNECT_END`].
pub const MEDIA_ELEMENT_CONNECT_START: &str = r#"
  var promise
  if(sink instanceof Array)
  {
    callback = arguments[arguments.length-1] instanceof Function
             ? Array.prototype.pop.call(arguments)
             : undefined;

    var media = sink
    var src = this;
    sink = media[media.length-1]

    if(!media.length)
      throw new SyntaxError('Need at least one media element to connect');

    checkArray('MediaElement', 'media', media)

    // Connect each element to the next one, in order
    promise = new Promise(function(resolve, reject)
    {
      function callback(error, result)
      {
        if(error) return reject(error);

        resolve(result);
      };

      each(media, function(sink, callback)
      {
        src = src.connect(sink, callback);
      },
      callback);
    });

    promise = promiseCallback(promise, callback)
  }
  else
  {
"#;

/// End of `MediaElement.connect`: resolves to the sink, so calls chain.
pub const MEDIA_ELEMENT_CONNECT_END: &str = r#"  }

  return disguise(promise, sink)
};
"#;

/// `Hub.createHubPort()`: creates a `HubPort` of this hub.
pub const HUB_PROTOTYPE: &str = r#"
// A new HubPort attached to this hub
Hub.prototype.createHubPort = function(callback){
  var transaction = (arguments[0] instanceof Transaction)
                  ? Array.prototype.shift.apply(arguments)
                  : undefined;

  var usePromise = false;

  if (callback == undefined) {
    usePromise = true;
  }

  if(!arguments.length) callback = undefined;

  callback = (callback || noop).bind(this)

  var mediaObject = new HubPort()

  mediaObject.on('_rpc', this.emit.bind(this, '_rpc'));

  var params =
  {
    type: 'HubPort',
    constructorParams: {hub: this}
  };

  Object.defineProperty(params, 'object', {value: mediaObject});

  this.emit('_create', transaction, params, callback);

  return mediaObject
};
"#;
