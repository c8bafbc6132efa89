// What the rules tests share: an emulator's test environment with firestore.rules, and how
// the web app saves a prompt under the rules of issue 27 (the prompt and its next version
// in one batch: firestore.rules, "Prompt versions and labels";
// docs/adr/0900-prompt-versions.md).
import { readFileSync } from 'node:fs';
import { after, before } from 'node:test';

import { initializeTestEnvironment } from '@firebase/rules-unit-testing';
import { doc, serverTimestamp, writeBatch } from 'firebase/firestore';

/**
 * Registers the suite's setup and teardown: a test environment on the emulator named by
 * FIRESTORE_EMULATOR_HOST with the real rules (in a project of its own when given a
 * suffix). The environment is `.env` of the returned object once the suite runs.
 */
export function rulesEnvironment(projectSuffix = '') {
  const testbed = { env: undefined };
  before(async () => {
    if (!process.env.FIRESTORE_EMULATOR_HOST) {
      throw new Error('FIRESTORE_EMULATOR_HOST is not set: run `npm run test:rules:emulated`');
    }
    const [host, port] = process.env.FIRESTORE_EMULATOR_HOST.split(':');
    testbed.env = await initializeTestEnvironment({
      projectId: (process.env.GCLOUD_PROJECT || 'demo-rag-prompts') + projectSuffix,
      firestore: {
        rules: readFileSync(new URL('../firestore.rules', import.meta.url), 'utf8'),
        host,
        port: Number(port),
      },
    });
  });
  after(async () => {
    await testbed.env?.cleanup();
  });
  return testbed;
}

// What shapes a run: the fields a version holds.
export const VERSIONED = [
  'content', 'system_prompt', 'variables', 'document_ids', 'top_k',
  'retrieval_query_variable', 'preferred_model', 'fallback_models',
];

export function versioned(data) {
  return Object.fromEntries(VERSIONED.filter((k) => k in data).map((k) => [k, data[k]]));
}

/** A version document of `data` (a prompt's fields), made by `owner`. */
export function version(owner, data, overrides = {}) {
  return { ...versioned(data), created_at: data.updated_at, created_by: owner, ...overrides };
}

/**
 * Commits a save of `fields` over the prompt `current` (as read): the prompt at version
 * n+1 and versions/{n+1}; for a prompt without a version, versions/1 (a copy of it as it
 * was, dated when it was last saved) as well. `tweak` forges a save: `uid` (the saver),
 * `n`, `promptVersion`, `id` (of the new version), `noSnapshot`, `noVersion`,
 * `snapshot` and `version` (fields over those documents).
 */
export function save(db, id, current, fields, tweak = {}) {
  const uid = tweak.uid ?? current.owner_uid;
  const n = tweak.n ?? (current.version ?? 1) + 1;
  const next = { ...current, ...fields, version: n };
  const batch = writeBatch(db);
  if (current.version === undefined && !tweak.noSnapshot) {
    batch.set(doc(db, `prompts/${id}/versions/1`), version(uid, current, tweak.snapshot));
  }
  batch.update(doc(db, `prompts/${id}`), {
    ...fields,
    version: tweak.promptVersion ?? n,
    updated_at: serverTimestamp(),
  });
  if (!tweak.noVersion) {
    batch.set(
      doc(db, `prompts/${id}/versions/${tweak.id ?? n}`),
      version(uid, next, { created_at: serverTimestamp(), ...tweak.version }),
    );
  }
  return batch.commit();
}
