import type { Knex } from "knex";

/**
 * A starting list of sectors, so a fresh network (and the demo) can admit partners at once; the
 * operator edits the list from there. Sectors already named by partners are added too, so every
 * partner's sector is in the list.
 */
const DEFAULT_SECTORS: Array<[string, string]> = [
  ["grocery", "Supermarkets and groceries"],
  ["fuel", "Fuel stations"],
  ["entertainment", "Cinemas and entertainment"],
  ["banking", "Banks and payment cards"],
  ["pharmacy", "Pharmacies and health"],
  ["airline", "Airlines"],
  ["hotel", "Hotels and accommodation"],
  ["restaurant", "Restaurants and cafés"],
  ["telecom", "Telecommunications"],
  ["fashion", "Clothing and fashion"],
  ["electronics", "Electronics and appliances"],
  ["home-improvement", "DIY and home improvement"],
];

export async function up(knex: Knex): Promise<void> {
  await knex("sectors")
    .insert(DEFAULT_SECTORS.map(([code, name]) => ({ code, name })))
    .onConflict("code")
    .ignore();
  await knex.raw(`
    INSERT INTO sectors (code, name)
    SELECT DISTINCT sector, sector FROM partners WHERE sector ~ '^[a-z0-9][a-z0-9-]{0,62}$'
    ON CONFLICT (code) DO NOTHING`);
}

export async function down(knex: Knex): Promise<void> {
  await knex("sectors")
    .whereIn(
      "code",
      DEFAULT_SECTORS.map(([code]) => code),
    )
    .whereNotExists(knex("partners").whereRaw("partners.sector = sectors.code").select(knex.raw("1")))
    .delete();
}
