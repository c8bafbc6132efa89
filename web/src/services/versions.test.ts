import { deleteField, serverTimestamp } from 'firebase/firestore';
import { describe, expect, it } from 'vitest';
import type { Prompt, PromptVersion } from '../types';
import {
  fieldsOfDraft,
  fieldsOfPrompt,
  labelsByVersion,
  labelsOf,
  LATEST,
  listedVersions,
  planCreate,
  planSave,
  promptAt,
  targetFields,
  targetVersion,
  updatePrompt,
} from './versions';

const NOW = serverTimestamp();
const GONE = deleteField();

const prompt = (over: Partial<Prompt> = {}): Prompt => ({
  id: 'p1',
  owner_uid: 'u1',
  title: 'T',
  content: 'Hello {{name}}',
  variables: [{ name: 'name', required: true, default: null }],
  public: false,
  updatedAtMs: 1000,
  version: 2,
  labels: {},
  ...over,
});

const version = (n: number, over: Partial<PromptVersion> = {}): PromptVersion => ({
  ...fieldsOfPrompt(prompt()),
  number: n,
  created_by: 'u1',
  createdAtMs: n * 1000,
  summary: null,
  ...over,
});

describe('planCreate', () => {
  it('writes the prompt at version 1 and its version 1 in one commit, with who and a summary', () => {
    const draft = { title: 'T', content: 'c', system_prompt: '', variables: [], public: true, summary: '  first  ' };
    const [p, v] = planCreate('p9', 'u1', draft);
    expect(p).toEqual({
      kind: 'set',
      path: ['prompts', 'p9'],
      data: { owner_uid: 'u1', title: 'T', public: true, content: 'c', variables: [], version: 1, created_at: NOW, updated_at: NOW },
    });
    expect(v).toEqual({
      kind: 'set',
      path: ['prompts', 'p9', 'versions', '1'],
      data: { content: 'c', variables: [], created_at: NOW, created_by: 'u1', summary: 'first' },
    });
  });
});

describe('planSave', () => {
  it('moves the prompt from version n to n+1 and creates version n+1 holding every run-shaping field', () => {
    const draft = {
      title: 'T2',
      content: 'Hi {{name}}',
      system_prompt: 'Be brief.',
      variables: [{ name: 'name', required: false, default: 'you', description: 'who' }],
      public: false,
      document_ids: ['d1'],
      top_k: 3,
      retrieval_query_variable: 'name',
      fallback_models: ['m/b'],
    };
    const writes = planSave(prompt({ preferred_model: 'm/a' }), fieldsOfDraft(draft, 'm/a'), 'u1', { summary: 'shorter', title: 'T2', isPublic: false });
    expect(writes).toHaveLength(2);
    const [p, v] = writes;
    const stored = {
      content: 'Hi {{name}}',
      system_prompt: 'Be brief.',
      variables: [{ name: 'name', required: false, default: 'you', description: 'who' }],
      document_ids: ['d1'],
      top_k: 3,
      retrieval_query_variable: 'name',
      preferred_model: 'm/a',
      fallback_models: ['m/b'],
    };
    expect(p).toEqual({ kind: 'update', path: ['prompts', 'p1'], data: { ...stored, version: 3, updated_at: NOW, title: 'T2', public: false } });
    expect(v).toEqual({ kind: 'set', path: ['prompts', 'p1', 'versions', '3'], data: { ...stored, created_at: NOW, created_by: 'u1', summary: 'shorter' } });
  });

  it('deletes the prompt fields a version leaves unset, and the version simply lacks them', () => {
    const [p, v] = planSave(
      prompt({ system_prompt: 'x', document_ids: ['d1'], top_k: 2 }),
      fieldsOfDraft({ title: 'T', content: 'c', system_prompt: ' ', variables: [], public: false }, null),
      'u1',
    );
    for (const key of ['system_prompt', 'document_ids', 'top_k', 'retrieval_query_variable', 'preferred_model', 'fallback_models']) {
      expect(p!.data[key]).toEqual(GONE);
      expect(key in v!.data).toBe(false);
    }
    expect('summary' in v!.data).toBe(false);
  });

  it('saves a prompt without versions as version 2, with version 1 in the same batch: the prompt as stored, dated when it was saved', () => {
    const saved = { seconds: 1, nanoseconds: 234567 };
    const stored = {
      owner_uid: 'u1',
      title: 'T',
      content: 'old text',
      variables: [{ name: 'x', required: true }],
      public: false,
      updated_at: saved,
      created_at: saved,
    };
    const legacy = prompt({ version: null, content: 'old text', stored });
    const writes = planSave(legacy, fieldsOfDraft({ title: 'T', content: 'new text', system_prompt: '', variables: [], public: false }, null), 'u2');
    expect(writes.map((w) => `${w.kind} ${w.path.join('/')}`)).toEqual([
      'set prompts/p1/versions/1',
      'update prompts/p1',
      'set prompts/p1/versions/2',
    ]);
    // Exactly as stored (a variable without `default` stays so): the rules compare it with the prompt.
    expect(writes[0]!.data).toEqual({ content: 'old text', variables: [{ name: 'x', required: true }], created_at: saved, created_by: 'u2' });
    expect(writes[1]!.data.version).toBe(2);
    expect(writes[2]!.data.content).toBe('new text');
  });

  it('restores an old version as a new one equal to it, keeping the title', () => {
    const old = version(1, { content: 'v1 text', preferred_model: 'm/x' });
    const [p, v] = planSave(prompt({ version: 3 }), old, 'u1', { summary: 'Restored version 1' });
    expect(p!.path).toEqual(['prompts', 'p1']);
    expect(p!.data).toMatchObject({ content: 'v1 text', preferred_model: 'm/x', version: 4 });
    expect('title' in p!.data).toBe(false);
    expect(v!.path).toEqual(['prompts', 'p1', 'versions', '4']);
    expect(v!.data).toMatchObject({ content: 'v1 text', summary: 'Restored version 1' });
  });
});

