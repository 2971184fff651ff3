/// <reference types="vitest/config" />
// Build of the admin UI: one static bundle in dist/ that tungate embeds and serves at `/`.
// Everything is bundled (no CDN, no web fonts), so the UI works on an offline appliance.
import { defineConfig } from 'vite';

export default defineConfig({
  // Relative asset URLs: the bundle works wherever tungate mounts it.
  base: './',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // One small app: keep the output to a handful of files that are easy to embed.
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
