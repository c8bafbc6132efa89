// Security rules tests: every allow, and a deny for each way in.
//
// Run: npm run test:rules:emulated   (starts a Firestore emulator on free ports via
//      `python -m devstack exec --only firestore`), or `npm run test:rules` with
//      FIRESTORE_EMULATOR_HOST pointing at a running emulator.
import { beforeEach, describe, it } from 'node:test';

import {
  assertFails,
  assertSucceeds,
} from '@firebase/rules-unit-testing';
import {
  Timestamp,
  collection,
  deleteDoc,
  doc,
  getDoc,
  getDocs,
  query,
  serverTimestamp,
  setDoc,
  setLogLevel,
  updateDoc,
  where,
} from 'firebase/firestore';

import { rulesEnvironment, save } from './support.mjs';

// Denied requests are the point of half of these tests: keep the SDK quiet about them.
setLogLevel('silent');

const testbed = rulesEnvironment();

beforeEach(async () => {
  await testbed.env.clearFirestore();
  await testbed.env.withSecurityRulesDisabled(async (ctx) => {
    const db = ctx.firestore();
    await setDoc(doc(db, 'prompts/alice-private'), prompt('alice', { public: false }));
    await setDoc(doc(db, 'prompts/alice-public'), prompt('alice', { public: true }));
    await setDoc(doc(db, 'prompts/bob-private'), prompt('bob', { public: false }));
    await setDoc(doc(db, 'prompts/bob-public'), prompt('bob', { public: true }));
    await setDoc(doc(db, 'executions/alice-run'), execution('alice'));
    await setDoc(doc(db, 'executions/bob-run'), execution('bob'));
    await setDoc(doc(db, 'user_limits/alice'), { uid: 'alice', tokens_today: 10 });
    await setDoc(doc(db, 'user_limits/bob'), { uid: 'bob', tokens_today: 99 });
    // uid_key('a/b'): the id is an encoding, the stored uid says whose it is.
    await setDoc(doc(db, 'user_limits/~a~2Fb'), { uid: 'a/b', tokens_today: 5 });
    await setDoc(doc(db, 'user_limits/~2Fb'), { uid: 'x', tokens_today: 5 });
    await setDoc(doc(db, 'other/thing'), { any: 'thing' });
    await setDoc(doc(db, 'comparisons/alice-cmp'), comparison('alice'));
    await setDoc(doc(db, 'comparisons/bob-cmp'), comparison('bob'));
    await setDoc(doc(db, 'documents/alice-doc'), kbDocument('alice', { status: 'ready' }));
    await setDoc(doc(db, 'documents/bob-doc'), kbDocument('bob', { status: 'ready' }));
    await setDoc(doc(db, 'passages/alice-doc-g1-0'), {
      owner_uid: 'alice',
      document_id: 'alice-doc',
      scope: 'alice/alice-doc/1',
      text: 'a passage',
    });
  });
});

const T0 = Timestamp.fromMillis(Date.UTC(2025, 0, 1));

function prompt(owner, overrides = {}) {
  return {
    owner_uid: owner,
    title: 'Greeting',
    content: 'Say hello to {{name}}.',
    public: false,
    created_at: T0,
    updated_at: T0,
    ...overrides,
  };
}

function fullPrompt(owner, overrides = {}) {
  return prompt(owner, {
    system_prompt: 'Be brief.',
    variables: [{ name: 'name', required: true, default: null, description: 'who' }],
    ...overrides,
  });
}

function execution(owner) {
  return {
    owner_uid: owner,
    prompt_id: `${owner}-private`,
    model: 'demo/local-model',
    status: 'completed',
    output: 'hello',
    created_at: T0,
  };
}

function comparison(owner, overrides = {}) {
  return {
    owner_uid: owner,
    prompt_id: `${owner}-private`,
    models: ['demo/local-model', 'demo/fast-model'],
    created_at: T0,
    updated_at: T0,
    ...overrides,
  };
}

// What the web app writes before a comparison's runs start.
function newComparison(owner, overrides = {}) {
  return comparison(owner, { created_at: serverTimestamp(), updated_at: serverTimestamp(), ...overrides });
}

