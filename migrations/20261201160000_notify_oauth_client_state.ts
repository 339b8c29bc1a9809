import type { Knex } from "knex";

/**
 * Each API process caches what the token check reads of a client (status, partner, rate limit)
 * and of a token (revoked or not) — gateway/src/auth/client-states.ts. Any change to those tables,
 * whoever makes it (the API, the portal, an operator in psql), notifies `oauth_client_state` in the
 * changing transaction, so every process forgets its cache as soon as the change commits.
 * Statement-level: one notification per statement, and PostgreSQL folds a transaction's identical
 * notifications into one.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE FUNCTION oauth_client_state_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('oauth_client_state', TG_TABLE_NAME);
      RETURN NULL;
    END $$`);
  for (const table of ["oauth_clients", "oauth_revoked_tokens"]) {
    await knex.raw(`CREATE TRIGGER ${table}_notify_state AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${table}
                      FOR EACH STATEMENT EXECUTE FUNCTION oauth_client_state_notify()`);
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ["oauth_revoked_tokens", "oauth_clients"]) await knex.raw(`DROP TRIGGER IF EXISTS ${table}_notify_state ON ${table}`);
  await knex.raw("DROP FUNCTION IF EXISTS oauth_client_state_notify()");
}
