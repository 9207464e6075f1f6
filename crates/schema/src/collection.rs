//! The collection model: base, auth and view collections with their options, the API JSON shape
//! (PocketBase's key order, secrets omitted), the `_collections` row shape (secrets kept), the
//! scaffolds new collections start from, and PATCH-style merging.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::datetime::DateTime;
use crate::error::{Error, Result};
use crate::field::{DomainOptions, Field, FieldKind, Fields, PasswordOptions, TextOptions};
use crate::id;
use crate::text::SharedText;

/// The three collection types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    /// A regular table.
    Base,
    /// A table whose records can authenticate.
    Auth,
    /// A read-only SQL view.
    View,
}

impl CollectionType {
    /// `base`, `auth` or `view`.
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionType::Base => "base",
            CollectionType::Auth => "auth",
            CollectionType::View => "view",
        }
    }

    /// Parses a type name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "base" => Some(CollectionType::Base),
            "auth" => Some(CollectionType::Auth),
            "view" => Some(CollectionType::View),
            _ => None,
        }
    }
}

/// An email's subject and HTML body (`{APP_NAME}`, `{APP_URL}`, `{TOKEN}`… placeholders).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailTemplate {
    /// Subject line.
    pub subject: String,
    /// HTML body (shared by every collection with the same body).
    pub body: SharedText,
}

/// A signed token kind's secret and lifetime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenConfig {
    /// HMAC secret half (the record's `tokenKey` is the other); never output by the API.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// Lifetime in seconds.
    pub duration: i64,
}

/// `authAlert`: email on login from a new location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthAlertConfig {
    /// Send the alert.
    pub enabled: bool,
    /// The alert email.
    pub email_template: EmailTemplate,
}

/// One configured OAuth2 provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OAuth2Provider {
    /// Force PKCE on/off (`null` = provider default).
    pub pkce: Option<bool>,
    /// Provider name (`google`, `github`, `oidc`…).
    pub name: String,
    /// OAuth2 client id.
    #[serde(rename = "clientId")]
    pub client_id: String,
    /// OAuth2 client secret; never output by the API.
    #[serde(rename = "clientSecret", skip_serializing_if = "String::is_empty")]
    pub client_secret: String,
    /// Override of the authorization endpoint.
    #[serde(rename = "authURL")]
    pub auth_url: String,
    /// Override of the token endpoint.
    #[serde(rename = "tokenURL")]
    pub token_url: String,
    /// Override of the user info endpoint.
    #[serde(rename = "userInfoURL")]
    pub user_info_url: String,
    /// Display name override.
    #[serde(rename = "displayName")]
    pub display_name: String,
    /// Provider-specific extra settings.
    pub extra: Map<String, Value>,
}

/// Which record fields OAuth2 user data fills on sign-up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OAuth2MappedFields {
    /// Field receiving the provider's user id.
    pub id: String,
    /// Field receiving the display name.
    pub name: String,
    /// Field receiving the username.
    pub username: String,
    /// Field receiving the avatar (downloaded into a file field).
    #[serde(rename = "avatarURL")]
    pub avatar_url: String,
}

/// `oauth2` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OAuth2Config {
    /// Configured providers.
    pub providers: Vec<OAuth2Provider>,
    /// Field mapping.
    pub mapped_fields: OAuth2MappedFields,
    /// OAuth2 sign-in enabled.
    pub enabled: bool,
}

/// `passwordAuth` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PasswordAuthConfig {
    /// Password sign-in enabled.
    pub enabled: bool,
    /// Fields usable as identity (each needs a single-column unique index).
    pub identity_fields: Vec<String>,
}

/// `mfa` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MfaConfig {
    /// MFA required.
    pub enabled: bool,
    /// Seconds between the first and second factor.
    pub duration: i64,
    /// Optional rule selecting who needs MFA.
    pub rule: String,
}

/// `otp` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OtpConfig {
    /// OTP sign-in enabled.
    pub enabled: bool,
    /// Code lifetime in seconds.
    pub duration: i64,
    /// Code length.
    pub length: i64,
    /// The email carrying the code.
    pub email_template: EmailTemplate,
}

/// Options of an auth collection, in PocketBase's output order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthOptions {
    /// Extra rule a record must satisfy to authenticate (`null` = nobody).
    #[serde(deserialize_with = "de_rule")]
    pub auth_rule: Option<String>,
    /// Rule giving manager rights over other records (`null` = superusers only).
    #[serde(deserialize_with = "de_rule")]
    pub manage_rule: Option<String>,
    /// New-location login alert.
    pub auth_alert: AuthAlertConfig,
    /// OAuth2 sign-in.
    pub oauth2: OAuth2Config,
    /// Password sign-in.
    pub password_auth: PasswordAuthConfig,
    /// Multi-factor authentication.
    pub mfa: MfaConfig,
    /// One-time passwords.
    pub otp: OtpConfig,
    /// Auth tokens.
    pub auth_token: TokenConfig,
    /// Password reset tokens.
    pub password_reset_token: TokenConfig,
    /// Email change tokens.
    pub email_change_token: TokenConfig,
    /// Verification tokens.
    pub verification_token: TokenConfig,
    /// Protected file tokens.
    pub file_token: TokenConfig,
    /// Verification email.
    pub verification_template: EmailTemplate,
    /// Password reset email.
    pub reset_password_template: EmailTemplate,
    /// Email change confirmation email.
    pub confirm_email_change_template: EmailTemplate,
}

