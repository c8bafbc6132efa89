/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  server: { host: '127.0.0.1', port: 5173, strictPort: true },
  preview: { host: '127.0.0.1', port: 4173 },
  // Firebase's SDK is most of the bundle; one chunk is fine for this app.
  build: { chunkSizeWarningLimit: 1200 },
  test: {
    // Unit tests only; the browser suite in e2e/ runs with `npm run e2e`.
    include: ['src/**/*.test.{ts,tsx}'],
    environment: 'node',
  },
});
