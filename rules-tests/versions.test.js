// Security rules of prompt versions and labels (issue 27): every allowed write, and a
// denial for every other way in. The web app saves a prompt and its next version in one
// batch (firestore.rules, "Prompt versions and labels"; docs/adr/0900-prompt-versions.md).
//
// Run: npm run test:rules:emulated (with firestore.rules.test.js).
import { beforeEach, describe, it } from 'node:test';

import { assertFails, assertSucceeds } from '@firebase/rules-unit-testing';
import {
  Timestamp,
  collection,
  deleteDoc,
  deleteField,
  doc,
  getDoc,
  getDocs,
  query,
  serverTimestamp,
  setDoc,
  setLogLevel,
  updateDoc,
  where,
  writeBatch,
} from 'firebase/firestore';

import { rulesEnvironment, save, version } from './support.mjs';

setLogLevel('silent');

const T0 = Timestamp.fromMillis(Date.UTC(2025, 0, 1));
const testbed = rulesEnvironment();

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

// Seeded: alice's prompt at version 2 (labels: production -> 1), alice's prompt that has
// no version (made before versions), bob's public prompt at version 1, bob's private one.
const V1 = prompt('alice', { content: 'one' });
const V2 = prompt('alice', { content: 'two', version: 2, labels: { production: 1 } });
const LEGACY = prompt('alice', { content: 'legacy {{x}}', system_prompt: 'Be brief.' });
const BOB = prompt('bob', { public: true, version: 1 });

beforeEach(async () => {
  await testbed.env.clearFirestore();
  await testbed.env.withSecurityRulesDisabled(async (ctx) => {
    const db = ctx.firestore();
    await setDoc(doc(db, 'prompts/alice-v'), V2);
    await setDoc(doc(db, 'prompts/alice-v/versions/1'), version('alice', V1));
    await setDoc(doc(db, 'prompts/alice-v/versions/2'), version('alice', V2));
    await setDoc(doc(db, 'prompts/alice-legacy'), LEGACY);
    await setDoc(doc(db, 'prompts/bob-public'), BOB);
    await setDoc(doc(db, 'prompts/bob-public/versions/1'), version('bob', BOB));
    await setDoc(doc(db, 'prompts/bob-private'), prompt('bob', { version: 1 }));
    await setDoc(doc(db, 'prompts/bob-private/versions/1'), version('bob', prompt('bob')));
  });
});

const as = (uid) => testbed.env.authenticatedContext(uid).firestore();
const anonymous = () => testbed.env.unauthenticatedContext().firestore();

const fullVariables = Array.from({ length: 10 }, (_, i) => ({
  name: `v${i}`.padEnd(64, 'x'),
  required: false,
  default: 'd'.repeat(5000),
  description: 'e'.repeat(500),
}));
const model200 = (c) => c.repeat(200);
const everything = {
  content: 'c'.repeat(50_000),
  system_prompt: 's'.repeat(20_000),
  variables: fullVariables,
  document_ids: Array.from({ length: 10 }, (_, i) => `doc-${i}`),
  top_k: 10,
  retrieval_query_variable: 'v0',
  preferred_model: model200('p'),
  fallback_models: [model200('a'), model200('b'), model200('c')],
};
const tenLabels = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`l${i}`.padEnd(32, 'x'), 2]));

