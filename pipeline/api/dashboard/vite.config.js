// The dashboard is built once into dist/ and served by the yuqing API at /; every script and
// stylesheet comes from npm packages bundled here, nothing from a CDN.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 300,
  },
  server: {
    // `npm run dev` against a running `yuqing api` on the default port.
    proxy: { "/api": "http://127.0.0.1:8300", "/healthz": "http://127.0.0.1:8300" },
  },
});