/// A rule that distinguishes `null` from missing only via `#[serde(default)]`.
fn de_rule<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

const AUTH_ALERT_BODY: &str = "<p>Hello,</p>\n<p>We noticed a login to your {APP_NAME} account from a new location:</p>\n<p><em>{ALERT_INFO}</em></p>\n<p><strong>If this wasn't you, you should immediately change your {APP_NAME} account password to revoke access from all other locations.</strong></p>\n<p>If this was you, you may disregard this email.</p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>";
const OTP_BODY: &str = "<p>Hello,</p>\n<p>Your one-time password is: <strong>{OTP}</strong></p>\n<p><i>If you didn't ask for the one-time password, you can ignore this email.</i></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>";
const VERIFICATION_BODY: &str = "<p>Hello,</p>\n<p>Thank you for joining us at {APP_NAME}.</p>\n<p>Click on the button below to verify your email address.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-verification/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Verify</a>\n</p>\n<p><i>If you didn't recently register, please ignore this email.</i></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>";
const RESET_BODY: &str = "<p>Hello,</p>\n<p>Click on the button below to reset your password.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Reset password</a>\n</p>\n<p><i>If you didn't ask to reset your password, please ignore this email.</i></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>";
const EMAIL_CHANGE_BODY: &str = "<p>Hello,</p>\n<p>Click on the button below to confirm your new email address.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Confirm new email</a>\n</p>\n<p><i>If you didn't ask to change your email address, please ignore this email.</i></p>\n<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>";

fn template(subject: &str, body: &str) -> EmailTemplate {
    EmailTemplate {
        subject: subject.into(),
        body: body.into(),
    }
}

fn token(duration: i64) -> TokenConfig {
    TokenConfig {
        secret: id::new_secret(),
        duration,
    }
}

impl AuthOptions {
    /// PocketBase's defaults for a new auth collection, with fresh random secrets.
    pub fn new_default() -> Self {
        AuthOptions {
            auth_rule: Some(String::new()),
            manage_rule: None,
            auth_alert: AuthAlertConfig {
                enabled: true,
                email_template: template("Login from a new location", AUTH_ALERT_BODY),
            },
            oauth2: OAuth2Config::default(),
            password_auth: PasswordAuthConfig {
                enabled: true,
                identity_fields: vec!["email".into()],
            },
            mfa: MfaConfig {
                enabled: false,
                duration: 600,
                rule: String::new(),
            },
            otp: OtpConfig {
                enabled: false,
                duration: 180,
                length: 8,
                email_template: template("OTP for {APP_NAME}", OTP_BODY),
            },
            auth_token: token(432_000),
            password_reset_token: token(1800),
            email_change_token: token(1800),
            verification_token: token(86_400),
            file_token: token(180),
            verification_template: template("Verify your {APP_NAME} email", VERIFICATION_BODY),
            reset_password_template: template("Reset your {APP_NAME} password", RESET_BODY),
            confirm_email_change_template: template(
                "Confirm your {APP_NAME} new email address",
                EMAIL_CHANGE_BODY,
            ),
        }
    }

    /// The five token configs with their JSON keys.
    pub fn tokens(&self) -> [(&'static str, &TokenConfig); 5] {
        [
            ("authToken", &self.auth_token),
            ("passwordResetToken", &self.password_reset_token),
            ("emailChangeToken", &self.email_change_token),
            ("verificationToken", &self.verification_token),
            ("fileToken", &self.file_token),
        ]
    }

    fn tokens_mut(&mut self) -> [&mut TokenConfig; 5] {
        [
            &mut self.auth_token,
            &mut self.password_reset_token,
            &mut self.email_change_token,
            &mut self.verification_token,
            &mut self.file_token,
        ]
    }

    /// Gives every empty token secret a fresh random one.
    pub fn fill_missing_secrets(&mut self) {
        for t in self.tokens_mut() {
            if t.secret.is_empty() {
                t.secret = id::new_secret();
            }
        }
    }

    /// The auth options of a collection JSON object (its option keys sit beside the others).
    fn from_collection(value: &Value) -> Result<Self> {
        let mut auth: AuthOptions = serde_json::from_value(without_nulls(value))?;
        if value.get("authRule").is_none() {
            auth.auth_rule = Some(String::new());
        }
        Ok(auth)
    }

    /// The auth options stored in a `_collections` row's `options` column, as
    /// [`Collection::from_row`] reads them.
    pub fn from_options_column(options: &str) -> Result<Self> {
        match serde_json::from_str(options)? {
            value @ Value::Object(_) => Self::from_collection(&value),
            Value::Null => Self::from_collection(&Value::Object(Map::new())),
            _ => Err(Error::InvalidData("options must be an object".into())),
        }
    }

    /// A copy without token secrets or OAuth2 client secrets (what the API prints).
    pub fn without_secrets(&self) -> Self {
        let mut out = self.clone();
        for t in out.tokens_mut() {
            t.secret.clear();
        }
        for p in &mut out.oauth2.providers {
            p.client_secret.clear();
        }
        out
    }
}

/// The type-specific part of a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectionOptions {
    /// No options.
    Base,
    /// Auth options (boxed: they are large).
    Auth(Box<AuthOptions>),
    /// The view's SELECT.
    View {
        /// The SQL query.
        view_query: String,
    },
}