// What the web app writes when a column is marked the winner.
const winner = (overrides = {}) => ({
  winner_model: 'demo/fast-model',
  winner_execution_id: 'run-2',
  updated_at: serverTimestamp(),
  ...overrides,
});

const model200 = (c) => c.repeat(200);

function kbDocument(owner, overrides = {}) {
  return {
    owner_uid: owner,
    title: 'Handbook',
    filename: 'handbook.md',
    content_type: 'text/markdown',
    size: 1234,
    created_at: T0,
    updated_at: T0,
    ...overrides,
  };
}

// What the web app writes when a user uploads: the description, server timestamps.
function newKbDocument(owner, overrides = {}) {
  return kbDocument(owner, {
    created_at: serverTimestamp(),
    updated_at: serverTimestamp(),
    ...overrides,
  });
}

const as = (uid) => testbed.env.authenticatedContext(uid).firestore();
const anonymous = () => testbed.env.unauthenticatedContext().firestore();
const without = (data, field) => {
  const copy = { ...data };
  delete copy[field];
  return copy;
};

describe('prompts: allowed', () => {
  it('owner creates a minimal prompt', async () => {
    await assertSucceeds(setDoc(doc(as('alice'), 'prompts/new'), prompt('alice')));
  });

  it('owner creates a prompt with every optional field and server timestamps', async () => {
    await assertSucceeds(
      setDoc(
        doc(as('alice'), 'prompts/new'),
        fullPrompt('alice', { created_at: serverTimestamp(), updated_at: serverTimestamp() }),
      ),
    );
  });

  it('accepts each size limit exactly', async () => {
    const data = fullPrompt('alice', {
      title: 't'.repeat(200),
      content: 'c'.repeat(50_000),
      system_prompt: 's'.repeat(20_000),
      variables: Array.from({ length: 10 }, (_, i) => ({ name: `v${i}`, required: false })),
      document_ids: Array.from({ length: 10 }, (_, i) => `doc-${i}`),
      top_k: 10,
      retrieval_query_variable: 'q'.repeat(64),
    });
    await assertSucceeds(setDoc(doc(as('alice'), 'prompts/new'), data));
  });

  it('accepts the variables the seed data and the editor write', async () => {
    const variables = [
      { name: 'product', required: true, default: null, description: 'what is being announced' },
      { name: 'tone', required: false, default: 'friendly' },
      { name: 'topic' },
      { name: '_a.b-c9', required: true, default: '', description: null },
      { name: 'x'.repeat(64), default: 'd'.repeat(5000), description: 'e'.repeat(500) },
      { name: '___' },
      { name: '__x' },
    ];
    await assertSucceeds(setDoc(doc(as('alice'), 'prompts/new'), fullPrompt('alice', { variables })));
  });

  it('accepts 10 variables with every field at its limit', async () => {
    const variables = Array.from({ length: 10 }, (_, i) => ({
      name: `v${i}`.padEnd(64, 'x'),
      required: false,
      default: 'd'.repeat(5000),
      description: 'e'.repeat(500),
    }));
    await assertSucceeds(setDoc(doc(as('alice'), 'prompts/new'), fullPrompt('alice', { variables })));
  });

  it('owner updates a prompt to 10 variables with every field at its limit', async () => {
    const variables = Array.from({ length: 10 }, (_, i) => ({
      name: `v${i}`.padEnd(64, 'x'),
      required: false,
      default: 'd'.repeat(5000),
      description: 'e'.repeat(500),
    }));
    // A change of what shapes a run is saved as a version (issue 27; versions.test.js).
    await assertSucceeds(
      save(as('alice'), 'alice-private', prompt('alice'), { variables, system_prompt: 's'.repeat(20_000) }),
    );
  });

  it('accepts preferred_model and 0 or 3 fallback_models at their limits', async () => {
    const data = fullPrompt('alice', { preferred_model: model200('p'), fallback_models: ['a', 'b', model200('c')] });
    await assertSucceeds(setDoc(doc(as('alice'), 'prompts/new'), data));
    await assertSucceeds(setDoc(doc(as('alice'), 'prompts/new2'), fullPrompt('alice', { fallback_models: [] })));
  });

  it('fits the expression budget: 10 full variables, a knowledge base, 3 fallbacks and a preferred model', async () => {
    const variables = Array.from({ length: 10 }, (_, i) => ({
      name: `v${i}`.padEnd(64, 'x'),
      required: false,
      default: 'd'.repeat(5000),
      description: 'e'.repeat(500),
    }));
    const models = { preferred_model: model200('p'), fallback_models: [model200('a'), model200('b'), model200('c')] };
    const kb = { document_ids: Array.from({ length: 10 }, (_, i) => `doc-${i}`), top_k: 10, retrieval_query_variable: 'v0' };
    await assertSucceeds(setDoc(doc(as('alice'), 'prompts/new'), fullPrompt('alice', { variables, ...models, ...kb })));
    await assertSucceeds(
      save(as('alice'), 'alice-private', prompt('alice'), {
        variables,
        system_prompt: 's'.repeat(20_000),
        document_ids: Array.from({ length: 10 }, (_, i) => `doc-${i}`),
        top_k: 10,
        retrieval_query_variable: 'v0',
        ...models,
      }),
    );
  });

  it('owner sets the preferred model (a comparison winner)', async () => {
    await assertSucceeds(
      save(as('alice'), 'alice-public', prompt('alice', { public: true }), { preferred_model: 'demo/fast-model' }),
    );
  });

  it('owner reads an own private prompt', async () => {
    await assertSucceeds(getDoc(doc(as('alice'), 'prompts/alice-private')));
  });

  it('another signed-in user reads a public prompt', async () => {
    await assertSucceeds(getDoc(doc(as('bob'), 'prompts/alice-public')));
  });

  it('owner updates an own prompt', async () => {
    await assertSucceeds(
      updateDoc(doc(as('alice'), 'prompts/alice-private'), {
        title: 'New title',
        public: true,
        updated_at: serverTimestamp(),
      }),
    );
  });

  it('owner deletes an own prompt', async () => {
    await assertSucceeds(deleteDoc(doc(as('alice'), 'prompts/alice-private')));
  });

  it('lists public prompts', async () => {
    const snap = await assertSucceeds(
      getDocs(query(collection(as('alice'), 'prompts'), where('public', '==', true))),
    );
    assertIds(snap, ['alice-public', 'bob-public']);
  });

  it('lists own prompts', async () => {
    const snap = await assertSucceeds(
      getDocs(query(collection(as('alice'), 'prompts'), where('owner_uid', '==', 'alice'))),
    );
    assertIds(snap, ['alice-private', 'alice-public']);
  });
});

