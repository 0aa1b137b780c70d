// Browser bundle: the official kurento-utils, as the tutorials load it.
window.kurentoUtils = require('kurento-utils');