/// A collection: its identity, rules, fields, indexes and type options.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// `pbc_<crc32>` by default; immutable.
    pub id: String,
    /// Table name.
    pub name: String,
    /// System collections can't be renamed, deleted or have their rules changed.
    pub system: bool,
    /// List rule (`None` = superusers only).
    pub list_rule: Option<String>,
    /// View rule.
    pub view_rule: Option<String>,
    /// Create rule.
    pub create_rule: Option<String>,
    /// Update rule.
    pub update_rule: Option<String>,
    /// Delete rule.
    pub delete_rule: Option<String>,
    /// Fields in definition order.
    pub fields: Fields,
    /// Raw `CREATE [UNIQUE] INDEX` statements.
    pub indexes: Vec<String>,
    /// Creation time (`YYYY-MM-DD HH:MM:SS.mmmZ`, `""` in scaffolds).
    pub created: String,
    /// Last update time.
    pub updated: String,
    /// Type options.
    pub options: CollectionOptions,
}

/// A `_collections` row, column for column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionRow {
    /// `id` column.
    pub id: String,
    /// `system` column (0/1).
    pub system: bool,
    /// `type` column.
    pub kind: String,
    /// `name` column.
    pub name: String,
    /// `fields` JSON column.
    pub fields: String,
    /// `indexes` JSON column.
    pub indexes: String,
    /// `listRule` column.
    pub list_rule: Option<String>,
    /// `viewRule` column.
    pub view_rule: Option<String>,
    /// `createRule` column.
    pub create_rule: Option<String>,
    /// `updateRule` column.
    pub update_rule: Option<String>,
    /// `deleteRule` column.
    pub delete_rule: Option<String>,
    /// `options` JSON column (auth options include secrets).
    pub options: String,
    /// `created` column.
    pub created: String,
    /// `updated` column.
    pub updated: String,
}

impl CollectionRow {
    /// Column names in the order of [`CollectionRow::values`].
    pub const COLUMNS: [&'static str; 14] = [
        "id",
        "system",
        "type",
        "name",
        "fields",
        "indexes",
        "listRule",
        "viewRule",
        "createRule",
        "updateRule",
        "deleteRule",
        "options",
        "created",
        "updated",
    ];

    /// The row as SQL values in [`CollectionRow::COLUMNS`] order.
    pub fn values(&self) -> Vec<crate::value::SqlValue> {
        use crate::value::SqlValue;
        let opt = |v: &Option<String>| v.clone().map_or(SqlValue::Null, SqlValue::Text);
        vec![
            SqlValue::Text(self.id.clone()),
            SqlValue::Integer(i64::from(self.system)),
            SqlValue::Text(self.kind.clone()),
            SqlValue::Text(self.name.clone()),
            SqlValue::Text(self.fields.clone()),
            SqlValue::Text(self.indexes.clone()),
            opt(&self.list_rule),
            opt(&self.view_rule),
            opt(&self.create_rule),
            opt(&self.update_rule),
            opt(&self.delete_rule),
            SqlValue::Text(self.options.clone()),
            SqlValue::Text(self.created.clone()),
            SqlValue::Text(self.updated.clone()),
        ]
    }
}

impl Collection {
    /// The collection type.
    pub fn kind(&self) -> CollectionType {
        match self.options {
            CollectionOptions::Base => CollectionType::Base,
            CollectionOptions::Auth(_) => CollectionType::Auth,
            CollectionOptions::View { .. } => CollectionType::View,
        }
    }

    /// True for auth collections.
    pub fn is_auth(&self) -> bool {
        matches!(self.options, CollectionOptions::Auth(_))
    }

    /// True for view collections.
    pub fn is_view(&self) -> bool {
        matches!(self.options, CollectionOptions::View { .. })
    }

    /// Auth options, when this is an auth collection.
    pub fn auth_options(&self) -> Option<&AuthOptions> {
        match &self.options {
            CollectionOptions::Auth(o) => Some(o),
            _ => None,
        }
    }

    /// Mutable auth options, when this is an auth collection.
    pub fn auth_options_mut(&mut self) -> Option<&mut AuthOptions> {
        match &mut self.options {
            CollectionOptions::Auth(o) => Some(o),
            _ => None,
        }
    }