describe('versions listed and run', () => {
  it('lists stored versions newest first by number, and a prompt without versions as its version 1', () => {
    expect(listedVersions(prompt(), [version(2), version(10), version(9)]).map((v) => v.number)).toEqual([10, 9, 2]);
    const legacy = listedVersions(prompt({ version: null, content: 'as stored' }), []);
    expect(legacy.map((v) => [v.number, v.content, v.implicit])).toEqual([[1, 'as stored', true]]);
  });

  it('sends nothing for the latest, `version` for a number and `label` for a label', () => {
    expect(targetFields(LATEST)).toEqual({});
    expect(targetFields({ kind: 'version', version: 1 })).toEqual({ version: 1 });
    expect(targetFields({ kind: 'label', label: 'production' })).toEqual({ label: 'production' });
  });

  it('shows the form the variables of the version a target runs, a label following where it points', () => {
    const p = prompt({ version: 3, labels: { production: 1 } });
    const versions = [version(3), version(2), version(1, { content: 'Old {{topic}}', variables: [] })];
    expect(targetVersion(p, LATEST)).toBe(3);
    expect(promptAt(p, versions, { kind: 'label', label: 'production' }).content).toBe('Old {{topic}}');
    expect(promptAt(p, versions, { kind: 'version', version: 1 }).variables).toEqual([]);
    expect(promptAt(p, versions, LATEST)).toBe(p);
    const moved = { ...p, labels: { production: 3 } };
    expect(promptAt(moved, versions, { kind: 'label', label: 'production' })).toBe(moved);
  });

  it('reads labels as stored, and groups them by version', () => {
    expect(labelsOf({ production: 2, staging: 2, bad: 'x', zero: 0 })).toEqual({ production: 2, staging: 2 });
    expect([...labelsByVersion({ staging: 2, production: 2, canary: 3 })]).toEqual([
      [3, ['canary']],
      [2, ['production', 'staging']],
    ]);
  });
});

describe('updatePrompt', () => {
  it('refuses, in words, an edit begun before another save made a newer version, and writes nothing', async () => {
    const db = {} as Parameters<typeof updatePrompt>[0];
    const draft = { title: 'T', content: 'mine', system_prompt: '', variables: [], public: false };
    await expect(updatePrompt(db, prompt({ version: 3 }), draft, 'u1', 2)).rejects.toThrow(
      'version 3 was saved since you began editing version 2',
    );
  });
});
