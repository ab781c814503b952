// Audits a running coursepulse against the GraphQL over HTTP specification with the
// graphql-http package's own auditServer. Usage: node audit.mjs http://127.0.0.1:8000/graphql
// Prints one JSON line per audit result and exits 1 if any is an error or a warning.
import { auditServer } from "graphql-http";

const url = process.argv[2];
if (!url) {
  console.error("usage: node audit.mjs URL");
  process.exit(2);
}
const results = await auditServer({ url });
let bad = 0;
for (const result of results) {
  const line = { status: result.status, id: result.id, name: result.name };
  if (result.status !== "ok") {
    bad += 1;
    line.reason = result.reason;
    try {
      line.response = { status: result.response.status, body: await result.response.text() };
    } catch {
      // the response may already be consumed
    }
  }
  console.log(JSON.stringify(line));
}
console.log(JSON.stringify({ total: results.length, notOk: bad }));
process.exit(bad ? 1 : 0);