    /// The view query, when this is a view collection.
    pub fn view_query(&self) -> Option<&str> {
        match &self.options {
            CollectionOptions::View { view_query } => Some(view_query),
            _ => None,
        }
    }

    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// A field by id.
    pub fn field_by_id(&self, id: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// The rule of an action by its JSON key (`listRule`…, `authRule`, `manageRule`).
    pub fn rule(&self, key: &str) -> Option<&Option<String>> {
        match key {
            "listRule" => Some(&self.list_rule),
            "viewRule" => Some(&self.view_rule),
            "createRule" => Some(&self.create_rule),
            "updateRule" => Some(&self.update_rule),
            "deleteRule" => Some(&self.delete_rule),
            "authRule" => self.auth_options().map(|o| &o.auth_rule),
            "manageRule" => self.auth_options().map(|o| &o.manage_rule),
            _ => None,
        }
    }

    /// The blank collection `POST /api/collections` starts from (`GET …/meta/scaffolds`): base
    /// has the `id` field, auth adds its system fields, indexes, default options and fresh
    /// secrets, view has no fields. `id`, `created` and `updated` are left empty.
    pub fn scaffold(kind: CollectionType, name: &str) -> Self {
        let (fields, indexes, options) = match kind {
            CollectionType::Base => (
                vec![Field::primary_key()],
                Vec::new(),
                CollectionOptions::Base,
            ),
            CollectionType::View => (
                Vec::new(),
                Vec::new(),
                CollectionOptions::View {
                    view_query: String::new(),
                },
            ),
            CollectionType::Auth => (
                auth_system_fields(),
                Vec::new(),
                CollectionOptions::Auth(Box::new(AuthOptions::new_default())),
            ),
        };
        let mut c = Collection {
            id: String::new(),
            name: name.to_owned(),
            system: false,
            list_rule: None,
            view_rule: None,
            create_rule: None,
            update_rule: None,
            delete_rule: None,
            fields: fields.into(),
            indexes,
            created: String::new(),
            updated: String::new(),
            options,
        };
        if kind == CollectionType::Auth {
            c.ensure_auth_indexes(&id::random_string(10, id::ID_ALPHABET));
        }
        c
    }

    /// A new collection ready to be validated and saved: scaffold + PocketBase's default id +
    /// timestamps.
    pub fn new(kind: CollectionType, name: &str) -> Self {
        let mut c = Self::scaffold(kind, name);
        c.id = id::collection_id(kind.as_str(), name);
        c.indexes.clear();
        if kind == CollectionType::Auth {
            let cid = c.id.clone();
            c.ensure_auth_indexes(&cid);
        }
        let now = DateTime::now().format();
        c.created.clone_from(&now);
        c.updated = now;
        c
    }

    /// Adds the unique `tokenKey` and `email` indexes every auth collection has, named
    /// `idx_tokenKey_<suffix>`/`idx_email_<suffix>`, unless an equivalent one exists.
    pub fn ensure_auth_indexes(&mut self, suffix: &str) {
        let table = self.name.clone();
        let has = |indexes: &[String], column: &str| {
            indexes.iter().any(|raw| {
                crate::index::Index::parse(raw).is_some_and(|i| {
                    i.unique
                        && i.columns.len() == 1
                        && i.columns[0].name.eq_ignore_ascii_case(column)
                })
            })
        };
        if !has(&self.indexes, "tokenKey") {
            self.indexes.push(format!(
                "CREATE UNIQUE INDEX `idx_tokenKey_{suffix}` ON `{table}` (`tokenKey`)"
            ));
        }
        if !has(&self.indexes, "email") {
            self.indexes.push(format!(
                "CREATE UNIQUE INDEX `idx_email_{suffix}` ON `{table}` (`email`) WHERE `email` != ''"
            ));
        }
    }

    /// Makes sure the fields PocketBase always keeps are there, as PocketBase does before every
    /// save: an `id` text field is prepended when missing, the auth system fields missing are
    /// appended, and those present get their system flags back (`tokenKey` and `password`
    /// stay hidden and required, whatever the body said).
    pub fn ensure_system_fields(&mut self) {
        if self.is_view() {
            return;
        }
        match self
            .fields
            .iter_mut()
            .find(|f| f.name == "id" && matches!(f.kind, FieldKind::Text(_)))
        {
            Some(field) => {
                field.system = true;
                field.required = true;
                field.hidden = false;
                if let FieldKind::Text(o) = &mut field.kind {
                    o.primary_key = true;
                    if o.pattern.is_empty() {
                        crate::field::DEFAULT_ID_PATTERN.clone_into(&mut o.pattern);
                    }
                }
            }
            None => self.fields.insert(0, Field::primary_key()),
        }
        if !self.is_auth() {
            return;
        }
        for default in auth_system_fields().into_iter().skip(1) {
            let Some(field) = self
                .fields
                .iter_mut()
                .find(|f| f.name == default.name && f.type_name() == default.type_name())
            else {
                self.fields.push(default);
                continue;
            };
            field.system = true;
            match field.name.as_str() {
                "password" | "tokenKey" => {
                    field.hidden = true;
                    field.required = true;
                }
                "email" => field.hidden = false,
                _ => {}
            }
        }
    }

    /// The API JSON (`GET /api/collections/{c}`): PocketBase's key order, no secrets.
    pub fn to_api_json(&self) -> String {
        self.to_json(false)
    }

    /// Serialises with or without secrets, keys in PocketBase's order.
    fn to_json(&self, with_secrets: bool) -> String {
        serde_json::to_string(&Ordered {
            c: self,
            with_secrets,
        })
        .unwrap_or_else(|_| "{}".into())
    }

    /// The type options as a JSON object, PocketBase's key order.
    fn options_json(&self, with_secrets: bool) -> String {
        match &self.options {
            CollectionOptions::Base => "{}".into(),
            CollectionOptions::View { view_query } => {
                format!("{{\"viewQuery\":{}}}", Value::String(view_query.clone()))
            }
            CollectionOptions::Auth(o) => {
                let r = if with_secrets {
                    serde_json::to_string(o)
                } else {
                    serde_json::to_string(&o.without_secrets())
                };
                r.unwrap_or_else(|_| "{}".into())
            }
        }
    }

    /// The collection as a JSON value including secrets (the input of [`Collection::apply_patch`]).
    pub fn to_value_with_secrets(&self) -> Value {
        serde_json::from_str(&self.to_json(true)).unwrap_or(Value::Null)
    }

    /// Decodes a full collection JSON object (API shape, secrets allowed). Missing keys take
    /// defaults; a missing `type` means base.
    pub fn from_value(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::InvalidData("a collection must be a JSON object".into()))?;
        let kind = match obj.get("type") {
            None | Some(Value::Null) => CollectionType::Base,
            Some(Value::String(s)) if s.is_empty() => CollectionType::Base,
            Some(Value::String(s)) => CollectionType::parse(s)
                .ok_or_else(|| Error::InvalidData(format!("unknown collection type {s:?}")))?,
            Some(_) => return Err(Error::InvalidData("type must be a string".into())),
        };
        let string = |k: &str| -> Result<String> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(Error::InvalidData(format!("{k} must be a string"))),
            }
        };
        let rule = |k: &str| -> Result<Option<String>> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Error::InvalidData(format!("{k} must be a string or null"))),
            }
        };
        let fields = match obj.get("fields") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => fields_from_values(items)?,
            Some(_) => return Err(Error::InvalidData("fields must be an array".into())),
        };
        let indexes = match obj.get("indexes") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value::<Vec<String>>(v.clone())?,
        };
        let system = match obj.get("system") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Error::InvalidData("system must be a boolean".into())),
        };
        let options = match kind {
            CollectionType::Base => CollectionOptions::Base,
            CollectionType::View => CollectionOptions::View {
                view_query: string("viewQuery")?,
            },
            CollectionType::Auth => {
                CollectionOptions::Auth(Box::new(AuthOptions::from_collection(value)?))
            }
        };
        Ok(Collection {
            id: string("id")?,
            name: string("name")?,
            system,
            list_rule: rule("listRule")?,
            view_rule: rule("viewRule")?,
            create_rule: rule("createRule")?,
            update_rule: rule("updateRule")?,
            delete_rule: rule("deleteRule")?,
            fields: fields.into(),
            indexes,
            created: string("created")?,
            updated: string("updated")?,
            options,
        })
    }

    /// `POST /api/collections`: the scaffold picked by the body's `type` and `name`, with the
    /// body merged over it; a default id and timestamps when missing. Validate the result with
    /// [`crate::validate::validate_collection`] before saving.
    pub fn from_create_body(body: &Value) -> Result<Self> {
        let kind = match body.get("type").and_then(Value::as_str) {
            None | Some("") => CollectionType::Base,
            Some(s) => CollectionType::parse(s)
                .ok_or_else(|| Error::InvalidData(format!("unknown collection type {s:?}")))?,
        };
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
        let mut base = Collection::scaffold(kind, name);
        base.indexes.clear();
        let mut c = base.apply_patch(body)?;
        c.ensure_system_fields();
        if c.id.is_empty() {
            c.id = id::collection_id(kind.as_str(), &c.name);
        }
        if c.is_auth() {
            let cid = c.id.clone();
            c.ensure_auth_indexes(&cid);
            if let Some(o) = c.auth_options_mut() {
                o.fill_missing_secrets();
            }
        }
        let now = DateTime::now().format();
        c.created.clone_from(&now);
        c.updated = now;
        Ok(c)
    }

    /// `PATCH /api/collections/{c}`: merges `patch` over this collection. Nested option
    /// objects merge key by key; `fields` and `indexes` replace entirely (fields keep their
    /// identity by `id`). The result is not validated and `updated` is not touched.
    pub fn apply_patch(&self, patch: &Value) -> Result<Self> {
        let mut merged = self.to_value_with_secrets();
        if !patch.is_object() {
            return Err(Error::InvalidData(
                "a collection must be a JSON object".into(),
            ));
        }
        merge(&mut merged, patch);
        let mut c = Collection::from_value(&merged)?;
        // Field options missing from a patched field that kept its id are taken from the old
        // definition, like decoding JSON over the existing Go field.
        if let Some(Value::Array(items)) = patch.get("fields") {
            for (field, raw) in c.fields.iter_mut().zip(items) {
                if let Some(old) = self.field_by_id(&field.id)
                    && old.type_name() == field.type_name()
                {
                    let mut base = old.to_value();
                    merge(&mut base, raw);
                    if let Ok(f) = Field::from_value(&base) {
                        *field = f;
                    }
                }
            }
        }
        Ok(c)
    }

    /// The `_collections` row (auth options with their secrets).
    pub fn to_row(&self) -> CollectionRow {
        CollectionRow {
            id: self.id.clone(),
            system: self.system,
            kind: self.kind().as_str().into(),
            name: self.name.clone(),
            fields: serde_json::to_string(&self.fields).unwrap_or_else(|_| "[]".into()),
            indexes: serde_json::to_string(&self.indexes).unwrap_or_else(|_| "[]".into()),
            list_rule: self.list_rule.clone(),
            view_rule: self.view_rule.clone(),
            create_rule: self.create_rule.clone(),
            update_rule: self.update_rule.clone(),
            delete_rule: self.delete_rule.clone(),
            options: self.options_json(true),
            created: self.created.clone(),
            updated: self.updated.clone(),
        }
    }

    /// Decodes a `_collections` row (as written by Warren or by PocketBase).
    pub fn from_row(row: &CollectionRow) -> Result<Self> {
        let mut obj: Map<String, Value> = match serde_json::from_str(&row.options)? {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => return Err(Error::InvalidData("options must be an object".into())),
        };
        let rule = |r: &Option<String>| r.clone().map_or(Value::Null, Value::String);
        obj.insert("id".into(), Value::String(row.id.clone()));
        obj.insert("system".into(), Value::Bool(row.system));
        obj.insert("type".into(), Value::String(row.kind.clone()));
        obj.insert("name".into(), Value::String(row.name.clone()));
        obj.insert("fields".into(), serde_json::from_str(&row.fields)?);
        obj.insert("indexes".into(), serde_json::from_str(&row.indexes)?);
        obj.insert("listRule".into(), rule(&row.list_rule));
        obj.insert("viewRule".into(), rule(&row.view_rule));
        obj.insert("createRule".into(), rule(&row.create_rule));
        obj.insert("updateRule".into(), rule(&row.update_rule));
        obj.insert("deleteRule".into(), rule(&row.delete_rule));
        obj.insert("created".into(), Value::String(row.created.clone()));
        obj.insert("updated".into(), Value::String(row.updated.clone()));
        Collection::from_value(&Value::Object(obj))
    }
}

