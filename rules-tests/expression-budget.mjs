// How many `variables` entries fit in Firestore's budget of 1,000 evaluated expressions
// per request, with firestore.rules' own validVariable (docs/adr/0301).
//
// Run: functions/venv/bin/python -m devstack exec --only firestore -- node rules-tests/expression-budget.mjs
//
// The real rules stop at 10 entries; here the list check is rebuilt for up to 50 (five
// entries to a function, as deeper nesting does not compile) and each size is tried
// with entries that use every field, and with entries that are just a name.
import { readFileSync } from 'node:fs';
import { initializeTestEnvironment } from '@firebase/rules-unit-testing';
import { Timestamp, doc, setDoc, setLogLevel } from 'firebase/firestore';

setLogLevel('silent');
const real = readFileSync(new URL('../firestore.rules', import.meta.url), 'utf8');

function chain(max) {
  const funcs = [];
  for (let b = 0; b < max; b += 5) {
    let expr = b + 5 < max ? `variablesFrom${b + 5}(vs)` : 'true';
    for (let i = b + 4; i >= b; i--) expr = `(vs.size() <= ${i} || (validVariable(vs[${i}]) && ${expr}))`;
    funcs.push(`    function variablesFrom${b}(vs) { return ${expr}; }`);
  }
  return `    function validVariables(vs) {\n      return vs is list && vs.size() <= ${max} && variablesFrom0(vs);\n    }\n${funcs.join('\n')}\n\n`;
}

const start = real.indexOf('    function validVariables(vs) {');
const end = real.indexOf('    function validPrompt(data) {');
const rules = real.slice(0, start) + chain(50) + real.slice(end);

const [host, port] = process.env.FIRESTORE_EMULATOR_HOST.split(':');
const env = await initializeTestEnvironment({
  projectId: 'demo-expression-budget',
  firestore: { rules, host, port: Number(port) },
});
const db = env.authenticatedContext('alice').firestore();
const T0 = Timestamp.fromMillis(0);
const shapes = {
  'every field': (i) => ({ name: `v${i}`, required: false, default: 'd', description: 'e' }),
  'name only': (i) => ({ name: `v${i}` }),
};
for (const [shape, entry] of Object.entries(shapes)) {
  const results = [];
  for (const n of [1, 5, 8, 10, 11, 12, 13, 15, 20, 30, 50]) {
    const data = {
      owner_uid: 'alice', title: 't', content: 'c', system_prompt: 's', public: false,
      created_at: T0, updated_at: T0, variables: Array.from({ length: n }, (_, i) => entry(i)),
    };
    try {
      await setDoc(doc(db, `prompts/p${n}`), data);
      results.push(`${n} ok`);
    } catch {
      results.push(`${n} refused`);
    }
  }
  console.log(`${shape}: ${results.join(', ')}`);
}
await env.cleanup();
