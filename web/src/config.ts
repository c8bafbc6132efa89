/** Build-time settings from Vite env vars (see README, "Web app"). */

export const MODELS = [
  'x-ai/grok-4-fast:free',
  'openai/gpt-4o-mini',
  'anthropic/claude-3.5-haiku',
  'google/gemini-2.5-flash',
  'meta-llama/llama-3.3-70b-instruct:free',
  'demo/local-model',
] as const;

const env = import.meta.env;

function nonEmpty(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== '' ? value.trim() : undefined;
}

function csv(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

function positiveInt(value: string | undefined): number | undefined {
  const n = Number(nonEmpty(value));
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export const config = {
  projectId: nonEmpty(env.VITE_FIREBASE_PROJECT_ID) ?? 'demo-rag-prompts',
  // Emulators accept any key; production builds must set the real one.
  apiKey: nonEmpty(env.VITE_FIREBASE_API_KEY) ?? 'fake-api-key-for-emulators',
  authDomain: nonEmpty(env.VITE_FIREBASE_AUTH_DOMAIN),
  authEmulatorUrl: nonEmpty(env.VITE_AUTH_EMULATOR_URL),
  firestoreEmulatorHost: nonEmpty(env.VITE_FIRESTORE_EMULATOR_HOST) ?? '127.0.0.1:8080',
  functionsBaseUrl: (
    nonEmpty(env.VITE_FUNCTIONS_BASE_URL) ?? 'http://127.0.0.1:5001/demo-rag-prompts/us-central1'
  ).replace(/\/+$/, ''),
  defaultModel: nonEmpty(env.VITE_DEMO_MODEL) ?? nonEmpty(env.VITE_DEFAULT_MODEL) ?? MODELS[0],
  /** Set by devstack when the backend answers with its local demo model (no OpenRouter key). */
  demoModel: nonEmpty(env.VITE_DEMO_MODEL),
  /** The demo models the local fake serves (comma-separated); the first is the default. */
  demoModels: csv(env.VITE_DEMO_MODELS),
  /** The backend's DAILY_TOKEN_BUDGET, for the usage meter; the server enforces its own. */
  dailyTokenBudget: positiveInt(env.VITE_DAILY_TOKEN_BUDGET) ?? 500_000,
  /** The seeded local account, shown on the sign-in page when the emulators are used. */
  demoEmail: nonEmpty(env.VITE_DEMO_EMAIL),
  demoPassword: nonEmpty(env.VITE_DEMO_PASSWORD),
};

/** The models the picker offers: only the demo models when those are what answers. */
export const availableModels: readonly string[] = config.demoModel
  ? [...new Set([config.demoModel, ...config.demoModels])]
  : MODELS;

/** Emulators are used exactly when VITE_AUTH_EMULATOR_URL is set. */
export const useEmulators = config.authEmulatorUrl !== undefined;