// Every way an entry of `variables` can be wrong, each placed last of 10 entries too,
// so the check is seen to reach every index (10 valid entries pass: see above).
function badVariables() {
  const bad = {
    'a 1,040,000-character default': { name: 'x', required: false, default: 'd'.repeat(1_040_000) },
    'a default over 5,000 chars': { name: 'x', default: 'd'.repeat(5001) },
    'a default that is a number': { name: 'x', default: 3 },
    'a default that is a map': { name: 'x', default: { a: 'b' } },
    'required not a bool': { name: 'x', required: 'yes' },
    'a description over 500 chars': { name: 'x', description: 'e'.repeat(501) },
    'an unknown key': { name: 'x', note: 'hi' },
    'no name': { required: true },
    'a name that is not a string': { name: 7 },
    'a reserved name __x__': { name: '__x__' },
    'a reserved name ____': { name: '____' },
    'an empty name': { name: '' },
    'a name with a space': { name: 'my var' },
    'a name with a slash': { name: 'a/b' },
    'a name starting with a digit': { name: '9lives' },
    'a name of 65 chars': { name: 'x'.repeat(65) },
    'a non-ASCII name': { name: 'café' },
    'a description that is a number': { name: 'x', description: 5 },
    'a name ending __ after a start __': { name: '__a_b__' },
  };
  const cases = {};
  for (const [name, entry] of Object.entries(bad)) {
    cases[`variables with ${name}`] = fullPrompt('alice', { variables: [entry] });
    const many = Array.from({ length: 9 }, (_, i) => ({ name: `v${i}` }));
    cases[`variables with ${name} as entry 10`] = fullPrompt('alice', { variables: [...many, entry] });
  }
  cases['variables with a plain string entry'] = fullPrompt('alice', { variables: ['name'] });
  cases['variables with a null entry'] = fullPrompt('alice', { variables: [null] });
  return cases;
}

