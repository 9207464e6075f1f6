// Warren's PocketBase JS API, evaluated once in every tenant's context before its pb_hooks.
// It keeps what the tenant's files register (routes, middlewares, record hooks) in a closure
// the tenant cannot reach, and answers the engine's calls through `__warren`. The functions
// in `native` are Rust's (logging, require, $app, $security); the closure keeps them and the
// global name is deleted before tenant code runs.
(function (native) {
  "use strict";

  const routes = [];
  const middlewares = [];
  const hooks = Object.create(null);

  function sentence(message) {
    let text = String(message == null ? "" : message).trim();
    if (text === "") return "";
    text = text[0].toUpperCase() + text.slice(1);
    const last = text[text.length - 1];
    return last === "." || last === "?" || last === "!" ? text : text + ".";
  }

  class ApiError extends Error {
    constructor(status, message, data) {
      super(sentence(message) || "Something went wrong while processing your request.");
      this.name = "ApiError";
      this.status = Number(status) || 400;
      this.data = data && typeof data === "object" ? data : {};
    }
  }
  function errorClass(name, status, fallback) {
    const cls = class extends ApiError {
      constructor(message, data) {
        super(status, message || fallback, data);
        this.name = name;
      }
    };
    Object.defineProperty(cls, "name", { value: name });
    return cls;
  }
  const BadRequestError = errorClass("BadRequestError", 400, "Something went wrong while processing your request.");
  const NotFoundError = errorClass("NotFoundError", 404, "The requested resource wasn't found.");
  const ForbiddenError = errorClass("ForbiddenError", 403, "You are not allowed to perform this request.");
  const UnauthorizedError = errorClass("UnauthorizedError", 401, "Missing or invalid authentication.");
  const TooManyRequestsError = errorClass("TooManyRequestsError", 429, "Too Many Requests.");
  const InternalServerError = errorClass("InternalServerError", 500, "Something went wrong while processing your request.");

  // A field error for an ApiError's data: `new ValidationError("code", "message")`.
  class ValidationError {
    constructor(code, message) {
      this.code = String(code || "validation_invalid_value");
      this.message = sentence(message);
    }
  }

  function unsupported(owner, name) {
    return function () {
      throw new Error(owner + "." + name + "() is not supported by Warren yet");
    };
  }
  // An object whose unknown methods throw an Error naming them instead of `undefined is not a function`.
  function strict(owner, target) {
    return new Proxy(target, {
      get(obj, key) {
        if (key in obj || typeof key === "symbol") return obj[key];
        if (key === "then" || key === "toJSON") return undefined;
        return unsupported(owner, String(key));
      },
    });
  }

  function collectionOf(value) {
    if (value == null) return { name: "", id: "" };
    if (typeof value === "string") return { name: value, id: "" };
    return value;
  }

  class Record {
    constructor(collection, data) {
      Object.defineProperty(this, "__collection", { value: collectionOf(collection), writable: true });
      Object.defineProperty(this, "__data", { value: Object.assign({}, data || {}), writable: true });
    }
    get id() { return this.__data.id == null ? "" : String(this.__data.id); }
    set id(value) { this.__data.id = String(value); }
    collection() { return this.__collection; }
    tableName() { return this.__collection.name || ""; }
    isNew() { return !this.__data.id; }
    get(key) { return key in this.__data ? this.__data[key] : null; }
    set(key, value) { this.__data[key] = value; }
    load(data) { Object.assign(this.__data, data || {}); }
    getString(key) { const v = this.__data[key]; return v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v); }
    getInt(key) { const v = Number(this.__data[key]); return Number.isFinite(v) ? Math.trunc(v) : 0; }
    getFloat(key) { const v = Number(this.__data[key]); return Number.isFinite(v) ? v : 0; }
    getBool(key) { const v = this.__data[key]; return v === true || v === 1 || v === "true" || v === "1"; }
    getStringSlice(key) { const v = this.__data[key]; return Array.isArray(v) ? v.map(String) : v == null || v === "" ? [] : [String(v)]; }
    email() { return this.getString("email"); }
    setEmail(value) { this.__data.email = String(value); }
    verified() { return this.getBool("verified"); }
    setVerified(value) { this.__data.verified = !!value; }
    setPassword(value) { this.__data.password = String(value); this.__data.passwordConfirm = String(value); }
    publicExport() {
      const out = Object.assign({}, this.__data);
      delete out.password; delete out.passwordConfirm; delete out.tokenKey;
      if (this.__collection.id) out.collectionId = this.__collection.id;
      if (this.__collection.name) out.collectionName = this.__collection.name;
      return out;
    }
    toJSON() { return this.publicExport(); }
  }

  function recordFrom(data) {
    if (data == null) return null;
    return new Record({ name: data.collectionName || "", id: data.collectionId || "" }, data);
  }

  // ---- $app: the tenant's records, through Warren's record engine (rules bypassed) ----
  function app(method, args) {
    const out = native.app(method, JSON.stringify(args));
    const answer = JSON.parse(out);
    if (answer.error) {
      const status = answer.error.status || 400;
      throw status === 404 ? new NotFoundError(answer.error.message) : new ApiError(status, answer.error.message, answer.error.data);
    }
    return answer.value;
  }
  function paramsOf(params) { return params && typeof params === "object" ? params : {}; }
  const $app = strict("$app", {
    findRecordById(collection, id) { return recordFrom(app("findRecordById", [nameOf(collection), String(id)])); },
    findFirstRecordByData(collection, field, value) { return recordFrom(app("findFirstRecordByData", [nameOf(collection), String(field), value])); },
    findFirstRecordByFilter(collection, filter, params) { return recordFrom(app("findFirstRecordByFilter", [nameOf(collection), String(filter || ""), paramsOf(params)])); },
    findRecordsByFilter(collection, filter, sort, limit, offset, params) {
      return app("findRecordsByFilter", [nameOf(collection), String(filter || ""), String(sort || ""), Number(limit) || 0, Number(offset) || 0, paramsOf(params)]).map(recordFrom);
    },
    countRecords(collection, filter, params) { return app("countRecords", [nameOf(collection), String(filter || ""), paramsOf(params)]); },
    findCollectionByNameOrId(name) { return app("findCollectionByNameOrId", [String(name)]); },
    newMailClient() { return newMailClient(); },
    save(record) {
      if (!(record instanceof Record)) throw new Error("$app.save() takes a Record");
      const saved = app("save", [record.__collection.name || record.__collection.id, record.__data]);
      record.__data = Object.assign({}, record.__data, saved);
      return null;
    },
    delete(record) {
      if (!(record instanceof Record)) throw new Error("$app.delete() takes a Record");
      app("delete", [record.__collection.name || record.__collection.id, record.id]);
      return null;
    },
  });
  function nameOf(collection) { return typeof collection === "string" ? collection : collection && (collection.name || collection.id) || ""; }

  // ---- $security ----
  const $security = strict("$security", {
    randomString(length) { return native.security("randomString", JSON.stringify([Number(length) || 0])); },
    randomStringWithAlphabet(length, alphabet) { return native.security("randomStringWithAlphabet", JSON.stringify([Number(length) || 0, String(alphabet)])); },
    sha256(text) { return native.security("sha256", JSON.stringify([String(text)])); },
    sha512(text) { return native.security("sha512", JSON.stringify([String(text)])); },
    md5(text) { return native.security("md5", JSON.stringify([String(text)])); },
    hs256(text, secret) { return native.security("hs256", JSON.stringify([String(text), String(secret)])); },
    hs512(text, secret) { return native.security("hs512", JSON.stringify([String(text), String(secret)])); },
    equal(a, b) { return native.security("equal", JSON.stringify([String(a), String(b)])) === "true"; },
    createJWT(payload, secret, seconds) { return native.security("createJWT", JSON.stringify([payload || {}, String(secret), Number(seconds) || 0])); },
    parseUnverifiedJWT(token) { return JSON.parse(native.security("parseUnverifiedJWT", JSON.stringify([String(token)]))); },
  });

  const $os = strict("$os", {
    // The tenant's own secrets (set by the operator), never the host's environment.
    getenv(name) { return native.getenv(String(name)); },
  });

  // ---- $apis ----
  function requireAuth(...collections) {
    return function (e) {
      if (!e.auth) throw new UnauthorizedError("The request requires valid record authorization token.");
      if (collections.length > 0 && !collections.includes(e.auth.collection().name)) {
        throw new ForbiddenError("The authorized record is not allowed to perform this action.");
      }
      return e.next();
    };
  }
  const $apis = strict("$apis", {
    requireAuth,
    requireSuperuserAuth() { return requireAuth("_superusers"); },
    requireGuestOnly() {
      return function (e) {
        if (e.auth) throw new BadRequestError("The request can be accessed only by guests.");
        return e.next();
      };
    },
    requireSuperuserOrOwnerAuth(param) {
      const name = param || "id";
      return function (e) {
        if (!e.auth) throw new UnauthorizedError("The request requires superuser or record authorization token.");
        if (e.auth.collection().name === "_superusers") return e.next();
        if (e.auth.id !== e.request.pathValue(name)) throw new ForbiddenError("You are not allowed to perform this request.");
        return e.next();
      };
    },
    apiError(status, message, data) { return new ApiError(status, message, data); },
    badRequestError(message, data) { return new BadRequestError(message, data); },
    notFoundError(message, data) { return new NotFoundError(message, data); },
    forbiddenError(message, data) { return new ForbiddenError(message, data); },
    unauthorizedError(message, data) { return new UnauthorizedError(message, data); },
    tooManyRequestsError(message, data) { return new TooManyRequestsError(message, data); },
    internalServerError(message, data) { return new InternalServerError(message, data); },
  });

  // ---- console ----
  function show(value) {
    if (typeof value === "string") return value;
    if (value instanceof Error) return String(value);
    try { return JSON.stringify(value); } catch (_) { return String(value); }
  }
  function logger(level) { return (...args) => native.log(level, args.map(show).join(" ")); }
  const console = {
    log: logger("info"), info: logger("info"), debug: logger("debug"),
    warn: logger("warn"), error: logger("error"),
  };

  // ---- require: CommonJS modules from pb_hooks only ----
  const modules = Object.create(null);
  function require(name) {
    const resolved = native.resolve(String(name));
    if (resolved in modules) return modules[resolved].exports;
    const module = { exports: {} };
    modules[resolved] = module;
    const source = native.read(resolved);
    const body = new Function("module", "exports", "require", source);
    body.call(module.exports, module, module.exports, require);
    return module.exports;
  }

  // ---- registration ----
  function middlewareFn(m) {
    if (typeof m === "function") return m;
    if (m && typeof m.func === "function") return m.func;
    if (m && typeof m.handler === "function") return m.handler;
    throw new TypeError("a middleware must be a function");
  }
  function routerAdd(method, path, handler, ...mws) {
    if (typeof handler !== "function") throw new TypeError("routerAdd: the handler must be a function");
    const index = routes.length;
    routes.push({ handler, middlewares: mws.map(middlewareFn) });
    native.route(String(method).toUpperCase(), String(path), index);
  }
  function routerUse(...mws) { for (const m of mws) middlewares.push(middlewareFn(m)); }
  function Middleware(func, priority, id) {
    if (!(this instanceof Middleware)) return new Middleware(func, priority, id);
    this.func = func; this.priority = priority || 0; this.id = id || "";
  }

  const recordHooks = [
    "onRecordCreate", "onRecordUpdate", "onRecordDelete",
    "onRecordAfterCreateSuccess", "onRecordAfterUpdateSuccess", "onRecordAfterDeleteSuccess",
  ];
  const register = {};
  for (const name of recordHooks) {
    register[name] = function (handler, ...collections) {
      if (typeof handler !== "function") throw new TypeError(name + ": the handler must be a function");
      (hooks[name] = hooks[name] || []).push({ handler, collections: collections.map(String) });
      native.listen(name, JSON.stringify(collections.map(String)));
    };
  }
  // Hooks of PocketBase's that Warren does not run: registering one throws naming it.
  const notYet = [
    "onBootstrap", "onServe", "onTerminate",
    "onRecordValidate", "onRecordEnrich", "onCollectionCreate", "onCollectionUpdate", "onCollectionDelete",
  ];
  for (const name of notYet) {
    register[name] = function () { throw new Error(name + "() is not supported by Warren yet"); };
  }

  // ---- collections, transactions and migrations (transaction.rs, migrations.rs) ----
  function plain(value) { return value == null ? value : JSON.parse(JSON.stringify(value)); }
  class Field {
    constructor(data) { Object.assign(this, plain(data) || {}); }
  }
  const fieldTypes = {
    TextField: "text", NumberField: "number", BoolField: "bool", EmailField: "email", URLField: "url",
    DateField: "date", AutodateField: "autodate", SelectField: "select", JSONField: "json", FileField: "file",
    RelationField: "relation", EditorField: "editor", GeoPointField: "geoPoint", PasswordField: "password",
  };
  const fieldClasses = {};
  for (const name of Object.keys(fieldTypes)) {
    const type = fieldTypes[name];
    const cls = class extends Field {
      constructor(data) { super(data); this.type = type; }
    };
    Object.defineProperty(cls, "name", { value: name });
    fieldClasses[name] = cls;
  }
  function asField(f) { return f instanceof Field ? f : new Field(f); }
  // `collection.fields`: PocketBase's FieldsList, an array of fields (a field with the id, or
  // without an id the name, of one already there replaces it).
  class FieldsList extends Array {
    static get [Symbol.species]() { return Array; }
    all() { return Array.from(this); }
    fieldNames() { return this.map((f) => f.name); }
    getById(id) { return this.find((f) => f.id === id) || null; }
    getByName(name) { return this.find((f) => f.name === name) || null; }
    removeById(id) { const at = this.findIndex((f) => f.id === id); if (at >= 0) this.splice(at, 1); }
    removeByName(name) { const at = this.findIndex((f) => f.name === name); if (at >= 0) this.splice(at, 1); }
    add(...fields) { for (const f of fields) this.put(-1, asField(f)); }
    addAt(pos, ...fields) {
      const total = this.length;
      fields.forEach((f, i) => this.put(pos < 0 ? -1 : Math.min(Number(pos) || 0, total) + i, asField(f)));
    }
    addMarshaledJSON(text) { for (const f of JSON.parse(String(text))) this.add(f); }
    put(pos, field) {
      const byName = !field.id;
      const at = this.findIndex((f) => byName ? field.name && f.name === field.name : f.id === field.id);
      if (at >= 0) {
        if (byName) field.id = this[at].id;
        if (pos < 0) { this[at] = field; return; }
        this.splice(at, 1);
      }
      this.splice(pos < 0 ? this.length : Math.min(pos, this.length), 0, field);
    }
  }
  function fieldsList(list) {
    const out = new FieldsList();
    for (const f of Array.isArray(list) ? list : []) out.push(asField(f));
    return out;
  }
  const collectionDefaults = {
    id: "", name: "", type: "base", system: false,
    listRule: null, viewRule: null, createRule: null, updateRule: null, deleteRule: null, indexes: [],
  };
  class Collection {
    constructor(data) {
      Object.defineProperty(this, "fields", { value: fieldsList([]), writable: true, enumerable: true });
      Object.assign(this, plain(collectionDefaults));
      fill(this, data);
    }
    isAuth() { return this.type === "auth"; }
    isBase() { return this.type === "base"; }
    isView() { return this.type === "view"; }
    tableName() { return this.name; }
    toJSON() { const out = Object.assign({}, this); out.fields = this.fields.all(); return plain(out); }
  }
  function fill(target, data) {
    for (const [key, value] of Object.entries(plain(data) || {})) {
      if (key === "fields" && target instanceof Collection) target.fields = fieldsList(value);
      else target[key] = value;
    }
    return target;
  }
  function unmarshal(data, target) {
    if (target instanceof Record) target.load(plain(data));
    else if (target && typeof target === "object") fill(target, data);
    else throw new TypeError("unmarshal: the target must be an object");
    return target;
  }
  // `$app.settings()`: the tenant's settings, saved back with `$app.save(settings)`.
  class Settings {
    constructor(data) { fill(this, data); }
    toJSON() { return plain(Object.assign({}, this)); }
  }
  const saveRecord = $app.save, deleteRecord = $app.delete, collectionData = $app.findCollectionByNameOrId;
  const query = (sql) => strict("query", { execute() { return app("execute", [String(sql)]); } });
  const database = strict("db", { newQuery: query });
  Object.assign($app, {
    save(model) {
      if (model instanceof Collection) { fill(model, app("saveCollection", [model.toJSON()])); return null; }
      if (model instanceof Settings) { fill(model, app("saveSettings", [model.toJSON()])); return null; }
      return saveRecord(model);
    },
    delete(model) {
      if (model instanceof Collection) { app("deleteCollection", [model.id || model.name]); return null; }
      return deleteRecord(model);
    },
    findCollectionByNameOrId(name) { return new Collection(collectionData(name)); },
    // Every `$app` call made while `fn` runs is part of the transaction (`txApp` is `$app`).
    runInTransaction(fn) {
      if (typeof fn !== "function") throw new TypeError("runInTransaction: expects a function");
      app("__txBegin", []);
      let done = false;
      try {
        fn($app);
        done = true;
      } finally {
        app("__txEnd", [done]);
      }
      return null;
    },
    db() { return database; },
    settings() { return new Settings(app("settings", [])); },
  });
  // `migrate(up, down)` in a pb_migrations file: the engine runs them (see migrations.rs).
  const migrations = [];
  let migrating = false;
  register.migrate = function (up, down) {
    if (!migrating) throw new Error("migrate() can only be called in pb_migrations files");
    migrations.push({ up: typeof up === "function" ? up : null, down: typeof down === "function" ? down : null });
  };
  const migrationRunner = Object.freeze({
    enable() { migrating = true; },
    count() { return migrations.length; },
    run(index, direction) {
      const m = migrations[index];
      const fn = m && m[direction === "down" ? "down" : "up"];
      if (!fn) return JSON.stringify({});
      try {
        fn($app);
      } catch (error) {
        if (error instanceof InternalError && /out of memory/.test(String(error.message))) throw error;
        return JSON.stringify({ error: error instanceof ApiError ? error.message : String(error) });
      }
      return JSON.stringify({});
    },
  });
  const modelGlobals = Object.assign({ Collection, Field, FieldsList, unmarshal }, fieldClasses);
  for (const name of Object.keys(modelGlobals)) {
    Object.defineProperty(globalThis, name, { value: modelGlobals[name], writable: true, configurable: true, enumerable: false });
  }
  Object.defineProperty(globalThis, "__warrenMigrations", { value: migrationRunner, writable: false, configurable: false, enumerable: false });

  // ---- cron jobs: the functions by id; the engine registers the schedule ----
  const crons = new Map();
  function cronAdd(id, expression, handler) {
    if (typeof handler !== "function") throw new TypeError("cronAdd: the handler must be a function");
    native.cronAdd(String(id), String(expression));
    crons.set(String(id), handler);
  }
  function cronRemove(id) {
    crons.delete(String(id));
    native.cronRemove(String(id));
  }

  // ---- dispatch (called by the engine) ----
  function chain(fns, e) {
    let i = 0;
    e.next = function () {
      const fn = fns[i++];
      if (fn) return fn(e);
    };
    return e.next();
  }

  function headerKey(name) { return String(name).toLowerCase().replace(/-/g, "_"); }

  function routeEvent(req, params) {
    const headers = req.headers;
    const response = { status: 0, headers: [], body: "" };
    let info = null;
    const e = {
      request: {
        method: req.method,
        url: {
          path: req.path,
          rawQuery: req.query,
          query: () => ({
            get(name) { const v = req.queryMap[name]; return v == null ? "" : v; },
            has(name) { return name in req.queryMap; },
          }),
        },
        header: { get(name) { const v = headers[String(name).toLowerCase()]; return v == null ? "" : v; } },
        pathValue(name) { const v = params[name]; return v == null ? "" : v; },
        remoteAddr: req.remoteIp,
      },
      auth: req.auth ? recordFrom(req.auth) : null,
      app: $app,
      response: {
        header() { return { set(k, v) { response.headers.push([String(k), String(v)]); }, add(k, v) { response.headers.push([String(k), String(v)]); } }; },
      },
      realIP() { return req.remoteIp; },
      hasSuperuserAuth() { return !!req.superuser; },
      isTLS() { return false; },
      requestInfo() {
        if (info) return info;
        const hs = {};
        for (const k of Object.keys(headers)) hs[headerKey(k)] = headers[k];
        info = { method: req.method, query: req.queryMap, headers: hs, body: req.body, auth: e.auth, context: "default" };
        return info;
      },
      bindBody(target) { Object.assign(target, req.body || {}); },
      json(status, body) { setBody(status, "application/json", JSON.stringify(body === undefined ? null : body)); },
      string(status, text) { setBody(status, "text/plain; charset=utf-8", String(text)); },
      html(status, text) { setBody(status, "text/html; charset=utf-8", String(text)); },
      blob(status, type, text) { setBody(status, String(type), String(text)); },
      noContent(status) { setBody(status, null, ""); },
      redirect(status, url) { response.status = Number(status); response.headers.push(["Location", String(url)]); },
      error(status, message, data) { return new ApiError(status, message, data); },
      badRequestError(message, data) { return new BadRequestError(message, data); },
      notFoundError(message, data) { return new NotFoundError(message, data); },
      forbiddenError(message, data) { return new ForbiddenError(message, data); },
      unauthorizedError(message, data) { return new UnauthorizedError(message, data); },
      internalServerError(message, data) { return new InternalServerError(message, data); },
    };
    function setBody(status, type, text) {
      response.status = Number(status) || 200;
      if (type) response.headers.push(["Content-Type", type]);
      response.body = text;
    }
    return { e, response };
  }

  function failure(error) {
    if (error instanceof ApiError) {
      return { error: { status: error.status, message: error.message, data: safeData(error.data) } };
    }
    // Out of memory is the engine's limit, not the tenant's answer: the engine reports it.
    if (error instanceof InternalError && /out of memory/.test(String(error.message))) {
      return { fatal: "memory" };
    }
    // Not an ApiError: PocketBase answers its generic 400 and logs the cause.
    return { error: { status: 400, message: "Something went wrong while processing your request.", data: {} }, cause: String(error && error.stack ? error + "\n" + error.stack : error) };
  }
  function safeData(data) {
    const out = {};
    for (const key of Object.keys(data || {})) {
      const v = data[key];
      if (v && typeof v === "object") {
        if (typeof v.message === "string" || typeof v.code === "string") out[key] = { code: String(v.code || "validation_invalid_value"), message: sentence(v.message || "") };
        else out[key] = safeData(v);
      } else if (typeof v === "string") {
        out[key] = { code: "validation_invalid_value", message: sentence(v) };
      }
    }
    return out;
  }

  const warren = {
    route(requestJson, index, paramsJson) {
      const req = JSON.parse(requestJson);
      const route = routes[index];
      const { e, response } = routeEvent(req, JSON.parse(paramsJson));
      try {
        const result = chain([...middlewares, ...route.middlewares, route.handler], e);
        if (result instanceof Error) throw result;
      } catch (error) {
        return JSON.stringify(failure(error));
      }
      // A handler that wrote nothing answers an empty 200, as PocketBase's does.
      if (response.status === 0) response.status = 200;
      // Handed over as is (no JSON round trip); the length lets the engine refuse a huge body
      // before copying it.
      const body = String(response.body);
      return [response.status, response.headers, body, body.length];
    },
    cron(id) {
      const handler = crons.get(id);
      if (!handler) return JSON.stringify({ missing: true });
      try {
        handler();
      } catch (error) {
        if (error instanceof InternalError && /out of memory/.test(String(error.message))) throw error;
        return JSON.stringify({ cause: String(error && error.stack ? error + "\n" + error.stack : error) });
      }
      return JSON.stringify({});
    },
    recordEvent(name, collectionName, collectionId, recordJson) {
      const collection = { name: collectionName, id: collectionId };
      const record = new Record(collection, JSON.parse(recordJson));
      const list = (hooks[name] || []).filter((h) => h.collections.length === 0 || h.collections.includes(collection.name) || h.collections.includes(collection.id));
      let proceeded = false;
      const e = { record, collection: record.collection(), app: $app };
      try {
        chain([...list.map((h) => h.handler), () => { proceeded = true; }], e);
      } catch (error) {
        return JSON.stringify(failure(error));
      }
      return JSON.stringify({ proceeded, record: e.record instanceof Record ? e.record.__data : record.__data });
    },
  };

  // ---- mail: MailerMessage, $app.newMailClient(), onMailerSend and the record mail hooks ----
  function addressOf(v) {
    if (v == null) return { address: "", name: "" };
    if (typeof v === "string") return { address: v, name: "" };
    return { address: v.address == null ? "" : String(v.address), name: v.name == null ? "" : String(v.name) };
  }
  function addressList(v) { return v == null ? [] : (Array.isArray(v) ? v : [v]).map(addressOf); }
  function textOf(v) { return v == null ? "" : String(v); }
  class MailerMessage {
    constructor(data) {
      const d = data || {};
      this.from = addressOf(d.from);
      this.to = addressList(d.to);
      this.cc = addressList(d.cc);
      this.bcc = addressList(d.bcc);
      this.subject = textOf(d.subject);
      this.html = textOf(d.html);
      this.text = textOf(d.text);
      this.headers = Object.assign({}, d.headers || {});
      this.attachments = Object.assign({}, d.attachments || {});
    }
  }
  // The message as the mailer takes it (what hooks set, checked again on the Rust side).
  function wireMessage(m) {
    const message = m || {};
    if (message.attachments && Object.keys(message.attachments).length > 0) {
      throw new Error("MailerMessage attachments are not supported by Warren yet");
    }
    const headers = {};
    for (const k of Object.keys(message.headers || {})) headers[k] = String(message.headers[k]);
    return {
      from: addressOf(message.from), to: addressList(message.to), cc: addressList(message.cc), bcc: addressList(message.bcc),
      subject: textOf(message.subject), html: textOf(message.html), text: textOf(message.text), headers,
    };
  }
  function mailHandlers(name, collection) {
    return (hooks[name] || [])
      .filter((h) => h.collections.length === 0 || h.collections.includes(collection))
      .map((h) => h.handler);
  }
  function deliver(message) {
    const answer = JSON.parse(native.mailSend(JSON.stringify(wireMessage(message))));
    if (answer.error) throw new Error("failed to send the mail: " + answer.error);
  }
  const mailClient = Object.freeze({
    // Sends through the tenant's onMailerSend hooks, then its mail settings; throws on failure.
    send(message) {
      if (message == null || typeof message !== "object") throw new TypeError("send() takes a MailerMessage");
      const e = { app: $app, mailer: mailClient, message };
      chain([...mailHandlers("onMailerSend", ""), (ev) => deliver(ev.message)], e);
      return null;
    },
  });
  function newMailClient() { return mailClient; }

  const mailHooks = [
    "onMailerSend", "onMailerRecordVerificationSend", "onMailerRecordPasswordResetSend",
    "onMailerRecordEmailChangeSend", "onMailerRecordOTPSend", "onMailerRecordAuthAlertSend",
  ];
  for (const name of mailHooks) {
    register[name] = function (handler, ...collections) {
      if (typeof handler !== "function") throw new TypeError(name + ": the handler must be a function");
      (hooks[name] = hooks[name] || []).push({ handler, collections: collections.map(String) });
      native.listen(name, JSON.stringify(collections.map(String)));
    };
  }
  // ---- request, execute and error record events (onRecord…Request, …Execute, After…Error) ----
  // They replace their entries in `notYet`. The engine calls `requestEvent` with the event's
  // data; handlers change it (e.record, e.records, e.result, e.token, e.meta), refuse by
  // throwing, answer themselves (e.json) or let the request go on with e.next().
  const requestHooks = [
    "onRecordCreateRequest", "onRecordUpdateRequest", "onRecordDeleteRequest",
    "onRecordsListRequest", "onRecordViewRequest", "onRecordAuthRequest",
    "onRecordCreateExecute", "onRecordUpdateExecute", "onRecordDeleteExecute",
    "onRecordAfterCreateError", "onRecordAfterUpdateError", "onRecordAfterDeleteError",
  ];
  for (const name of requestHooks) {
    register[name] = function (handler, ...collections) {
      if (typeof handler !== "function") throw new TypeError(name + ": the handler must be a function");
      (hooks[name] = hooks[name] || []).push({ handler, collections: collections.map(String) });
      native.listen(name, JSON.stringify(collections.map(String)));
    };
  }

  // A system mail: its record hook, then onMailerSend; the message as they left it.
  warren.mail = function (hook, messageJson, recordJson, collection, metaJson) {
    const data = JSON.parse(recordJson);
    const record = data ? new Record({ name: collection, id: data.collectionId || "" }, data) : null;
    const e = { app: $app, mailer: mailClient, message: new MailerMessage(JSON.parse(messageJson)), record, meta: JSON.parse(metaJson) || {} };
    let out = null;
    try {
      const send = (ev) => {
        const inner = { app: $app, mailer: mailClient, message: ev.message };
        chain([...mailHandlers("onMailerSend", ""), (x) => { out = wireMessage(x.message); }], inner);
      };
      chain([...(hook ? mailHandlers(hook, collection) : []), send], e);
    } catch (error) {
      return JSON.stringify(failure(error));
    }
    return JSON.stringify(out ? { proceeded: true, message: out } : { proceeded: false });
  };

  // ---- $http.send ----
  function utf8(text) {
    const out = [];
    for (const ch of text) {
      const c = ch.codePointAt(0);
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return out;
  }
  function unbase64(text) {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const out = [];
    let bits = 0, acc = 0;
    for (const ch of text) {
      const v = alphabet.indexOf(ch);
      if (v < 0) continue;
      acc = (acc << 6) | v; bits += 6;
      if (bits >= 8) { bits -= 8; out.push((acc >> bits) & 255); }
    }
    return out;
  }
  function cookiesOf(lines) {
    const cookies = {};
    for (const line of lines || []) {
      const parts = String(line).split(";").map((p) => p.trim());
      const eq = parts[0].indexOf("=");
      if (eq <= 0) continue;
      const cookie = {
        name: parts[0].slice(0, eq), value: parts[0].slice(eq + 1), quoted: false, path: "", domain: "",
        expires: "0001-01-01T00:00:00Z", rawExpires: "", maxAge: 0, secure: false, httpOnly: false,
        sameSite: 0, partitioned: false, raw: String(line), unparsed: [],
      };
      for (const attr of parts.slice(1)) {
        const i = attr.indexOf("=");
        const key = (i < 0 ? attr : attr.slice(0, i)).toLowerCase();
        const val = i < 0 ? "" : attr.slice(i + 1);
        if (key === "path") cookie.path = val;
        else if (key === "domain") cookie.domain = val;
        else if (key === "expires") {
          cookie.rawExpires = val;
          const at = new Date(val);
          if (!isNaN(at.getTime())) cookie.expires = at.toISOString().replace(/\.000Z$/, "Z");
        }
        else if (key === "max-age") {
          const seconds = parseInt(val, 10);
          if (!isNaN(seconds)) cookie.maxAge = seconds <= 0 ? -1 : seconds;
        }
        else if (key === "secure") cookie.secure = true;
        else if (key === "httponly") cookie.httpOnly = true;
        else if (key === "partitioned") cookie.partitioned = true;
        else if (key === "samesite") cookie.sameSite = ({ lax: 2, strict: 3, none: 4 })[val.toLowerCase()] || 1;
        else cookie.unparsed.push(attr);
      }
      cookies[cookie.name] = cookie;
    }
    return cookies;
  }
  const $http = strict("$http", {
    send(config) {
      const c = config || {};
      let body = c.body;
      if (c.data && typeof c.data === "object" && Object.keys(c.data).length > 0) body = JSON.stringify(c.data);
      if (body != null && typeof body === "object") body = JSON.stringify(body);
      const headers = {};
      for (const k of Object.keys(c.headers || {})) headers[k] = String(c.headers[k]);
      const request = { url: textOf(c.url), method: textOf(c.method || "GET"), body: textOf(body), headers, timeout: Number(c.timeout) || 0 };
      const answer = JSON.parse(native.httpSend(JSON.stringify(request)));
      if (answer.error) throw new Error(answer.error);
      const r = answer.value;
      let json = null;
      if (r.raw !== "") {
        try { const v = JSON.parse(r.raw); json = v !== null && typeof v === "object" ? v : null; } catch (_) { json = null; }
      }
      const result = { statusCode: r.statusCode, headers: r.headers, cookies: cookiesOf(r.headers["Set-Cookie"]), raw: r.raw, json };
      let bytes = null;
      Object.defineProperty(result, "body", {
        enumerable: true,
        get() { if (bytes === null) bytes = r.base64 != null ? unbase64(r.base64) : utf8(r.raw); return bytes; },
      });
      return result;
    },
  });
  function plainRecord(value) {
    if (value instanceof Record) return value.__data;
    return value && typeof value === "object" ? Object.assign({}, value) : {};
  }
  function requestEvent(name, collectionName, collectionId, dataJson, requestJson) {
    const collection = { name: collectionName, id: collectionId };
    const data = JSON.parse(dataJson);
    const req = requestJson ? JSON.parse(requestJson) : null;
    const list = (hooks[name] || []).filter((h) => h.collections.length === 0 || h.collections.includes(collection.name) || h.collections.includes(collection.id));
    let e, response;
    if (req) {
      ({ e, response } = routeEvent(req, {}));
    } else {
      e = { app: $app };
      response = { status: 0, headers: [], body: "" };
    }
    e.collection = collection;
    if (data.record) e.record = new Record(collection, data.record);
    if (Array.isArray(data.records)) e.records = data.records.map((r) => new Record(collection, r));
    if (data.result) {
      e.result = Object.assign({}, data.result);
      e.result.items = e.records;
    }
    for (const key of ["token", "meta", "authMethod", "error"]) {
      if (key in data) e[key] = data[key];
    }
    let proceeded = false;
    // The last e.next() of a create, update or delete request makes the write (the rest of
    // the request) and waits for it, so code after it sees the saved record; when the engine
    // has no write waiting ({none}), it writes after the chain.
    const writes = name === "onRecordCreateRequest" || name === "onRecordUpdateRequest" || name === "onRecordDeleteRequest";
    let written = false;
    const last = () => {
      proceeded = true;
      if (!writes) return;
      const out = JSON.parse(native.write(JSON.stringify(plainRecord(e.record))));
      if (out.error) throw new ApiError(out.error.status, out.error.message, out.error.data);
      if (out.record) {
        written = true;
        if (e.record instanceof Record && Object.keys(out.record).length > 0) {
          e.record.__data = Object.assign({}, e.record.__data, out.record);
        }
      }
    };
    try {
      const result = chain([...list.map((h) => h.handler), last], e);
      if (result instanceof Error) throw result;
    } catch (error) {
      const out = failure(error);
      out.written = written;
      return JSON.stringify(out);
    }
    if (!proceeded) {
      if (response.status !== 0) return JSON.stringify({ response });
      return JSON.stringify({ stopped: true });
    }
    const out = {};
    if (e.record != null) out.record = plainRecord(e.record);
    if (Array.isArray(e.records)) out.records = e.records.map(plainRecord);
    if (e.result && typeof e.result === "object") {
      out.result = Object.assign({}, e.result);
      // Items the hooks put in place of the list's (a filtered copy, say) are the answer's.
      const items = Array.isArray(e.result.items) ? e.result.items : e.records;
      out.result.items = Array.isArray(items) ? items.map(plainRecord) : [];
    }
    if ("token" in data) out.token = String(e.token == null ? "" : e.token);
    if ("meta" in data || e.meta != null) out.meta = e.meta == null ? null : e.meta;
    return JSON.stringify({ proceeded: true, data: out });
  }
  Object.defineProperty(warren, "requestEvent", { value: requestEvent, enumerable: true });

  // ---- e.next() of onRecordCreate/Update/Delete writes: the chain's hooks, then the
  // …Execute hooks, whose last e.next() hands the record to the pipeline and waits for it ----
  function recordWrite(name, executeName, collectionName, collectionId, recordJson) {
    const collection = { name: collectionName, id: collectionId };
    const record = new Record(collection, JSON.parse(recordJson));
    const handlers = (hookName) => (hooks[hookName] || [])
      .filter((h) => h.collections.length === 0 || h.collections.includes(collection.name) || h.collections.includes(collection.id))
      .map((h) => h.handler);
    let proceeded = false;
    let written = false;
    const e = { record, collection: record.collection(), app: $app };
    function execute(outer) {
      const inner = { record: outer.record, collection: outer.collection, app: $app };
      return chain([...handlers(executeName), (x) => {
        proceeded = true;
        const target = x.record instanceof Record ? x.record : record;
        const out = JSON.parse(native.write(JSON.stringify(plainRecord(target))));
        if (out.error) throw new ApiError(out.error.status, out.error.message, out.error.data);
        if (out.record) {
          written = true;
          target.__data = Object.assign({}, target.__data, out.record);
          if (outer.record instanceof Record) outer.record.__data = target.__data;
        }
      }], inner);
    }
    try {
      const result = chain([...handlers(name), execute], e);
      if (result instanceof Error) throw result;
    } catch (error) {
      const out = failure(error);
      out.written = written;
      return JSON.stringify(out);
    }
    return JSON.stringify({ proceeded, written, record: plainRecord(e.record) });
  }
  Object.defineProperty(warren, "recordWrite", { value: recordWrite, enumerable: true });

  const globals = {
    routerAdd, routerUse, Middleware, Record, cronAdd, cronRemove,
    ApiError, ValidationError, BadRequestError, NotFoundError, ForbiddenError, UnauthorizedError, TooManyRequestsError, InternalServerError,
    $app, $apis, $security, $os, console, require,
    MailerMessage, $http,
    ...register,
  };
  for (const name of Object.keys(globals)) {
    Object.defineProperty(globalThis, name, { value: globals[name], writable: true, configurable: true, enumerable: false });
  }
  Object.defineProperty(globalThis, "__warren", { value: Object.freeze(warren), writable: false, configurable: false, enumerable: false });
})(__native);
delete globalThis.__native;
