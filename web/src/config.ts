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
  defaultModel: nonEmpty(env.VITE_DEFAULT_MODEL) ?? MODELS[0],
};

/** Emulators are used exactly when VITE_AUTH_EMULATOR_URL is set. */
export const useEmulators = config.authEmulatorUrl !== undefined;