impl Serialize for Collection {
    /// The API shape (no secrets), keys in PocketBase's order.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        Ordered {
            c: self,
            with_secrets: false,
        }
        .serialize(s)
    }
}

/// Serialises a collection in PocketBase's declaration order.
struct Ordered<'a> {
    c: &'a Collection,
    with_secrets: bool,
}

impl Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.c;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &c.id)?;
        m.serialize_entry("listRule", &c.list_rule)?;
        m.serialize_entry("viewRule", &c.view_rule)?;
        m.serialize_entry("createRule", &c.create_rule)?;
        m.serialize_entry("updateRule", &c.update_rule)?;
        m.serialize_entry("deleteRule", &c.delete_rule)?;
        m.serialize_entry("name", &c.name)?;
        m.serialize_entry("type", c.kind().as_str())?;
        m.serialize_entry("fields", &c.fields)?;
        m.serialize_entry("indexes", &c.indexes)?;
        m.serialize_entry("created", &c.created)?;
        m.serialize_entry("updated", &c.updated)?;
        m.serialize_entry("system", &c.system)?;
        match &c.options {
            CollectionOptions::Base => {}
            CollectionOptions::View { view_query } => m.serialize_entry("viewQuery", view_query)?,
            CollectionOptions::Auth(o) => {
                let stripped;
                let o: &AuthOptions = if self.with_secrets {
                    o
                } else {
                    stripped = o.without_secrets();
                    &stripped
                };
                m.serialize_entry("authRule", &o.auth_rule)?;
                m.serialize_entry("manageRule", &o.manage_rule)?;
                m.serialize_entry("authAlert", &o.auth_alert)?;
                m.serialize_entry("oauth2", &o.oauth2)?;
                m.serialize_entry("passwordAuth", &o.password_auth)?;
                m.serialize_entry("mfa", &o.mfa)?;
                m.serialize_entry("otp", &o.otp)?;
                m.serialize_entry("authToken", &o.auth_token)?;
                m.serialize_entry("passwordResetToken", &o.password_reset_token)?;
                m.serialize_entry("emailChangeToken", &o.email_change_token)?;
                m.serialize_entry("verificationToken", &o.verification_token)?;
                m.serialize_entry("fileToken", &o.file_token)?;
                m.serialize_entry("verificationTemplate", &o.verification_template)?;
                m.serialize_entry("resetPasswordTemplate", &o.reset_password_template)?;
                m.serialize_entry(
                    "confirmEmailChangeTemplate",
                    &o.confirm_email_change_template,
                )?;
            }
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Collection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Collection::from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// `value` with every `null` object entry removed, at any depth, except the two auth rules
/// (where `null` means "superusers only"). PocketBase writes Go's nil maps and slices as `null`
/// (`oauth2.providers`, a provider's `extra`, …) and Go's decoder leaves the target untouched on
/// `null`, so a dropped entry takes its default exactly as it does in PocketBase.
pub(crate) fn without_nulls(value: &Value) -> Value {
    fn strip(value: &Value, keep_rules: bool) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, v)| {
                        !v.is_null()
                            || (keep_rules && matches!(k.as_str(), "authRule" | "manageRule"))
                    })
                    .map(|(k, v)| (k.clone(), strip(v, false)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| strip(v, false)).collect()),
            other => other.clone(),
        }
    }
    strip(value, true)
}

