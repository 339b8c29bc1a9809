/**
 * Integration tests' setup (every test file's process): a query sent on a node-postgres client that
 * is still running another — `Promise.all` over one transaction's queries, say — is queued today
 * with a deprecation warning and refused from pg 9. Fail the run where it happens, with the stack
 * that sent it, instead of letting a warning scroll by.
 */
process.on("warning", (warning) => {
  if (warning.name === "DeprecationWarning" && warning.message.includes("already executing a query")) {
    throw new Error(`a query was sent on a connection still running another (one transaction, queries in parallel):\n${warning.stack ?? warning.message}`);
  }
});