describe('prompts: denied', () => {
  it('unauthenticated create', async () => {
    await assertFails(setDoc(doc(anonymous(), 'prompts/new'), prompt('alice')));
  });

  it('create with a forged owner_uid', async () => {
    await assertFails(setDoc(doc(as('alice'), 'prompts/new'), prompt('bob')));
  });

  const badCreates = {
    'missing title': without(prompt('alice'), 'title'),
    'empty title': prompt('alice', { title: '' }),
    'title over 200 chars': prompt('alice', { title: 't'.repeat(201) }),
    'title not a string': prompt('alice', { title: 42 }),
    'missing content': without(prompt('alice'), 'content'),
    'content over 50,000 chars': prompt('alice', { content: 'c'.repeat(50_001) }),
    'content not a string': prompt('alice', { content: ['x'] }),
    'system_prompt over 20,000 chars': fullPrompt('alice', { system_prompt: 's'.repeat(20_001) }),
    'system_prompt not a string': fullPrompt('alice', { system_prompt: null }),
    'variables not a list': fullPrompt('alice', { variables: { name: 'x' } }),
    'variables over 10 entries': fullPrompt('alice', {
      variables: Array.from({ length: 11 }, (_, i) => ({ name: `v${i}`, required: false })),
    }),
    'public not a bool': prompt('alice', { public: 'true' }),
    ...badVariables(),
    'missing public': without(prompt('alice'), 'public'),
    'created_at not a timestamp': prompt('alice', { created_at: '2025-01-01T00:00:00Z' }),
    'missing updated_at': without(prompt('alice'), 'updated_at'),
    'unknown field': prompt('alice', { promptId: 'x' }),
    'document_ids not a list': prompt('alice', { document_ids: 'doc-1' }),
    'document_ids over 10 entries': prompt('alice', {
      document_ids: Array.from({ length: 11 }, (_, i) => `doc-${i}`),
    }),
    'top_k of 0': prompt('alice', { top_k: 0 }),
    'top_k over 10': prompt('alice', { top_k: 11 }),
    'top_k not an int': prompt('alice', { top_k: 2.5 }),
    'empty retrieval_query_variable': prompt('alice', { retrieval_query_variable: '' }),
    'retrieval_query_variable over 64 chars': prompt('alice', {
      retrieval_query_variable: 'q'.repeat(65),
    }),
    'retrieval_query_variable not a string': prompt('alice', { retrieval_query_variable: 3 }),
    'an empty preferred_model': prompt('alice', { preferred_model: '' }),
    'preferred_model over 200 chars': prompt('alice', { preferred_model: 'p'.repeat(201) }),
    'preferred_model not a string': prompt('alice', { preferred_model: ['a'] }),
    'a null preferred_model': prompt('alice', { preferred_model: null }),
    'fallback_models not a list': prompt('alice', { fallback_models: 'demo/fast-model' }),
    'fallback_models of 4': prompt('alice', { fallback_models: ['a', 'b', 'c', 'd'] }),
    'a fallback model that is empty, first': prompt('alice', { fallback_models: ['', 'b'] }),
    'a fallback model that is a number, second': prompt('alice', { fallback_models: ['a', 7] }),
    'a fallback model over 200 chars, third': prompt('alice', { fallback_models: ['a', 'b', 'c'.repeat(201)] }),
  };
  for (const [name, data] of Object.entries(badCreates)) {
    it(`create with ${name}`, async () => {
      await assertFails(setDoc(doc(as('alice'), 'prompts/new'), data));
    });
  }

  it("another user reads a private prompt", async () => {
    await assertFails(getDoc(doc(as('bob'), 'prompts/alice-private')));
  });

  it('unauthenticated read of a public prompt', async () => {
    await assertFails(getDoc(doc(anonymous(), 'prompts/alice-public')));
  });

  it("another user updates a public prompt", async () => {
    await assertFails(updateDoc(doc(as('bob'), 'prompts/alice-public'), { title: 'Mine now' }));
  });

  it("another user sets a public prompt's preferred model", async () => {
    await assertFails(
      updateDoc(doc(as('bob'), 'prompts/alice-public'), { preferred_model: 'demo/fast-model', updated_at: serverTimestamp() }),
    );
  });

  it('another user takes a prompt over by rewriting owner_uid', async () => {
    await assertFails(setDoc(doc(as('bob'), 'prompts/alice-public'), prompt('bob')));
  });

  it('owner changes owner_uid', async () => {
    await assertFails(updateDoc(doc(as('alice'), 'prompts/alice-private'), { owner_uid: 'bob' }));
  });

  it('owner changes created_at', async () => {
    await assertFails(
      updateDoc(doc(as('alice'), 'prompts/alice-private'), { created_at: Timestamp.now() }),
    );
  });

  it('owner adds an unknown field on update', async () => {
    await assertFails(updateDoc(doc(as('alice'), 'prompts/alice-private'), { views: 1 }));
  });

  it('owner updates variables to a reserved name', async () => {
    await assertFails(
      updateDoc(doc(as('alice'), 'prompts/alice-private'), { variables: [{ name: '__x__' }] }),
    );
  });

  it('owner updates content past the limit', async () => {
    await assertFails(
      updateDoc(doc(as('alice'), 'prompts/alice-private'), { content: 'c'.repeat(50_001) }),
    );
  });

  it('unauthenticated update', async () => {
    await assertFails(updateDoc(doc(anonymous(), 'prompts/alice-public'), { title: 'x' }));
  });

  it('another user deletes a prompt', async () => {
    await assertFails(deleteDoc(doc(as('bob'), 'prompts/alice-public')));
  });

  it('unauthenticated delete', async () => {
    await assertFails(deleteDoc(doc(anonymous(), 'prompts/alice-public')));
  });

  it("a list query that would include others' private prompts", async () => {
    await assertFails(getDocs(collection(as('alice'), 'prompts')));
  });

  it("a list query for another user's prompts", async () => {
    await assertFails(
      getDocs(query(collection(as('alice'), 'prompts'), where('owner_uid', '==', 'bob'))),
    );
  });

  it('unauthenticated list of public prompts', async () => {
    await assertFails(
      getDocs(query(collection(anonymous(), 'prompts'), where('public', '==', true))),
    );
  });
});

