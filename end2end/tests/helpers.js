import { createRequire } from "node:module";
import { test as base, expect } from "@playwright/test";

/**
 * Every spec's `test`: the page fails its test if the browser reports a Content-Security-Policy
 * violation (a blocked script, style, frame or connection) while the test runs.
 */
export const test = base.extend({
  page: async ({ page }, use) => {
    const violations = [];
    page.on("console", (msg) => {
      if (/content security policy/i.test(msg.text())) violations.push(msg.text());
    });
    await use(page);
    expect(violations, "Content-Security-Policy violations reported by the browser").toEqual([]);
  },
});
export { expect };

/** Waits until the page's WASM has hydrated (buttons respond to clicks). */
export async function hydrated(page) {
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 30_000 });
}

export async function signIn(page) {
  await page.goto("/signin");
  await page.getByRole("button", { name: "Continue as local user" }).click();
  await expect(page).toHaveURL(/\/dashboard$/);
}

export function uniqueName(base) {
  return `${base} ${Math.random().toString(36).slice(2, 7)}`;
}

const axeSource = createRequire(import.meta.url)("axe-core").source;
const WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/**
 * Runs axe-core (WCAG 2.1 A and AA rules) on the page as it is now, in the light and the dark
 * colour scheme, and fails on any serious or critical violation, naming the rule and the elements.
 * The page's CSP does not apply: Playwright evaluates through the DevTools protocol.
 */
export async function accessible(page, label) {
  for (const colorScheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme });
    if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(axeSource);
    const found = await page.evaluate(
      async (tags) => {
        const results = await window.axe.run(document, { runOnly: { type: "tag", values: tags } });
        return results.violations
          .filter((v) => v.impact === "serious" || v.impact === "critical")
          .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
      },
      WCAG_AA,
    );
    expect(found, `axe-core on ${label} (${colorScheme})`).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: null });
}

/** Fills the wizard's first step (already open and hydrated): name, age and one suggested trait. */
export async function fillBasics(page, { name, age, trait }) {
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Age", { exact: true }).fill(String(age));
  await page.getByRole("button", { name: trait }).click();
}

/**
 * Has the model write the story, checks the backstory matches `backstory` (a RegExp), saves, and
 * waits for the new character's chat. Returns the chat's path.
 */
export async function writeAndSave(page, backstory) {
  await page.getByRole("button", { name: "Next: write their story" }).click();
  await expect(page.getByLabel("Backstory")).toHaveValue(backstory);
  await page.getByRole("button", { name: "Save character" }).click();
  await expect(page).toHaveURL(/\/characters\/[0-9a-f-]{36}\/chat$/);
  return new URL(page.url()).pathname;
}

/**
 * Creates a character through the wizard as a user would: opens it, fills name, age and a trait,
 * generates, saves. `backstory` defaults to "the backstory names the character". Returns the
 * chat's path.
 */
export async function createCharacter(page, { name, age, trait, backstory }) {
  await page.goto("/characters/new");
  await hydrated(page);
  await fillBasics(page, { name, age, trait });
  return writeAndSave(page, backstory ?? new RegExp(name));
}

/**
 * Signs in through the test OpenID Connect provider (oidc-provider on loopback) as `username`;
 * any name is a user of its own. With `js: false` (a context without JavaScript) the page is not
 * waited on to hydrate.
 */
export async function signInWithIdp(page, username, { js = true } = {}) {
  await page.goto("/signin");
  // Hydrated first: the client-side router must leave the provider's server route alone.
  if (js) await hydrated(page);
  await page.getByRole("link", { name: "Continue with Test IdP" }).click();
  await expect(page.getByRole("heading", { name: "Test identity provider" })).toBeVisible();
  await page.getByLabel("Username").fill(username);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.getByTestId("user-name")).toHaveText(username[0].toUpperCase() + username.slice(1));
}
