import type { Knex } from "knex";

/**
 * The OAuth 2.0 authorization server: clients (partners' machines and the operator's staff), their
 * hashed secrets, the hub's signing keys, consumed assertion and DPoP proof ids, revoked tokens.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("oauth_clients", (t) => {
    t.text("id").primary();
    t.text("partner_id").references("partners.id");
    t.text("audience").notNullable();
    t.text("name").notNullable();
    t.specificType("scopes", "text[]").notNullable();
    t.text("auth_method").notNullable();
    t.jsonb("jwks");
    t.specificType("allowed_algs", "text[]").notNullable().defaultTo(knex.raw("ARRAY['ES256','PS256','EdDSA']::text[]"));
    t.boolean("dpop_bound").notNullable().defaultTo(false);
    t.text("status").notNullable().defaultTo("active");
    t.integer("rate_limit_per_minute").notNullable().defaultTo(6000);
    t.text("environment").notNullable().defaultTo("live");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`
    ALTER TABLE oauth_clients
      ADD CONSTRAINT oauth_clients_audience_valid CHECK (audience IN ('partner', 'admin')),
      ADD CONSTRAINT oauth_clients_partner_matches_audience CHECK ((audience = 'partner') = (partner_id IS NOT NULL)),
      ADD CONSTRAINT oauth_clients_auth_method_valid CHECK (auth_method IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt')),
      ADD CONSTRAINT oauth_clients_jwks_for_private_key_jwt CHECK (auth_method <> 'private_key_jwt' OR jwks IS NOT NULL),
      ADD CONSTRAINT oauth_clients_algs_allowed CHECK (allowed_algs <@ ARRAY['ES256','PS256','EdDSA']::text[]),
      ADD CONSTRAINT oauth_clients_status_valid CHECK (status IN ('active', 'disabled')),
      ADD CONSTRAINT oauth_clients_rate_limit_positive CHECK (rate_limit_per_minute > 0),
      ADD CONSTRAINT oauth_clients_environment_valid CHECK (environment IN ('live', 'sandbox'))`);
  await knex.raw("CREATE INDEX oauth_clients_partner_idx ON oauth_clients (partner_id)");

  await knex.schema.createTable("oauth_client_secrets", (t) => {
    t.text("id").primary();
    t.text("client_id").notNullable().references("oauth_clients.id");
    t.text("hash").notNullable();
    t.text("hint").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp("expires_at", { useTz: true });
  });
  await knex.raw("CREATE INDEX oauth_client_secrets_client_idx ON oauth_client_secrets (client_id)");

  await knex.schema.createTable("signing_keys", (t) => {
    t.text("kid").primary();
    t.text("alg").notNullable();
    t.jsonb("public_jwk").notNullable();
    t.jsonb("private_jwk").notNullable();
    t.text("status").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp("activated_at", { useTz: true });
    t.timestamp("retired_at", { useTz: true });
    t.timestamp("unpublish_after", { useTz: true });
  });
  await knex.raw("ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_status_valid CHECK (status IN ('next', 'active', 'retired'))");
  await knex.raw("CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (status) WHERE status = 'active'");
  await knex.raw("CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (status) WHERE status = 'next'");

  // A jti is consumed by inserting it: the primary key makes a replay fail even under concurrency.
  await knex.schema.createTable("oauth_used_jtis", (t) => {
    t.text("kind").notNullable();
    t.text("issuer").notNullable();
    t.text("jti").notNullable();
    t.timestamp("expires_at", { useTz: true }).notNullable();
    t.primary(["kind", "issuer", "jti"]);
  });

  await knex.schema.createTable("oauth_revoked_tokens", (t) => {
    t.text("jti").primary();
    t.text("client_id").notNullable();
    t.timestamp("expires_at", { useTz: true }).notNullable();
    t.timestamp("revoked_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("oauth_revoked_tokens");
  await knex.schema.dropTableIfExists("oauth_used_jtis");
  await knex.schema.dropTableIfExists("signing_keys");
  await knex.schema.dropTableIfExists("oauth_client_secrets");
  await knex.schema.dropTableIfExists("oauth_clients");
}