describe('executions', () => {
  it('owner reads an own execution', async () => {
    await assertSucceeds(getDoc(doc(as('alice'), 'executions/alice-run')));
  });

  it('owner lists own executions', async () => {
    const snap = await assertSucceeds(
      getDocs(query(collection(as('alice'), 'executions'), where('owner_uid', '==', 'alice'))),
    );
    assertIds(snap, ['alice-run']);
  });

  it("another user reads an execution: denied", async () => {
    await assertFails(getDoc(doc(as('bob'), 'executions/alice-run')));
  });

  it('unauthenticated read: denied', async () => {
    await assertFails(getDoc(doc(anonymous(), 'executions/alice-run')));
  });

  it('a list query without the owner filter: denied', async () => {
    await assertFails(getDocs(collection(as('alice'), 'executions')));
  });

  it('client creates an own execution: denied', async () => {
    await assertFails(setDoc(doc(as('alice'), 'executions/forged'), execution('alice')));
  });

  it('client updates an own execution: denied', async () => {
    await assertFails(
      updateDoc(doc(as('alice'), 'executions/alice-run'), { status: 'cancelled' }),
    );
  });

  it('client deletes an own execution: denied', async () => {
    await assertFails(deleteDoc(doc(as('alice'), 'executions/alice-run')));
  });
});

