// Security rules of conversations (issue 25, docs/adr/0700-conversations.md): the turns
// of a conversation are execution records (backend-written, owner-read); what each turn
// sent upstream lives in executions/{id}/input/sent, backend-written and owner-read.
//
// Run: npm run test:rules:emulated (with the other rules tests).
import { beforeEach, describe, it } from 'node:test';

import {
  assertFails,
  assertSucceeds,
} from '@firebase/rules-unit-testing';
import {
  collection,
  deleteDoc,
  doc,
  getDoc,
  getDocs,
  query,
  setDoc,
  setLogLevel,
  updateDoc,
  where,
} from 'firebase/firestore';

import { rulesEnvironment } from './support.mjs';

setLogLevel('silent');

const testbed = rulesEnvironment();

function turn(owner, id, parent, n) {
  return {
    owner_uid: owner,
    prompt_id: `${owner}-prompt`,
    status: 'completed',
    output: `answer ${n}`,
    conversation_id: `${owner}-c1`,
    parent_execution_id: parent,
    turn: n,
    message: n === 1 ? null : `question ${n}`,
    ancestors: [],
  };
}

function sent(owner) {
  return { owner_uid: owner, system: null, context: null, user: 'the prompt', query: null };
}

beforeEach(async () => {
  await testbed.env.clearFirestore();
  await testbed.env.withSecurityRulesDisabled(async (ctx) => {
    const db = ctx.firestore();
    for (const owner of ['alice', 'bob']) {
      await setDoc(doc(db, `executions/${owner}-c1`), turn(owner, `${owner}-c1`, null, 1));
      await setDoc(doc(db, `executions/${owner}-t2`), turn(owner, `${owner}-t2`, `${owner}-c1`, 2));
      await setDoc(doc(db, `executions/${owner}-c1/input/sent`), sent(owner));
    }
  });
});

const as = (uid) => testbed.env.authenticatedContext(uid).firestore();
const anonymous = () => testbed.env.unauthenticatedContext().firestore();

describe('conversation turns (execution records)', () => {
  it('owner lists the turns of their conversation', async () => {
    const turns = query(
      collection(as('alice'), 'executions'),
      where('owner_uid', '==', 'alice'),
      where('conversation_id', '==', 'alice-c1'),
    );
    const snap = await assertSucceeds(getDocs(turns));
    if (snap.size !== 2) throw new Error(`expected 2 turns, got ${snap.size}`);
  });

  it('owner lists the siblings under one parent', async () => {
    const siblings = query(
      collection(as('alice'), 'executions'),
      where('owner_uid', '==', 'alice'),
      where('parent_execution_id', '==', 'alice-c1'),
    );
    await assertSucceeds(getDocs(siblings));
  });

  it("nobody lists a conversation's turns without the owner filter", async () => {
    const turns = query(
      collection(as('alice'), 'executions'),
      where('conversation_id', '==', 'alice-c1'),
    );
    await assertFails(getDocs(turns));
  });

  it("another user neither reads nor lists someone else's turns", async () => {
    await assertFails(getDoc(doc(as('bob'), 'executions/alice-t2')));
    const turns = query(
      collection(as('bob'), 'executions'),
      where('owner_uid', '==', 'alice'),
      where('conversation_id', '==', 'alice-c1'),
    );
    await assertFails(getDocs(turns));
  });

  it('no client writes a turn or its conversation fields', async () => {
    await assertFails(
      setDoc(doc(as('alice'), 'executions/forged'), turn('alice', 'forged', 'alice-c1', 2)),
    );
    await assertFails(updateDoc(doc(as('alice'), 'executions/alice-t2'), { message: 'edited' }));
    await assertFails(updateDoc(doc(as('alice'), 'executions/alice-c1'), { output: 'forged' }));
  });
});

describe('what a turn sent (executions/{id}/input/sent)', () => {
  it('owner reads it', async () => {
    await assertSucceeds(getDoc(doc(as('alice'), 'executions/alice-c1/input/sent')));
  });

  it('another user does not, nor anyone signed out', async () => {
    await assertFails(getDoc(doc(as('bob'), 'executions/alice-c1/input/sent')));
    await assertFails(getDoc(doc(anonymous(), 'executions/alice-c1/input/sent')));
  });

  it('a list without the owner filter is denied', async () => {
    await assertFails(getDocs(collection(as('alice'), 'executions/bob-c1/input')));
  });

  it('no client creates, changes or deletes it', async () => {
    const db = as('alice');
    await assertFails(setDoc(doc(db, 'executions/alice-t2/input/sent'), sent('alice')));
    await assertFails(setDoc(doc(db, 'executions/alice-c1/input/other'), sent('alice')));
    await assertFails(updateDoc(doc(db, 'executions/alice-c1/input/sent'), { user: 'forged' }));
    await assertFails(deleteDoc(doc(db, 'executions/alice-c1/input/sent')));
  });
});