/// JSON merge used by PATCH: objects merge recursively, everything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                let is_list = k == "fields" || k == "indexes" || k == "providers";
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() && !is_list => {
                        merge(existing, v);
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Decodes a `fields` array as PocketBase's fields list does: a field with an id replaces an
/// earlier one with that id; a field without one gets `<type><crc32(name)>` (numbered when
/// taken) and replaces, keeping its id, an earlier field of the same name.
fn fields_from_values(items: &[Value]) -> Result<Vec<Field>> {
    let mut fields: Vec<Field> = Vec::with_capacity(items.len());
    for raw in items {
        let explicit_id = raw
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| !id.is_empty());
        let mut field = Field::from_value(raw)?;
        if explicit_id {
            match fields.iter_mut().find(|f| f.id == field.id) {
                Some(slot) => *slot = field,
                None => fields.push(field),
            }
            continue;
        }
        let base = field.id.clone();
        let mut n = 2;
        while n < 1000 && fields.iter().any(|f| f.id == field.id) {
            field.id = format!("{base}{n}");
            n += 1;
        }
        match fields
            .iter_mut()
            .find(|f| !field.name.is_empty() && f.name == field.name)
        {
            Some(slot) => {
                field.id.clone_from(&slot.id);
                *slot = field;
            }
            None => fields.push(field),
        }
    }
    Ok(fields)
}