describe('user_limits', () => {
  it('user reads own limits', async () => {
    await assertSucceeds(getDoc(doc(as('alice'), 'user_limits/alice')));
  });

  it("user reads another user's limits: denied", async () => {
    await assertFails(getDoc(doc(as('alice'), 'user_limits/bob')));
  });

  it('user reads own limits under an encoded id (uid a/b)', async () => {
    await assertSucceeds(getDoc(doc(as('a/b'), 'user_limits/~a~2Fb')));
  });

  it('the stored uid decides, not the document id', async () => {
    await assertFails(getDoc(doc(as('~2Fb'), 'user_limits/~2Fb')));
    await assertFails(getDoc(doc(as('alice'), 'user_limits/~a~2Fb')));
  });

  it('unauthenticated read: denied', async () => {
    await assertFails(getDoc(doc(anonymous(), 'user_limits/alice')));
  });

  it('user writes own limits: denied', async () => {
    await assertFails(setDoc(doc(as('alice'), 'user_limits/alice'), { tokens_today: 0 }));
  });

  it('user creates own limits: denied', async () => {
    await assertFails(setDoc(doc(as('carol'), 'user_limits/carol'), { tokens_today: 0 }));
  });
});

describe('documents: allowed', () => {
  it('owner reads an own document', async () => {
    await assertSucceeds(getDoc(doc(as('alice'), 'documents/alice-doc')));
  });

  it('owner lists own documents', async () => {
    const snap = await assertSucceeds(
      getDocs(query(collection(as('alice'), 'documents'), where('owner_uid', '==', 'alice'))),
    );
    assertIds(snap, ['alice-doc']);
  });

});

describe('documents: denied', () => {
  it("another user reads a document", async () => {
    await assertFails(getDoc(doc(as('bob'), 'documents/alice-doc')));
  });

  it('unauthenticated read', async () => {
    await assertFails(getDoc(doc(anonymous(), 'documents/alice-doc')));
  });

  it('a list query without the owner filter', async () => {
    await assertFails(getDocs(collection(as('alice'), 'documents')));
  });

  it("a list query for another user's documents", async () => {
    await assertFails(
      getDocs(query(collection(as('alice'), 'documents'), where('owner_uid', '==', 'bob'))),
    );
  });

  it('unauthenticated create', async () => {
    await assertFails(setDoc(doc(anonymous(), 'documents/new-doc'), newKbDocument('alice')));
  });

  it('create with a forged owner_uid', async () => {
    await assertFails(setDoc(doc(as('alice'), 'documents/new-doc'), newKbDocument('bob')));
  });

  const badCreates = {
    'a status (backend-written)': newKbDocument('alice', { status: 'ready' }),
    'a generation (backend-written)': newKbDocument('alice', { generation: 1 }),
    'a passage_count (backend-written)': newKbDocument('alice', { passage_count: 3 }),
    'an error_message (backend-written)': newKbDocument('alice', { error_message: null }),
    'an unknown field': newKbDocument('alice', { tags: ['x'] }),
    'a missing filename': without(newKbDocument('alice'), 'filename'),
    'an empty title': newKbDocument('alice', { title: '' }),
    'a title over 200 chars': newKbDocument('alice', { title: 't'.repeat(201) }),
    'a filename over 255 chars': newKbDocument('alice', { filename: 'f'.repeat(256) }),
    'another content type': newKbDocument('alice', { content_type: 'application/zip' }),
    'a size over 5 MiB': newKbDocument('alice', { size: 5242881 }),
    'a negative size': newKbDocument('alice', { size: -1 }),
    'a size that is not an integer': newKbDocument('alice', { size: '12' }),
    'a client-chosen created_at': newKbDocument('alice', { created_at: T0 }),
  };
  for (const [name, data] of Object.entries(badCreates)) {
    it(`create with ${name}`, async () => {
      await assertFails(setDoc(doc(as('alice'), 'documents/new-doc'), data));
    });
  }

  for (const id of ['__x', '_hidden', '-dash', 'a.b', 'a~b', 'x'.repeat(101)]) {
    it(`create under the unsafe id ${id.slice(0, 12)}`, async () => {
      await assertFails(setDoc(doc(as('alice'), `documents/${id}`), newKbDocument('alice')));
    });
  }

  it('owner marks an own document ready', async () => {
    await assertFails(updateDoc(doc(as('alice'), 'documents/alice-doc'), { status: 'ready' }));
  });

  it('owner renames an own document', async () => {
    await assertFails(updateDoc(doc(as('alice'), 'documents/alice-doc'), { title: 'New' }));
  });

  it('another user takes a document over by writing it', async () => {
    await assertFails(setDoc(doc(as('bob'), 'documents/alice-doc'), newKbDocument('bob')));
  });

  it('owner deletes an own document: through the backend only (passages go with it)', async () => {
    await assertFails(deleteDoc(doc(as('alice'), 'documents/alice-doc')));
  });

  it('another user deletes a document', async () => {
    await assertFails(deleteDoc(doc(as('bob'), 'documents/alice-doc')));
  });

  it('unauthenticated delete', async () => {
    await assertFails(deleteDoc(doc(anonymous(), 'documents/alice-doc')));
  });
});

