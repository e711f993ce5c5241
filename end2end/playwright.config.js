// Playwright runs in Debian's chromium (no browser download). The test command (scripts/test.sh)
// builds the site and the server and sets PF_E2E_PORT; the server is started here on that port
// with a fresh SQLite database and the offline provider.
import { defineConfig } from "@playwright/test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const port = process.env.PF_E2E_PORT || "3100";
// A second server runs with Gemini as its provider, pointed at the mock model server
// (mock-llm, speaking Gemini) on loopback.
const geminiPort = process.env.PF_E2E_GEMINI_PORT || "3101";
const mockPort = process.env.PF_E2E_MOCK_PORT || "3102";
// A real OpenID Connect provider (oidc-provider) for sign-in, registered for the first server.
const idpPort = process.env.PF_E2E_IDP_PORT || "3103";
const root = path.resolve(import.meta.dirname, "..");
const dataDir = process.env.PF_E2E_DATA || mkdtempSync(path.join(tmpdir(), "pf-e2e-"));
process.env.PF_E2E_DATA = dataDir; // workers re-read this config: keep one folder

const chromium = {
  browserName: "chromium",
  launchOptions: {
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  },
};

export default defineConfig({
  testDir: "./tests",
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 15_000 },
  reporter: [["list"]],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
  projects: [
    { name: "hydrated", testMatch: /hydrated\/.*\.spec\.js/, use: { ...chromium, javaScriptEnabled: true } },
    { name: "no-js", testMatch: /nojs\/.*\.spec\.js/, use: { ...chromium, javaScriptEnabled: false } },
    { name: "oidc", testMatch: /oidc\/.*\.spec\.js/, use: { ...chromium, javaScriptEnabled: true } },
    {
      name: "gemini",
      testMatch: /gemini\/.*\.spec\.js/,
      use: { ...chromium, javaScriptEnabled: true, baseURL: `http://127.0.0.1:${geminiPort}` },
    },
  ],
  webServer: [
    {
      command: process.env.PF_E2E_SERVER || "target/debug/personaflux",
      cwd: root,
      url: `http://127.0.0.1:${port}/api/health`,
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: "pipe",
      stderr: "pipe",
      env: {
        LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
        DATABASE_URL: `sqlite://${dataDir}/e2e.db`,
        DATA_DIR: dataDir,
        LLM_PROVIDER: "offline",
        OFFLINE_TOKEN_DELAY_MS: "40",
        OIDC_ISSUER: `http://127.0.0.1:${idpPort}`,
        OIDC_CLIENT_ID: "personaflux",
        OIDC_CLIENT_SECRET: "e2e-client-secret",
        OIDC_LABEL: "Test IdP",
        // Every spec signs in from the one loopback address, several times a minute; the limit
        // on sign-in starts itself is tested in server/tests/it/limits.rs.
        LIMIT_SIGN_INS_PER_MINUTE: "100",
        RUST_LOG: "info",
      },
    },
    {
      command: `node end2end/oidc-server.mjs ${idpPort} http://127.0.0.1:${port}/auth/oidc/callback`,
      cwd: root,
      url: `http://127.0.0.1:${idpPort}/.well-known/openid-configuration`,
      timeout: 30_000,
      reuseExistingServer: false,
    },
    {
      command: `${process.env.PF_E2E_MOCK || "target/debug/mock-llm"} 127.0.0.1:${mockPort}`,
      cwd: root,
      port: Number(mockPort),
      timeout: 60_000,
      reuseExistingServer: false,
    },
    {
      command: process.env.PF_E2E_SERVER || "target/debug/personaflux",
      cwd: root,
      url: `http://127.0.0.1:${geminiPort}/api/health`,
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: "pipe",
      stderr: "pipe",
      env: {
        LEPTOS_SITE_ADDR: `127.0.0.1:${geminiPort}`,
        DATABASE_URL: `sqlite://${dataDir}/e2e-gemini.db`,
        DATA_DIR: `${dataDir}/gemini`,
        LLM_PROVIDER: "gemini",
        GEMINI_API_KEY: "e2e-test-key",
        GEMINI_BASE_URL: `http://127.0.0.1:${mockPort}/v1beta`,
        LLM_RETRY_BASE_MS: "20",
        LLM_MAX_ATTEMPTS: "3",
        RUST_LOG: "info",
      },
    },
  ],
});