describe('versions: allowed', () => {
  it('the owner creates a prompt at version 1 with versions/1 in one batch', async () => {
    const db = as('alice');
    const data = prompt('alice', { version: 1, created_at: serverTimestamp(), updated_at: serverTimestamp() });
    const batch = writeBatch(db);
    batch.set(doc(db, 'prompts/new'), data);
    batch.set(doc(db, 'prompts/new/versions/1'), version('alice', data, { created_at: serverTimestamp(), summary: 'first' }));
    await assertSucceeds(batch.commit());
  });

  it('the owner saves a new version: the prompt moves 2 -> 3 with versions/3', async () => {
    await assertSucceeds(save(as('alice'), 'alice-v', V2, { content: 'three' }, { version: { summary: 's'.repeat(500) } }));
  });

  it('the first save of a prompt without a version writes versions/1 (as it was) and versions/2', async () => {
    await assertSucceeds(save(as('alice'), 'alice-legacy', LEGACY, { content: 'new' }));
    const v1 = await getDoc(doc(as('alice'), 'prompts/alice-legacy/versions/1'));
    if (v1.data().content !== LEGACY.content) throw new Error('versions/1 is not the prompt as it was');
  });

  it('restore: a new version equal to an old one', async () => {
    await assertSucceeds(save(as('alice'), 'alice-v', V2, { content: V1.content }));
  });

  it('a save that changes no run-shaping field may still make a version', async () => {
    await assertSucceeds(save(as('alice'), 'alice-v', V2, { title: 'Renamed' }));
  });

  it('the owner changes the title and visibility without a version', async () => {
    await assertSucceeds(
      updateDoc(doc(as('alice'), 'prompts/alice-v'), { title: 'T', public: true, updated_at: serverTimestamp() }),
    );
    await assertSucceeds(
      updateDoc(doc(as('alice'), 'prompts/alice-legacy'), { title: 'T', updated_at: serverTimestamp() }),
    );
  });

  it('the owner points a label at a version, moves it and removes it', async () => {
    const ref = doc(as('alice'), 'prompts/alice-v');
    await assertSucceeds(updateDoc(ref, { 'labels.staging': 2, updated_at: serverTimestamp() }));
    await assertSucceeds(updateDoc(ref, { 'labels.production': 2 }));
    await assertSucceeds(updateDoc(ref, { 'labels.staging': deleteField() }));
  });

  it('a prompt without a version takes labels pointing at version 1', async () => {
    await assertSucceeds(updateDoc(doc(as('alice'), 'prompts/alice-legacy'), { 'labels.production': 1 }));
  });

  it('10 labels of 32 characters', async () => {
    await assertSucceeds(updateDoc(doc(as('alice'), 'prompts/alice-v'), { labels: tenLabels }));
  });

  it('the owner reads and lists the versions of an own prompt', async () => {
    await assertSucceeds(getDoc(doc(as('alice'), 'prompts/alice-v/versions/1')));
    const snap = await assertSucceeds(getDocs(collection(as('alice'), 'prompts/alice-v/versions')));
    if (snap.size !== 2) throw new Error(`expected 2 versions, got ${snap.size}`);
  });

  it("another user reads and lists a public prompt's versions", async () => {
    await assertSucceeds(getDoc(doc(as('alice'), 'prompts/bob-public/versions/1')));
    await assertSucceeds(getDocs(collection(as('alice'), 'prompts/bob-public/versions')));
  });

  it('the owner still reads the versions of a deleted prompt (a list filtered on created_by)', async () => {
    await assertSucceeds(deleteDoc(doc(as('alice'), 'prompts/alice-v')));
    await assertSucceeds(getDoc(doc(as('alice'), 'prompts/alice-v/versions/2')));
    await assertSucceeds(
      getDocs(query(collection(as('alice'), 'prompts/alice-v/versions'), where('created_by', '==', 'alice'))),
    );
  });
});

describe('versions: the expression budget, worst cases', () => {
  it('a first save with everything at its limit over a prompt without a version that had it all too', async () => {
    await testbed.env.withSecurityRulesDisabled(async (ctx) => {
      await setDoc(doc(ctx.firestore(), 'prompts/full'), prompt('alice', everything));
    });
    const fields = { ...everything, content: 'd'.repeat(50_000), title: 't'.repeat(200) };
    await assertSucceeds(
      save(as('alice'), 'full', prompt('alice', everything), fields, { version: { summary: 's'.repeat(500) } }),
    );
  });

  it('a new prompt at version 1 with everything at its limit', async () => {
    const db = as('alice');
    const data = prompt('alice', { ...everything, version: 1, updated_at: serverTimestamp() });
    const batch = writeBatch(db);
    batch.set(doc(db, 'prompts/new'), data);
    batch.set(doc(db, 'prompts/new/versions/1'), version('alice', data, { created_at: serverTimestamp(), summary: 's'.repeat(500) }));
    await assertSucceeds(batch.commit());
  });

  it('a new prompt without a version, everything at its limit (checked whole)', async () => {
    await assertSucceeds(setDoc(doc(as('alice'), 'prompts/new'), prompt('alice', everything)));
  });

  it('10 labels moved on a prompt with everything at its limit', async () => {
    await testbed.env.withSecurityRulesDisabled(async (ctx) => {
      await setDoc(doc(ctx.firestore(), 'prompts/full'), prompt('alice', { ...everything, version: 2, labels: tenLabels }));
    });
    const labels = Object.fromEntries(Object.keys(tenLabels).map((k) => [k, 1]));
    await assertSucceeds(updateDoc(doc(as('alice'), 'prompts/full'), { labels, updated_at: serverTimestamp() }));
  });
});