describe('passages (backend only)', () => {
  it('the owner reads an own passage: denied', async () => {
    await assertFails(getDoc(doc(as('alice'), 'passages/alice-doc-g1-0')));
  });

  it('the owner lists own passages: denied', async () => {
    await assertFails(
      getDocs(query(collection(as('alice'), 'passages'), where('owner_uid', '==', 'alice'))),
    );
  });

  it('a user writes a passage: denied', async () => {
    await assertFails(
      setDoc(doc(as('alice'), 'passages/forged'), {
        owner_uid: 'alice',
        document_id: 'alice-doc',
        scope: 'alice/alice-doc/1',
        text: 'forged',
      }),
    );
  });

  it('a user deletes a passage: denied', async () => {
    await assertFails(deleteDoc(doc(as('alice'), 'passages/alice-doc-g1-0')));
  });
});

describe('comparisons: allowed', () => {
  it('owner creates a comparison of 2 models, and of 4 at the size limits', async () => {
    await assertSucceeds(setDoc(doc(as('alice'), 'comparisons/new'), newComparison('alice')));
    const models = [model200('a'), model200('b'), model200('c'), model200('d')];
    const id = `A${'b'.repeat(99)}`;
    await assertSucceeds(
      setDoc(doc(as('alice'), `comparisons/${id}`), newComparison('alice', { models, prompt_id: model200('p') })),
    );
  });

  it('owner reads an own comparison, and lists own comparisons of a prompt', async () => {
    await assertSucceeds(getDoc(doc(as('alice'), 'comparisons/alice-cmp')));
    const snap = await assertSucceeds(
      getDocs(
        query(
          collection(as('alice'), 'comparisons'),
          where('owner_uid', '==', 'alice'),
          where('prompt_id', '==', 'alice-private'),
        ),
      ),
    );
    assertIds(snap, ['alice-cmp']);
  });

  it('owner marks a winner, and changes it', async () => {
    await assertSucceeds(updateDoc(doc(as('alice'), 'comparisons/alice-cmp'), winner()));
    await assertSucceeds(
      updateDoc(doc(as('alice'), 'comparisons/alice-cmp'), winner({ winner_model: 'demo/local-model', winner_execution_id: 'run-1' })),
    );
  });

  it('the winner may be a fallback model that answered, not one of the compared models', async () => {
    await assertSucceeds(updateDoc(doc(as('alice'), 'comparisons/alice-cmp'), winner({ winner_model: 'demo/backup-model' })));
  });
});