/// The system fields of every auth collection, in PocketBase's order (after `id`).
pub fn auth_system_fields() -> Vec<Field> {
    vec![
        Field::primary_key(),
        Field::new(
            "password",
            FieldKind::Password(PasswordOptions {
                cost: 0,
                max: 0,
                min: 8,
                pattern: String::new(),
            }),
        )
        .system()
        .hidden()
        .required(),
        Field::new(
            "tokenKey",
            FieldKind::Text(TextOptions {
                autogenerate_pattern: "[a-zA-Z0-9]{50}".into(),
                max: 60,
                min: 30,
                pattern: String::new(),
                primary_key: false,
            }),
        )
        .system()
        .hidden()
        .required(),
        Field::new("email", FieldKind::Email(DomainOptions::default()))
            .system()
            .required(),
        Field::new("emailVisibility", FieldKind::Bool).system(),
        Field::new("verified", FieldKind::Bool).system(),
    ]
}

/// Names of the auth system fields.
pub const AUTH_SYSTEM_FIELDS: [&str; 5] = [
    "password",
    "tokenKey",
    "email",
    "emailVisibility",
    "verified",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// `_collections` rows as PocketBase 0.23.12, 0.29.3 and 0.40.6 wrote them (the import
    /// suite's seed: Go's nil slices and maps come out as `null`).
    fn release_rows(version: &str) -> Vec<CollectionRow> {
        let text = |v: &Value, k: &str| v[k].as_str().map(str::to_owned);
        fixture(&format!("releases/collections-{version}.json"))
            .as_array()
            .unwrap()
            .iter()
            .map(|v| CollectionRow {
                id: text(v, "id").unwrap(),
                system: v["system"].as_i64() == Some(1),
                kind: text(v, "type").unwrap(),
                name: text(v, "name").unwrap(),
                fields: text(v, "fields").unwrap(),
                indexes: text(v, "indexes").unwrap(),
                list_rule: text(v, "listRule"),
                view_rule: text(v, "viewRule"),
                create_rule: text(v, "createRule"),
                update_rule: text(v, "updateRule"),
                delete_rule: text(v, "deleteRule"),
                options: text(v, "options").unwrap(),
                created: text(v, "created").unwrap(),
                updated: text(v, "updated").unwrap(),
            })
            .collect()
    }

    #[test]
    fn rows_every_release_wrote_decode_with_nulls_as_defaults() {
        for version in ["0.23.12", "0.29.3", "0.40.6"] {
            for row in release_rows(version) {
                let c = Collection::from_row(&row)
                    .unwrap_or_else(|e| panic!("{version} {}: {e}", row.name));
                // What Warren writes back decodes to the same collection.
                assert_eq!(Collection::from_row(&c.to_row()).unwrap(), c, "{version}");
                let Some(auth) = c.auth_options() else {
                    continue;
                };
                // `null` rules stay "superusers only"; the auth rule keeps its value.
                assert_eq!(auth.manage_rule, None, "{version} {}", c.name);
                assert_eq!(auth.auth_rule.as_deref(), Some(""), "{version} {}", c.name);
                if c.name == "users" {
                    let github = &auth.oauth2.providers[0];
                    assert_eq!(github.client_secret, "gh-secret");
                    assert!(github.extra.is_empty() && github.pkce.is_none());
                } else {
                    assert!(auth.oauth2.providers.is_empty(), "{version} {}", c.name);
                }
            }
        }
        // The 0.23 rows really hold the nulls the test is about.
        let old = release_rows("0.23.12");
        let superusers = old.iter().find(|r| r.name == "_superusers").unwrap();
        assert!(superusers.options.contains(r#""providers":null"#));
        let posts = old.iter().find(|r| r.name == "posts").unwrap();
        assert!(posts.fields.contains(r#""mimeTypes":null"#));
        let c = Collection::from_row(posts).unwrap();
        let FieldKind::File(docs) = &c.field("docs").unwrap().kind else {
            panic!("docs is a file field")
        };
        assert!(docs.mime_types.is_empty() && docs.thumbs.is_empty());
        let FieldKind::Number(views) = &c.field("views").unwrap().kind else {
            panic!("views is a number field")
        };
        assert_eq!((views.min, views.max), (Some(0.0), None));
    }

    #[test]
    fn null_options_anywhere_take_their_defaults() {
        let c = Collection::from_value(&serde_json::json!({
            "name": "people", "type": "auth", "authRule": null, "manageRule": null,
            "oauth2": {"providers": [{"name": "github", "extra": null, "pkce": null}], "mappedFields": null},
            "passwordAuth": {"identityFields": null, "enabled": true},
            "otp": null, "mfa": {"rule": null},
            "fields": [{"name": "tags", "type": "select", "values": null, "maxSelect": null}],
            "indexes": null,
        }))
        .unwrap();
        let auth = c.auth_options().unwrap();
        assert_eq!(
            auth.auth_rule, None,
            "a null auth rule means superusers only"
        );
        assert!(auth.oauth2.providers[0].extra.is_empty());
        assert!(auth.password_auth.enabled && auth.password_auth.identity_fields.is_empty());
        assert_eq!(auth.otp, OtpConfig::default());
        assert!(c.indexes.is_empty());
        // A missing auth rule still means "everyone", as before.
        let c = Collection::from_value(&serde_json::json!({"name": "p", "type": "auth"})).unwrap();
        assert_eq!(c.auth_options().unwrap().auth_rule.as_deref(), Some(""));
    }

    #[test]
    fn api_json_keeps_pocketbase_key_order_and_hides_secrets() {
        let c = Collection::new(CollectionType::Auth, "members");
        let json = c.to_api_json();
        assert!(json.starts_with(r#"{"id":"pbc_"#));
        let order: Vec<usize> = [
            "\"listRule\"",
            "\"name\"",
            "\"fields\"",
            "\"system\"",
            "\"authRule\"",
            "\"confirmEmailChangeTemplate\"",
        ]
        .iter()
        .map(|k| json.find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]));
        assert!(!json.contains("secret"));
        assert!(c.to_row().options.contains("\"secret\""));
        let back = Collection::from_row(&c.to_row()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn scaffolds_match_pocketbase() {
        let expected = fixture("pocketbase-scaffolds.json");
        for kind in [
            CollectionType::Base,
            CollectionType::Auth,
            CollectionType::View,
        ] {
            let ours: Value =
                serde_json::from_str(&Collection::scaffold(kind, "").to_api_json()).unwrap();
            let mut theirs = expected[kind.as_str()].clone();
            // Auth scaffolds name their indexes with a random suffix.
            if kind == CollectionType::Auth {
                theirs["indexes"] = ours["indexes"].clone();
            }
            assert_eq!(ours, theirs, "{kind:?}");
        }
    }

    #[test]
    fn create_body_is_merged_over_the_scaffold() {
        let body = serde_json::json!({"name":"posts","listRule":"","fields":[
            {"name":"title","type":"text","max":100}]});
        let c = Collection::from_create_body(&body).unwrap();
        assert_eq!(c.id, "pbc_1125843985");
        assert_eq!(c.list_rule.as_deref(), Some(""));
        assert_eq!(c.fields.len(), 2);
        assert!(c.fields[0].is_primary_key());
        assert_eq!(c.fields[1].id, "text724990059");

        let body = serde_json::json!({"name":"members","type":"auth","mfa":{"enabled":true}});
        let c = Collection::from_create_body(&body).unwrap();
        let auth = c.auth_options().unwrap();
        assert!(auth.mfa.enabled);
        assert_eq!(auth.mfa.duration, 600);
        assert_eq!(auth.auth_token.secret.len(), 50);
        assert_eq!(c.indexes.len(), 2);
        assert!(c.indexes[0].contains(&format!("idx_tokenKey_{}", c.id)));
    }

    #[test]
    fn patch_merges_options_and_replaces_fields() {
        let c = Collection::new(CollectionType::Auth, "members");
        let secret = c.auth_options().unwrap().auth_token.secret.clone();
        let patched = c
            .apply_patch(&serde_json::json!({"otp":{"length":6},"listRule":"x = 1"}))
            .unwrap();
        let auth = patched.auth_options().unwrap();
        assert_eq!(auth.otp.length, 6);
        assert_eq!(auth.otp.duration, 180);
        assert_eq!(auth.auth_token.secret, secret);
        assert_eq!(patched.list_rule.as_deref(), Some("x = 1"));
        assert_eq!(patched.fields, c.fields);
    }
}