describe('versions: denied', () => {
  it('changing a version', async () => {
    await assertFails(updateDoc(doc(as('alice'), 'prompts/alice-v/versions/1'), { content: 'rewritten' }));
    await assertFails(setDoc(doc(as('alice'), 'prompts/alice-v/versions/1'), version('alice', V1, { created_at: serverTimestamp() })));
  });

  it('deleting a version', async () => {
    await assertFails(deleteDoc(doc(as('alice'), 'prompts/alice-v/versions/1')));
  });

  it("writing a version of another user's prompt", async () => {
    await assertFails(save(as('alice'), 'bob-public', BOB, { content: 'mine' }, { uid: 'alice' }));
    await assertFails(
      setDoc(doc(as('alice'), 'prompts/bob-public/versions/2'), version('alice', BOB, { created_at: serverTimestamp() })),
    );
  });

  it('content changed without a version', async () => {
    await assertFails(updateDoc(doc(as('alice'), 'prompts/alice-v'), { content: 'sneaky' }));
    await assertFails(updateDoc(doc(as('alice'), 'prompts/alice-v'), { preferred_model: 'demo/fast-model' }));
    await assertFails(updateDoc(doc(as('alice'), 'prompts/alice-legacy'), { content: 'sneaky' }));
  });

  it('the version moved without its version document', async () => {
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'three' }, { noVersion: true }));
  });

  it('a version created alone, without the prompt moving to it', async () => {
    await assertFails(
      setDoc(doc(as('alice'), 'prompts/alice-v/versions/3'), version('alice', V2, { created_at: serverTimestamp() })),
    );
    await assertFails(
      setDoc(doc(as('alice'), 'prompts/alice-legacy/versions/1'), version('alice', LEGACY, { created_at: LEGACY.updated_at })),
    );
  });

  it('out of sequence: 2 -> 4, 2 -> 2, 2 -> 1', async () => {
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'x' }, { n: 4 }));
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'x' }, { promptVersion: 2, id: 3 }));
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'x' }, { promptVersion: 1, id: 1 }));
  });

  it('a version that differs from the prompt it was saved with', async () => {
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'three' }, { version: { content: 'other' } }));
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'three' }, { version: { top_k: 3 } }));
  });

  it('the first save of a prompt without a version, without versions/1 or with a versions/1 that was not it', async () => {
    await assertFails(save(as('alice'), 'alice-legacy', LEGACY, { content: 'new' }, { noSnapshot: true }));
    await assertFails(
      save(as('alice'), 'alice-legacy', LEGACY, { content: 'new' }, { snapshot: { content: 'rewritten history' } }),
    );
    await assertFails(save(as('alice'), 'alice-legacy', LEGACY, { content: 'new' }, { snapshot: { created_at: Timestamp.fromMillis(5) } }));
  });

  it('a version with a forged created_by, a client-chosen created_at, an unknown field, a long summary', async () => {
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'x' }, { version: { created_by: 'bob' } }));
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'x' }, { version: { created_at: T0 } }));
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'x' }, { version: { note: 'x' } }));
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'x' }, { version: { summary: 's'.repeat(501) } }));
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'x' }, { version: { summary: 5 } }));
  });

  it('a version whose fields break the prompt rules (checked on the version)', async () => {
    const bad = { variables: [{ name: '__x__' }] };
    await assertFails(save(as('alice'), 'alice-v', V2, bad));
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'c'.repeat(50_001) }));
  });

  for (const id of ['03', 'abc', '1.0', '0']) {
    it(`a version under the id ${id}`, async () => {
      await assertFails(save(as('alice'), 'alice-v', V2, { content: 'x' }, { id, n: 3 }));
    });
  }

  it('two saves of the same version: the second loses, whichever order', async () => {
    const a = as('alice');
    const results = await Promise.allSettled([
      save(a, 'alice-v', V2, { content: 'from tab A' }),
      save(a, 'alice-v', V2, { content: 'from tab B' }),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled').length;
    if (won !== 1) throw new Error(`expected one save to win, ${won} did`);
    await assertFails(save(a, 'alice-v', V2, { content: 'from tab C' }));
    const v3 = await getDoc(doc(a, 'prompts/alice-v/versions/3'));
    const p = await getDoc(doc(a, 'prompts/alice-v'));
    if (v3.data().content !== p.data().content) throw new Error('the prompt is not its latest version');
  });

  it('two first saves of a prompt without a version: the second loses', async () => {
    const a = as('alice');
    await assertSucceeds(save(a, 'alice-legacy', LEGACY, { content: 'A' }));
    await assertFails(save(a, 'alice-legacy', LEGACY, { content: 'B' }));
  });

  it("moving another user's label", async () => {
    await assertFails(updateDoc(doc(as('alice'), 'prompts/bob-public'), { 'labels.production': 1 }));
  });

  const badLabels = {
    'at version 0': { 'labels.production': 0 },
    'past the latest': { 'labels.production': 3 },
    'at a string': { 'labels.production': '1' },
    'at a fraction': { 'labels.production': 1.5 },
    'named with a comma': { labels: { 'a,b': 1 } },
    'named with a space': { labels: { 'a b': 1 } },
    'named with a leading dash': { labels: { '-x': 1 } },
    'named with 33 characters': { labels: { ['x'.repeat(33)]: 1 } },
    'a map of labels that is a list': { labels: [1] },
    '11 labels': { labels: { ...tenLabels, extra: 1 } },
    'the 10th of 10 at a bad version': { labels: { ...tenLabels, [Object.keys(tenLabels)[9]]: 9 } },
  };
  for (const [name, change] of Object.entries(badLabels)) {
    it(`a label ${name}`, async () => {
      await assertFails(updateDoc(doc(as('alice'), 'prompts/alice-v'), change));
    });
  }

  it('a label past version 1 on a prompt without a version', async () => {
    await assertFails(updateDoc(doc(as('alice'), 'prompts/alice-legacy'), { 'labels.production': 2 }));
  });

  it('a label moved in the same write as a save', async () => {
    await assertFails(save(as('alice'), 'alice-v', V2, { content: 'x', 'labels.production': 3 }));
  });

  it('labels, or a version past 1, on a new prompt', async () => {
    await assertFails(setDoc(doc(as('alice'), 'prompts/new'), prompt('alice', { labels: { production: 1 } })));
    const db = as('alice');
    const data = prompt('alice', { version: 2 });
    const batch = writeBatch(db);
    batch.set(doc(db, 'prompts/new'), data);
    batch.set(doc(db, 'prompts/new/versions/2'), version('alice', data, { created_at: serverTimestamp() }));
    await assertFails(batch.commit());
  });

  it('a new prompt at version 1 without versions/1, or with one that differs', async () => {
    await assertFails(setDoc(doc(as('alice'), 'prompts/new'), prompt('alice', { version: 1 })));
    const db = as('alice');
    const data = prompt('alice', { version: 1 });
    const batch = writeBatch(db);
    batch.set(doc(db, 'prompts/new'), data);
    batch.set(doc(db, 'prompts/new/versions/1'), version('alice', data, { created_at: serverTimestamp(), content: 'x' }));
    await assertFails(batch.commit());
  });

  it("a prompt created over a deleted prompt's versions", async () => {
    await assertSucceeds(deleteDoc(doc(as('alice'), 'prompts/alice-v')));
    await assertFails(setDoc(doc(as('alice'), 'prompts/alice-v'), prompt('alice')));
    await assertFails(setDoc(doc(as('bob'), 'prompts/alice-v'), prompt('bob')));
  });

  it("reading a private prompt's versions as another user, or signed out", async () => {
    await assertFails(getDoc(doc(as('alice'), 'prompts/bob-private/versions/1')));
    await assertFails(getDocs(collection(as('alice'), 'prompts/bob-private/versions')));
    await assertFails(getDoc(doc(anonymous(), 'prompts/bob-public/versions/1')));
  });

  it("reading a deleted prompt's versions as another user", async () => {
    await testbed.env.withSecurityRulesDisabled(async (ctx) => {
      await deleteDoc(doc(ctx.firestore(), 'prompts/bob-public'));
    });
    await assertFails(getDoc(doc(as('alice'), 'prompts/bob-public/versions/1')));
  });
});