describe('comparisons: denied', () => {
  it('unauthenticated create', async () => {
    await assertFails(setDoc(doc(anonymous(), 'comparisons/new'), newComparison('alice')));
  });

  const badCreates = {
    'a forged owner_uid': newComparison('bob'),
    'one model': newComparison('alice', { models: ['a'] }),
    'five models': newComparison('alice', { models: ['a', 'b', 'c', 'd', 'e'] }),
    'a model twice': newComparison('alice', { models: ['a', 'b', 'a'] }),
    'models not a list': newComparison('alice', { models: 'a,b' }),
    'an empty first model': newComparison('alice', { models: ['', 'b'] }),
    'a second model that is a number': newComparison('alice', { models: ['a', 2] }),
    'a third model over 200 chars': newComparison('alice', { models: ['a', 'b', 'c'.repeat(201)] }),
    'a fourth model that is null': newComparison('alice', { models: ['a', 'b', 'c', null] }),
    'no prompt_id': without(newComparison('alice'), 'prompt_id'),
    'an empty prompt_id': newComparison('alice', { prompt_id: '' }),
    'a prompt_id that is a number': newComparison('alice', { prompt_id: 5 }),
    'a created_at that is not the request time': newComparison('alice', { created_at: T0 }),
    'an updated_at that is not the request time': newComparison('alice', { updated_at: T0 }),
    'no updated_at': without(newComparison('alice'), 'updated_at'),
    'a winner already': newComparison('alice', { winner_model: 'a', winner_execution_id: 'r' }),
    'an unknown field': newComparison('alice', { note: 'x' }),
  };
  for (const [name, data] of Object.entries(badCreates)) {
    it(`create with ${name}`, async () => {
      await assertFails(setDoc(doc(as('alice'), 'comparisons/new'), data));
    });
  }

  for (const id of ['_leading-underscore', 'has.dot', `a${'b'.repeat(100)}`]) {
    it(`create under the unsafe id ${id.slice(0, 20)}`, async () => {
      await assertFails(setDoc(doc(as('alice'), `comparisons/${id}`), newComparison('alice')));
    });
  }

  it("another user reads a comparison", async () => {
    await assertFails(getDoc(doc(as('bob'), 'comparisons/alice-cmp')));
  });

  it('unauthenticated read', async () => {
    await assertFails(getDoc(doc(anonymous(), 'comparisons/alice-cmp')));
  });

  it('a list query without the owner filter', async () => {
    await assertFails(getDocs(query(collection(as('alice'), 'comparisons'), where('prompt_id', '==', 'alice-private'))));
  });

  it('another user marks the winner', async () => {
    await assertFails(updateDoc(doc(as('bob'), 'comparisons/alice-cmp'), winner()));
  });

  it('another user takes a comparison over by rewriting owner_uid', async () => {
    await assertFails(updateDoc(doc(as('bob'), 'comparisons/alice-cmp'), { ...winner(), owner_uid: 'bob' }));
  });

  const badUpdates = {
    'the models changed': winner({ models: ['a', 'b'] }),
    'the owner changed': winner({ owner_uid: 'bob' }),
    'the prompt changed': winner({ prompt_id: 'other' }),
    'created_at changed': winner({ created_at: serverTimestamp() }),
    'an updated_at that is not the request time': winner({ updated_at: T0 }),
    'no winner_execution_id': without(winner(), 'winner_execution_id'),
    'a winner_execution_id of an unsafe form': winner({ winner_execution_id: 'a/b' }),
    'an empty winner_model': winner({ winner_model: '' }),
    'a winner_model that is a number': winner({ winner_model: 3 }),
    'an unknown field': winner({ note: 'x' }),
  };
  for (const [name, data] of Object.entries(badUpdates)) {
    it(`owner update with ${name}`, async () => {
      await assertFails(updateDoc(doc(as('alice'), 'comparisons/alice-cmp'), data));
    });
  }

  it('owner deletes a comparison', async () => {
    await assertFails(deleteDoc(doc(as('alice'), 'comparisons/alice-cmp')));
  });
});

describe('everything else', () => {
  it('read of an unlisted collection: denied', async () => {
    await assertFails(getDoc(doc(as('alice'), 'other/thing')));
  });

  it('write to an unlisted collection: denied', async () => {
    await assertFails(setDoc(doc(as('alice'), 'users/alice'), { name: 'Alice' }));
  });

  it('write to a prompt subcollection: denied', async () => {
    await assertFails(setDoc(doc(as('alice'), 'prompts/alice-private/notes/n1'), { x: 1 }));
  });
});

function assertIds(snap, expected) {
  const ids = snap.docs.map((d) => d.id).sort();
  if (JSON.stringify(ids) !== JSON.stringify([...expected].sort())) {
    throw new Error(`expected documents ${expected.join(', ')}, got ${ids.join(', ')}`);
  }
}
