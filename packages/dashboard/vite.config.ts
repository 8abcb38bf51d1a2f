// Builds the dashboard into dist/: index.html, hashed files under assets/, and routes.json (the app's pages, from
// src/routes.ts, which the server answers with index.html).
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';
import { PAGES } from './src/routes.ts';

export default defineConfig({
  plugins: [
    react(),
    {
      name: 'mags-routes',
      generateBundle() {
        this.emitFile({
          type: 'asset',
          fileName: 'routes.json',
          source: `${JSON.stringify(PAGES.map((p) => p.path))}\n`,
        });
      },
    },
  ],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The server sends no source to browsers it did not build for: the same targets as React 19.
    target: 'es2022',
    // No inline assets: the page's policy allows images from the server itself (and data: for small icons).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
